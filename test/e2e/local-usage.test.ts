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
