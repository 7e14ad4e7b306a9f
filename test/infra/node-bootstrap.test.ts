/**
 * The node bootstrap run for real by bash, with the commands that would change the machine
 * (shutdown, apt-get, node) and the network (curl) replaced by logging stand-ins on PATH.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipDeterministic, tar } from '../../lib/deterministic-tar';
import { nodeBootstrapCommands } from '../../lib/node-user-data';
import { removeTempDirs, tempDir } from './synth';

afterAll(removeTempDirs);

const AGENT_URL = 'https://d111.cloudfront.net/agent/node-agent.tar.gz';

const STUBS: Record<string, string> = {
  shutdown: 'echo "shutdown $*" >> "$STUB_LOG"',
  'apt-get': 'echo "apt-get $*" >> "$STUB_LOG"',
  node: 'echo "node $* (cwd $PWD)" >> "$STUB_LOG"; exit 3',
  // curl ... -o FILE URL: "downloads" $STUB_ARCHIVE.
  curl: [
    'out=""; prev=""',
    'for arg in "$@"; do [ "$prev" = "-o" ] && out="$arg"; prev="$arg"; done',
    'echo "curl ${@: -1}" >> "$STUB_LOG"',
    'cp "$STUB_ARCHIVE" "$out"',
  ].join('\n'),
};

function runBootstrap(archive: Buffer, declaredSha256: string) {
  const root = tempDir('bootstrap');
  const bin = join(root, 'bin');
  mkdirSync(bin);
  for (const [name, body] of Object.entries(STUBS)) {
    writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  writeFileSync(join(root, 'served.tar.gz'), archive);
  const home = join(root, 'opt', 'akanda-ci');
  const script = nodeBootstrapCommands({
    agentUrl: AGENT_URL,
    agentSha256: declaredSha256,
    maxLifetimeMinutes: 280,
    agentHome: home,
  }).join('\n');
  const run = spawnSync('bash', ['-c', script], {
    encoding: 'utf8',
    env: {
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      STUB_LOG: join(root, 'log'),
      STUB_ARCHIVE: join(root, 'served.tar.gz'),
    },
  });
  const log = readFileSync(join(root, 'log'), 'utf8').trim().split('\n');
  return { run, log, home };
}

const archive = gzipDeterministic(
  tar([{ path: 'node-agent.js', content: Buffer.from('process.exit(0);\n'), mode: 0o644 }]),
);
const sha256 = createHash('sha256').update(archive).digest('hex');

test('installs the tools, fetches and verifies the agent, runs it in EC2 mode, then powers off', () => {
  const { log, home } = runBootstrap(archive, sha256);
  expect(log).toEqual([
    'shutdown -h +280 akanda-ci: node lifetime limit reached',
    'apt-get -o DPkg::Lock::Timeout=300 update -q',
    'apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends nodejs git curl ca-certificates',
    `curl ${AGENT_URL}`,
    `node ${home}/node-agent.js --ec2 (cwd ${home})`,
    'shutdown -h now',
  ]);
  expect(readFileSync(join(home, 'node-agent.js'), 'utf8')).toBe('process.exit(0);\n');
});

test('an archive that does not match the synth-time sha256 is never run: the node powers off', () => {
  const tampered = gzipDeterministic(
    tar([{ path: 'node-agent.js', content: Buffer.from('require("child_process").execSync("evil");\n'), mode: 0o644 }]),
  );
  const { run, log } = runBootstrap(tampered, sha256);
  expect(run.status).not.toBe(0);
  expect(log.some((line) => line.startsWith('node '))).toBe(false);
  expect(log.at(-1)).toBe('shutdown -h now');
  expect(run.stderr).toContain('akanda-ci: bootstrap failed');
});
