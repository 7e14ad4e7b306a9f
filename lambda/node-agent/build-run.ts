/**
 * The middle of a build: prepare the repositories, then run the job, while four things may end
 * it early: the job timeout, a spot interruption notice, a heartbeat answer saying the build is
 * over on the control plane, and the agent being told to stop (SIGTERM). Whichever comes first
 * wins; the others are ignored.
 */
import { TERMINAL_STATES, type BuildState } from '../core/lifecycle';
import type { ConsoleLog } from './console-log';
import { describeError } from './http';
import { GitPrepareError, prepareRepositories, projectDir } from './git-prepare';
import { ImdsClient } from './imds';
import { watchForInterruption } from './interruption-watcher';
import { jobEnvironment, type JobPaths } from './job-environment';
import { startJob, type RunningJob } from './job-runner';
import type { JobSpec } from './job-spec';
import { startHeartbeat, type NodeApiOptions, type NodeResult } from './node-api';

/** Why the agent ends a job early: its timeout, a spot interruption, or the build ended elsewhere. */
type StopReason = 'timeout' | 'interrupted' | 'cancelled';

/** What the run came to: a result to report, or why there is none to report. */
export type BuildResult = NodeResult | 'TIMED_OUT' | 'CANCELLED';

export interface BuildRunOptions {
  job: JobSpec;
  paths: JobPaths;
  baseEnv: NodeJS.ProcessEnv;
  consoleLog: ConsoleLog;
  /** Writes to the agent log and the console log. */
  note: (line: string) => void;
  log: (line: string) => void;
  api: NodeApiOptions;
  resultToken: string;
  heartbeatMs: number;
  killGraceMs: number;
  /** Set on EC2: watch the spot interruption notice. */
  imdsUrl?: string;
  interruptionPollMs: number;
  signal?: AbortSignal;
}

/**
 * Build states in which this node's attempt has no further use: the build was sent back to the
 * queue (a newer attempt owns it) or is over.
 */
const BUILD_OVER_STATES: ReadonlySet<string> = new Set<BuildState>(['queued', 'launching', ...TERMINAL_STATES]);

const STOPPED_RESULT: Record<StopReason, BuildResult> = {
  timeout: 'TIMED_OUT',
  interrupted: 'INTERRUPTED',
  cancelled: 'CANCELLED',
};

export async function runBuild(options: BuildRunOptions): Promise<BuildResult> {
  const { job, note } = options;
  let finished = false;
  let stopReason: StopReason | undefined;
  let runningJob: RunningJob | undefined;
  const abortPreparation = new AbortController();
  const stop = (reason: StopReason, why: string): void => {
    if (stopReason !== undefined || finished) {
      return;
    }
    note(`${why}; stopping the job`);
    stopReason = reason;
    abortPreparation.abort();
    runningJob?.stop();
  };

  // The timeout counts from the claim: fetching is part of the build, as the control plane's deadline is.
  const deadline = setTimeout(
    () => stop('timeout', `job timeout of ${job.timeoutSeconds} s reached`),
    job.timeoutSeconds * 1000,
  );
  const heartbeat = startHeartbeat(options.api, job.buildId, options.resultToken, options.heartbeatMs, (state) => {
    // Cancelled (superseded), timed out, or relaunched after an interruption: this attempt is over.
    if (BUILD_OVER_STATES.has(state)) {
      stop('cancelled', `the build is ${state} on the control plane`);
    }
  });
  const watcher = options.imdsUrl
    ? watchForInterruption(
        new ImdsClient(options.imdsUrl),
        options.interruptionPollMs,
        (notice) =>
          stop('interrupted', `spot interruption notice (${notice.action}${notice.time ? ` at ${notice.time}` : ''})`),
        options.log,
      )
    : undefined;
  const onAbort = (): void => stop('cancelled', 'the agent was asked to stop');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) {
    onAbort();
  }

  try {
    const result = await prepareAndRun();
    return stopReason === undefined ? result : STOPPED_RESULT[stopReason];
  } finally {
    finished = true;
    clearTimeout(deadline);
    heartbeat.stop();
    watcher?.stop();
    options.signal?.removeEventListener('abort', onAbort);
  }

  async function prepareAndRun(): Promise<BuildResult> {
    try {
      if (!job.repositories.some((repository) => repository.project === job.project)) {
        throw new GitPrepareError(`the project under test ${job.project} is not among the job's repositories`);
      }
      await prepareRepositories(job.repositories, {
        gitUrl: job.gitUrl,
        workspace: options.paths.workspace,
        log: note,
        signal: abortPreparation.signal,
      });
    } catch (error) {
      if (stopReason === undefined) {
        note(`preparing the repositories failed: ${describeError(error)}`);
      }
      return 'ERROR';
    }
    if (stopReason !== undefined) {
      return 'ERROR';
    }

    note(`running in ${job.project}: ${job.run}`);
    runningJob = startJob({
      command: job.run,
      cwd: projectDir(options.paths.workspace, job.project),
      env: jobEnvironment(job, options.paths, options.baseEnv),
      consoleLog: options.consoleLog,
      killGraceMs: options.killGraceMs,
    });
    const exit = await runningJob.done;
    if (exit.startError !== undefined) {
      note(`the job could not start: ${exit.startError}`);
      return 'ERROR';
    }
    note(exit.signal ? `the job was killed by ${exit.signal}` : `the job exited with status ${exit.exitCode}`);
    return exit.exitCode === 0 ? 'SUCCESS' : 'FAILURE';
  }
}
