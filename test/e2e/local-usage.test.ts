/** `akanda-ci local` refuses bad command lines and missing secrets with exit 2 and one clear line. */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const CLI = resolve(__dirname, '../../bin/akanda-ci.js');

function runLocal(args: string[], env: Record<string, string | undefined> = {}) {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, WEBHOOK_TOKEN: 'a-webhook-token-of-length' };
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete childEnv[name];
    else childEnv[name] = value;
  }
  const result = spawnSync(process.execPath, [CLI, 'local', ...args], {
    env: childEnv,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

it('prints its usage with --help', () => {
  const { status, stdout } = runLocal(['--help']);
  expect(status).toBe(0);
  expect(stdout).toContain('usage: akanda-ci local [--config FILE] [--port N]');
});

it('refuses a bad port, an unknown option, a missing token and an unreadable config', () => {
  const port = runLocal(['--port', '70000']);
  expect(port.status).toBe(2);
  expect(port.stderr).toContain('--port must be a number from 0 to 65535');

  const unknown = runLocal(['--verbose']);
  expect(unknown.status).toBe(2);
  expect(unknown.stderr).toContain("Unknown option '--verbose'");

  const noToken = runLocal(['--config', 'akanda-ci.yaml'], { WEBHOOK_TOKEN: undefined });
  expect(noToken.status).toBe(2);
  expect(noToken.stderr).toContain('set WEBHOOK_TOKEN to a secret of at least 16 characters');

  const missing = runLocal(['--config', '/nonexistent/akanda-ci.yaml']);
  expect(missing.status).toBe(2);
  expect(missing.stderr).toContain('/nonexistent/akanda-ci.yaml: cannot read the config file (ENOENT)');
  expect(missing.stdout).not.toContain('listening');
});

it('documents --node-imds-url and refuses an IMDS URL that is not a plain http(s) base', () => {
  expect(runLocal(['--help']).stdout).toContain(
    '--node-imds-url URL  nodes watch URL/latest/meta-data/spot/instance-action',
  );
  for (const url of [
    '169.254.169.254',
    'file:///etc/passwd',
    'http://user:secret@127.0.0.1:1',
    'http://127.0.0.1:1/?x=1',
  ]) {
    const refused = runLocal(['--node-imds-url', url]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(
      /^akanda-ci local: --node-imds-url must be (an http\(s\) URL|a base URL without credentials, query or fragment)\n/,
    );
    expect(refused.stderr).not.toContain('secret');
    expect(refused.stdout).not.toContain('listening');
  }
});
