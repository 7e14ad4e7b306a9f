import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, runCli } from './run-cli';

describe('akanda-ci config-schema', () => {
  it('prints the JSON Schema that is committed as akanda-ci.schema.json', async () => {
    const result = await runCli(['config-schema']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(readFileSync(join(REPO_ROOT, 'akanda-ci.schema.json'), 'utf8'));
  });

  it('the shipped akanda-ci.yaml points editors at it', () => {
    expect(readFileSync(join(REPO_ROOT, 'akanda-ci.yaml'), 'utf8').split('\n')[0]).toBe(
      '# yaml-language-server: $schema=./akanda-ci.schema.json',
    );
  });

  it('takes no arguments', async () => {
    const result = await runCli(['config-schema', 'extra']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
  });
});
