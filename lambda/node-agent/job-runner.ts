/**
 * Runs the job's `run` command: `bash -c <run>` in the checkout, as the leader of its own process
 * group so that the whole tree (devstack, tox, their children) can be stopped together, with
 * stdout and stderr streamed line by line into the console log.
 *
 * Stopping sends SIGTERM to the group, then SIGKILL after a grace period. Processes left behind
 * by a job that exited (`cmd &`) are stopped the same way, so nothing outlives the job.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { ConsoleLog } from './console-log';
import { sleep } from './http';

export interface JobExit {
  /** The shell's exit code; null when it was killed by a signal or never started. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The command could not be started (missing bash, missing directory). */
  startError?: string;
}

export interface RunningJob {
  readonly done: Promise<JobExit>;
  /** Stops the whole process group; `done` resolves once it is gone. */
  stop(): void;
}

export interface JobRunOptions {
  command: string;
  cwd: string;
  env: Record<string, string>;
  consoleLog: ConsoleLog;
  /** SIGTERM to SIGKILL. */
  killGraceMs: number;
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    // ESRCH: nothing left in the group.
    return false;
  }
}

/** TERM, wait up to the grace period for the group to empty, then KILL. */
async function terminateGroup(pgid: number, killGraceMs: number): Promise<void> {
  if (!signalGroup(pgid, 'SIGTERM')) {
    return;
  }
  const deadline = Date.now() + killGraceMs;
  while (Date.now() < deadline) {
    await sleep(50);
    if (!signalGroup(pgid, 0)) {
      return;
    }
  }
  signalGroup(pgid, 'SIGKILL');
  for (let i = 0; i < 100 && signalGroup(pgid, 0); i++) {
    await sleep(50);
  }
}

export function startJob(options: JobRunOptions): RunningJob {
  const { consoleLog } = options;
  let stopping: Promise<void> | undefined;

  let child: ChildProcessByStdio<null, Readable, Readable>;
  try {
    child = spawn('bash', ['-c', options.command], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    // Invalid arguments (a NUL byte in the command or the environment) throw instead of emitting 'error'.
    const startError = error instanceof Error ? error.message : String(error);
    return { done: Promise.resolve({ exitCode: null, signal: null, startError }), stop: () => undefined };
  }
  const pgid = child.pid;

  const stop = (): void => {
    if (stopping !== undefined || pgid === undefined) {
      return;
    }
    stopping = terminateGroup(pgid, options.killGraceMs);
  };

  const done = new Promise<JobExit>((resolve) => {
    const stdout = consoleLog.lineWriter();
    const stderr = consoleLog.lineWriter();
    child.stdout.on('data', (chunk: Buffer) => stdout.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.write(chunk));

    let settled = false;
    const finish = (exit: JobExit): void => {
      if (!settled) {
        settled = true;
        resolve(exit);
      }
    };

    child.on('error', (error) => {
      stdout.end();
      stderr.end();
      finish({ exitCode: null, signal: null, startError: error.message });
    });

    child.on('exit', (exitCode, signal) => {
      void (async () => {
        // Leftover background processes would keep the pipes open and run on unsupervised.
        stopping ??= pgid === undefined ? Promise.resolve() : terminateGroup(pgid, options.killGraceMs);
        await stopping;
        // A process that left the group (setsid) may still hold the pipes: do not wait for it.
        let fallback: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all([closed(child.stdout), closed(child.stderr)]),
          new Promise<void>((resolveFallback) => {
            fallback = setTimeout(() => {
              child.stdout.destroy();
              child.stderr.destroy();
              resolveFallback();
            }, 1000);
          }),
        ]);
        clearTimeout(fallback);
        stdout.end();
        stderr.end();
        finish({ exitCode, signal });
      })();
    });
  });

  return { done, stop };
}

function closed(stream: NodeJS.ReadableStream & { closed?: boolean }): Promise<void> {
  return new Promise((resolve) => {
    if (stream.closed) {
      resolve();
      return;
    }
    stream.once('close', () => resolve());
  });
}
