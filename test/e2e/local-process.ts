/**
 * `akanda-ci local` as a child process, the way a person runs it: the test reads the URL it
 * prints, waits for its state-change lines, and stops it with SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

const REPO_ROOT = resolve(__dirname, '../..');

export interface LocalProcess {
  url: string;
  /** Every stdout line so far. */
  readonly lines: string[];
  /** Waits for a line matching `pattern` at index >= `from`; resolves with its match. */
  waitForLine(pattern: RegExp, options?: { from?: number; timeoutMs?: number }): Promise<RegExpMatchArray>;
  /** SIGTERM, then waits for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export async function startLocalProcess(options: {
  configPath: string;
  dataDir: string;
  env: Record<string, string>;
  args?: string[];
}): Promise<LocalProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      // The npm `bin` shim: what `npx akanda-ci local` runs.
      resolve(REPO_ROOT, 'bin/akanda-ci.js'),
      'local',
      '--config',
      options.configPath,
      '--port',
      '0',
      '--data-dir',
      options.dataDir,
      ...(options.args ?? []),
    ],
    { cwd: REPO_ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
    for (const wake of [...waiters]) wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  let running = true;
  void exited.then(() => {
    running = false;
    for (const wake of [...waiters]) wake();
  });

  const waitForLine = (pattern: RegExp, { from = 0, timeoutMs = 45_000 } = {}) =>
    new Promise<RegExpMatchArray>((done, fail) => {
      const check = () => {
        for (let i = Math.max(0, from); i < lines.length; i++) {
          const match = lines[i]!.match(pattern);
          if (match) {
            waiters.delete(check);
            clearTimeout(timer);
            done(match);
            return;
          }
        }
        if (!running) {
          waiters.delete(check);
          clearTimeout(timer);
          fail(new Error(`akanda-ci local exited before printing ${pattern}\n${tail(lines, stderr)}`));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        fail(new Error(`no line matching ${pattern} within ${timeoutMs} ms\n${tail(lines, stderr)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  const listening = await waitForLine(/listening on (http:\/\/127\.0\.0\.1:\d+)/, { timeoutMs: 30_000 });
  return {
    url: listening[1]!,
    lines,
    waitForLine,
    stop: async () => {
      if (running) child.kill('SIGTERM');
      return exited;
    },
  };
}

function tail(lines: string[], stderr: string[]): string {
  return `--- stdout (last 40 lines)\n${lines.slice(-40).join('\n')}\n--- stderr\n${stderr.join('').slice(-2000)}`;
}
