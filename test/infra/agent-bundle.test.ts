/**
 * The node-agent archive is reproducible (its sha256 goes into the launch templates), unpacks with
 * the system's tar to what the user data runs, and the bootstrap refuses malformed inputs.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentArchive, buildAgentBundle } from '../../lib/agent-bundle';
import { tar } from '../../lib/deterministic-tar';
import { nodeBootstrapCommands } from '../../lib/node-user-data';
import { REPOSITORY_ROOT, removeTempDirs, tempDir } from './synth';

function untar(archive: string): string {
  const target = tempDir('untar');
  const run = spawnSync('tar', ['-xzf', archive, '-C', target], { encoding: 'utf8' });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return target;
}

let bundle: ReturnType<typeof buildAgentBundle>;

beforeAll(() => {
  bundle = buildAgentBundle({ outputRoot: tempDir('agent') });
});

afterAll(removeTempDirs);

test('two builds of the same sources give the same bytes', () => {
  const again = buildAgentBundle({ outputRoot: tempDir('agent') });
  expect(again.sha256).toBe(bundle.sha256);
  expect(readFileSync(again.archivePath).equals(readFileSync(bundle.archivePath))).toBe(true);
});

test('unpacks to a runnable node-agent.js and the job scripts, without the benchmarks', () => {
  const target = untar(bundle.archivePath);
  const check = spawnSync(process.execPath, ['--check', join(target, 'node-agent.js')], { encoding: 'utf8' });
  expect(check.status).toBe(0);
  expect(existsSync(join(target, 'scripts', 'jobs'))).toBe(true);
  expect(existsSync(join(target, 'scripts', 'bench'))).toBe(false);
  const listing = spawnSync('tar', ['-tzvf', bundle.archivePath], { encoding: 'utf8' }).stdout;
  for (const line of listing.trim().split('\n')) expect(line).toMatch(/ root\/root .* 2000-01-01 00:00 /);
});

test('executable scripts stay executable, others do not; content changes the hash, leftovers do not', () => {
  const root = tempDir('repo');
  mkdirSync(join(root, 'lambda', 'node-agent'), { recursive: true });
  writeFileSync(join(root, 'lambda', 'node-agent', 'main.ts'), 'console.log("agent");\n');
  mkdirSync(join(root, 'scripts', 'jobs'), { recursive: true });
  writeFileSync(join(root, 'scripts', 'jobs', 'run.sh'), '#!/bin/sh\necho run\n');
  chmodSync(join(root, 'scripts', 'jobs', 'run.sh'), 0o700);
  writeFileSync(join(root, 'scripts', 'jobs', 'notes.txt'), 'notes\n');
  chmodSync(join(root, 'scripts', 'jobs', 'notes.txt'), 0o600);
  const first = buildAgentBundle({ repositoryRoot: root, outputRoot: join(root, 'out') });
  const target = untar(first.archivePath);
  expect(statSync(join(target, 'scripts', 'jobs', 'run.sh')).mode & 0o777).toBe(0o755);
  expect(statSync(join(target, 'scripts', 'jobs', 'notes.txt')).mode & 0o777).toBe(0o644);
  // Editor and Python leftovers do not change the archive.
  mkdirSync(join(root, 'scripts', 'jobs', '__pycache__'));
  writeFileSync(join(root, 'scripts', 'jobs', '__pycache__', 'x.cpython-312.pyc'), 'cache');
  writeFileSync(join(root, 'scripts', 'jobs', '.run.sh.swp'), 'swap');
  writeFileSync(join(root, 'scripts', 'jobs', 'run.sh~'), 'backup');
  expect(buildAgentBundle({ repositoryRoot: root, outputRoot: join(root, 'out') }).sha256).toBe(first.sha256);
  writeFileSync(join(root, 'scripts', 'jobs', 'notes.txt'), 'changed\n');
  expect(buildAgentBundle({ repositoryRoot: root, outputRoot: join(root, 'out') }).sha256).not.toBe(first.sha256);
});

test('long paths use the ustar prefix field and unpack intact', () => {
  const deep = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(60)}.txt`;
  const root = tempDir('tar');
  writeFileSync(join(root, 'a.tar'), tar([{ path: deep, content: Buffer.from('deep\n'), mode: 0o644 }]));
  const run = spawnSync('tar', ['-xf', join(root, 'a.tar'), '-C', root], { encoding: 'utf8' });
  expect(run.status).toBe(0);
  expect(readFileSync(join(root, deep), 'utf8')).toBe('deep\n');
  expect(() => tar([{ path: 'x'.repeat(300), content: Buffer.alloc(0), mode: 0o644 }])).toThrow(/path too long/);
});

test('the repository agent archive builds from the real sources', () => {
  expect(agentArchive(REPOSITORY_ROOT).subarray(0, 2).toString('hex')).toBe('1f8b');
});

describe('bootstrap commands', () => {
  const valid = {
    agentUrl: 'https://d111.cloudfront.net/agent/node-agent.tar.gz',
    agentSha256: 'a'.repeat(64),
    maxLifetimeMinutes: 280,
  };

  test('verify the archive before unpacking and power off at the end of every path', () => {
    const script = nodeBootstrapCommands(valid).join('\n');
    const verify = script.indexOf('sha256sum --check --strict');
    expect(verify).toBeGreaterThan(script.indexOf('curl --fail'));
    expect(script.indexOf('tar -xzf')).toBeGreaterThan(verify);
    expect(script).toContain("shutdown -h +280 'akanda-ci: node lifetime limit reached'");
    expect(script).toContain("--proto '=https'");
    expect(script.trim().split('\n').at(-1)).toBe('shutdown -h now');
    expect(script).not.toMatch(/password|secret|token/i);
  });

  test('the script is valid bash', () => {
    const run = spawnSync('bash', ['-n'], { input: nodeBootstrapCommands(valid).join('\n'), encoding: 'utf8' });
    expect(run.status).toBe(0);
  });

  test('refuses a malformed hash or lifetime; quotes the URL', () => {
    expect(() => nodeBootstrapCommands({ ...valid, agentSha256: "abc'; rm -rf /" })).toThrow(/64 hex/);
    expect(() => nodeBootstrapCommands({ ...valid, maxLifetimeMinutes: 0 })).toThrow(/positive integer/);
    const script = nodeBootstrapCommands({ ...valid, agentUrl: "https://x/a'b" }).join('\n');
    expect(script).toContain(`'https://x/a'\\''b'`);
  });
});
