import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './run-cli';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'akanda-ci-validate-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('akanda-ci validate-config', () => {
  it('accepts the shipped akanda-ci.yaml (the default path)', async () => {
    const result = await runCli(['validate-config']);
    expect(result).toEqual({ code: 0, stdout: 'akanda-ci.yaml: valid (5 projects, 4 jobs)\n', stderr: '' });
  });

  it('lists every problem of a bad file, one per line, with the path of each key; exit 2', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      [
        'gerrit: { url: https://review.example.org, username: ci }',
        'nodes: { small: { instanceTypes: [t3.small] } }',
        'jobs:',
        '  - { name: a, run: x, node: small }',
        '  - { name: b, run: x, node: small }',
        '  - { name: c, run: x, node: small, timeout: ninety }',
        'projects: [{ name: p, check: [a], colour: blue }]',
        '',
      ].join('\n'),
    );
    const result = await runCli(['validate-config', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `${file}: projects[0].colour: unknown key\n${file}: jobs[2].timeout: expected a duration like 90m\n`,
    );
  });

  it('rejects what cdk synth rejects: the deploy rules run too', async () => {
    const file = join(dir, 'undeployable.yaml');
    writeFileSync(
      file,
      [
        'gerrit: { url: https://review.example.org, username: ci }',
        'nodes: { devstack: { instanceTypes: [c8i.large], nestedVirtualization: true, rootVolumeGiB: 120 } }',
        'jobs: [{ name: dsvm, run: x, node: devstack }]',
        'projects: [{ name: p, check: [dsvm] }]',
        'deploy: { stackPrefix: AkandaCiWithAVeryLongPrefix }',
        '',
      ].join('\n'),
    );
    const result = await runCli(['validate-config', '--config', file]);
    expect(result).toEqual({
      code: 2,
      stdout: '',
      stderr:
        `${file}: nodes.devstack.instanceTypes[0]: "c8i.large" is too small for devstack: use c8i.2xlarge or larger (at least 8 vCPU and 16 GiB)\n` +
        `${file}: deploy.stackPrefix: at most 20 characters: it also names the S3 buckets, whose names are limited to 63\n`,
    });
  });

  it('a missing file is a clear error, exit 2', async () => {
    const result = await runCli(['validate-config', '--config', join(dir, 'nope.yaml')]);
    expect(result).toEqual({
      code: 2,
      stdout: '',
      stderr: `${join(dir, 'nope.yaml')}: cannot read the config file (ENOENT)\n`,
    });
  });

  it('an unknown option is a usage error', async () => {
    const result = await runCli(['validate-config', '--strict']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage: akanda-ci validate-config [--config FILE]');
  });
});
