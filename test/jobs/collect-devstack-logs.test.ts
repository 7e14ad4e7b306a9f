/**
 * collect-devstack-logs.sh over a devstack tree laid out as devstack leaves it (LOGDIR with
 * dated screen logs and their links, service configuration in /etc, libvirt logs).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { JOBS, SYSTEM_PATH, removeDir, runProgram, tempDir } from './support';

const SCRIPT = join(JOBS, 'collect-devstack-logs.sh');

let root: string;
let out: string;
let result: Awaited<ReturnType<typeof runProgram>>;
// The agent's console log, still being written while the job runs: never renamed or compressed.
const consoleLog = 'x'.repeat(200_000);
const stackLog = Array.from({ length: 4000 }, (_, i) => `2026-11-25 09:00:${i % 60} | + stack.sh: line ${i}\n`).join(
  '',
);

function write(path: string, content: string) {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
}

beforeAll(async () => {
  root = tempDir('collect');
  const dest = join(root, 'opt-stack');
  const etc = join(root, 'etc');
  const varLog = join(root, 'var-log');
  write(join(dest, 'logs', 'stack.sh.log'), stackLog);
  write(join(dest, 'logs', 'screen-ak-rug.2026-11-25-090000.log'), 'rug started\n');
  symlinkSync(join(dest, 'logs', 'screen-ak-rug.2026-11-25-090000.log'), join(dest, 'logs', 'screen-ak-rug.log'));
  write(join(dest, 'devstack', 'local.conf'), '[[local|localrc]]\n');
  write(join(dest, 'tempest', 'etc', 'tempest.conf'), '[network]\npublic_network_id = x\n');
  write(join(etc, 'nova', 'nova.conf'), '[DEFAULT]\n');
  write(join(etc, 'nova', 'ssl', 'private', 'key.pem'), '-----BEGIN PRIVATE KEY-----\n');
  write(join(etc, 'akanda', 'rug.ini'), '[DEFAULT]\n');
  write(join(varLog, 'libvirt', 'qemu', 'instance-00000001.log'), 'appliance console\n');
  out = join(root, 'logs');
  mkdirSync(out);
  writeFileSync(join(out, 'job-output.txt'), consoleLog);
  result = await runProgram(SCRIPT, [dest, out], {
    PATH: SYSTEM_PATH,
    HOME: root,
    AKANDA_CI_ETC_ROOT: etc,
    AKANDA_CI_VAR_LOG: varLog,
  });
});

afterAll(() => removeDir(root));

it('exits 0', () => {
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
});

it("leaves the agent's console log alone, however large", () => {
  expect(readFileSync(join(out, 'job-output.txt'), 'utf8')).toBe(consoleLog);
});

it('publishes the devstack log as gzipped text a browser shows (it is large)', () => {
  expect(existsSync(join(out, 'logs', 'stack.sh.log'))).toBe(false);
  expect(gunzipSync(readFileSync(join(out, 'logs', 'stack.sh.txt.gz'))).toString()).toBe(stackLog);
});

it('publishes service logs under their link names, once, as .txt', () => {
  const names = readdirSync(join(out, 'logs')).filter((name) => name.startsWith('screen-'));
  expect(names).toEqual(['screen-ak-rug.txt']);
  expect(readFileSync(join(out, 'logs', 'screen-ak-rug.txt'), 'utf8')).toBe('rug started\n');
});

it('publishes local.conf, the service configuration and tempest.conf, but no keys', () => {
  expect(readFileSync(join(out, 'local.conf'), 'utf8')).toBe('[[local|localrc]]\n');
  expect(readFileSync(join(out, 'etc', 'nova', 'nova.conf.txt'), 'utf8')).toBe('[DEFAULT]\n');
  expect(readFileSync(join(out, 'etc', 'akanda', 'rug.ini.txt'), 'utf8')).toBe('[DEFAULT]\n');
  expect(readFileSync(join(out, 'etc', 'tempest', 'tempest.conf.txt'), 'utf8')).toMatch(/public_network_id/);
  expect(readdirSync(join(out, 'etc', 'nova'))).toEqual(['nova.conf.txt']);
});

it("publishes libvirt's logs, where the appliance VM's console ends up", () => {
  expect(readFileSync(join(out, 'logs', 'libvirt', 'qemu', 'instance-00000001.txt'), 'utf8')).toBe(
    'appliance console\n',
  );
});

it('says so when devstack wrote no logs at all', async () => {
  const empty = join(root, 'empty-logs');
  mkdirSync(empty);
  const r = await runProgram(SCRIPT, [join(root, 'nothing'), empty], {
    PATH: SYSTEM_PATH,
    HOME: root,
    AKANDA_CI_ETC_ROOT: join(root, 'no-etc'),
    AKANDA_CI_VAR_LOG: join(root, 'no-var-log'),
  });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/devstack did not get far enough to write any/);
});
