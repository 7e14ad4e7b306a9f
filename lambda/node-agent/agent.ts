/**
 * One build on one node, start to end: claim -> prepare repositories -> run the job (heartbeat
 * and spot-interruption watch meanwhile) -> index pages -> upload -> report the result.
 *
 * Every path ends with a log line and, once a result token is held, a result report, except a
 * timeout: the agent stops the job and uploads its logs but reports nothing, because TIMED_OUT is
 * the control plane's verdict (it declares it when the deadline of timeout plus grace passes and
 * no result came). Reporting FAILURE instead would turn every timeout into a plain failure.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ConsoleLog } from './console-log';
import { GitPrepareError, prepareRepositories, projectDir } from './git-prepare';
import { describeError, redactUrl } from './http';
import { ImdsClient } from './imds';
import { writeIndexPages } from './index-html';
import { watchForInterruption } from './interruption-watcher';
import { jobEnvironment } from './job-environment';
import { startJob, type RunningJob, type StopReason } from './job-runner';
import { InvalidJobError, type ClaimedJob } from './job-spec';
import { BUILD_ID_PATTERN } from './names';
import { claimJob, reportResult, startHeartbeat, type NodeApiOptions, type NodeResult } from './node-api';
import { uploadDirectory } from './uploader';

export interface NodeAgentOptions {
  /** Base URL of the node API (`/node/claim` etc. are appended). */
  apiUrl: string;
  buildId: string;
  claimToken: string;
  /** Holds `workspace/` and `logs/` (with `logs/artifacts/`); best empty. */
  workDir: string;
  /** This repository's `scripts/` on the node; default: found next to the agent. */
  scriptsDir?: string;
  /** Instance metadata endpoint; when set, the spot interruption notice is watched. */
  imdsUrl?: string;
  heartbeatSeconds?: number;
  interruptionPollSeconds?: number;
  /** Between SIGTERM and SIGKILL when stopping the job. */
  killGraceSeconds?: number;
  /** How long to keep retrying an unreachable or failing API. */
  claimRetrySeconds?: number;
  resultRetrySeconds?: number;
  uploadRetrySeconds?: number;
  httpTimeoutSeconds?: number;
  /** The environment the job's allow-listed variables come from; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Agent log lines (no secrets in them); default stderr. */
  log?: (line: string) => void;
  /** Aborting stops the job (SIGTERM to the agent, a local fleet cancelling): logs are uploaded, no result reported. */
  signal?: AbortSignal;
}

/**
 * `TIMED_OUT` is never reported (see above), nor is `CANCELLED` (the control plane ended the
 * build first and told the agent through a heartbeat answer); the others are what `/node/result` was sent.
 */
export type AgentResult = NodeResult | 'TIMED_OUT' | 'CANCELLED';

export interface AgentOutcome {
  /** What became of the job; absent when there was none (the claim failed). */
  result?: AgentResult;
  /** Whether `/node/result` accepted the result. */
  reported: boolean;
  elapsedSeconds: number;
  /** Public URL of the uploaded logs. */
  logsUrl?: string;
  /** Why the agent could not do its whole work (claim refused, upload or report failed). */
  error?: string;
}

/** Build states in which this node's attempt has no further use (lambda/core/lifecycle.ts). */
const BUILD_OVER_STATES = new Set([
  'queued',
  'launching',
  'succeeded',
  'failed',
  'timed_out',
  'node_failure',
  'retry_limit',
  'cancelled',
]);

export function defaultLog(line: string): void {
  process.stderr.write(`${new Date().toISOString()} node-agent: ${line}\n`);
}

/** `scripts/` beside the bundled agent (the node tarball), else the repository's. */
export function defaultScriptsDir(): string {
  const bundled = path.join(__dirname, 'scripts');
  return existsSync(bundled) ? bundled : path.resolve(__dirname, '..', '..', 'scripts');
}

export async function runNodeAgent(options: NodeAgentOptions): Promise<AgentOutcome> {
  const started = Date.now();
  const elapsedSeconds = (): number => Math.round((Date.now() - started) / 1000);
  const log = options.log ?? defaultLog;
  const api: NodeApiOptions = {
    apiUrl: options.apiUrl,
    timeoutMs: (options.httpTimeoutSeconds ?? 30) * 1000,
    log,
  };

  if (!BUILD_ID_PATTERN.test(options.buildId)) {
    log('refusing to start: the build id is not a valid build id');
    return { reported: false, elapsedSeconds: 0, error: 'invalid build id' };
  }
  if (!/^https?:\/\/[^\s]+$/.test(options.apiUrl)) {
    log('refusing to start: the node API URL is not an http(s) URL');
    return { reported: false, elapsedSeconds: 0, error: 'invalid node API URL' };
  }

  /** Reports a result; resolves to why it failed, or undefined once the API accepted it. */
  const reportWith = async (resultToken: string, result: NodeResult): Promise<string | undefined> => {
    try {
      const budgetMs = (options.resultRetrySeconds ?? 600) * 1000;
      await reportResult(
        api,
        { buildId: options.buildId, resultToken, result, elapsedSeconds: elapsedSeconds() },
        budgetMs,
      );
      log(`reported ${result} for build ${options.buildId}`);
      return undefined;
    } catch (error) {
      const why = describeError(error);
      log(`cannot report ${result} for build ${options.buildId}: ${why}`);
      return `result report failed: ${why}`;
    }
  };

  log(`claiming build ${options.buildId} from ${redactUrl(options.apiUrl)}`);
  let claimed: ClaimedJob;
  try {
    claimed = await claimJob(
      api,
      options.buildId,
      options.claimToken,
      (options.claimRetrySeconds ?? 300) * 1000,
      options.signal,
    );
  } catch (error) {
    const why = describeError(error);
    log(`cannot claim build ${options.buildId}: ${why}`);
    if (error instanceof InvalidJobError && error.resultToken !== undefined) {
      const reportError = await reportWith(error.resultToken, 'ERROR');
      return { result: 'ERROR', reported: reportError === undefined, elapsedSeconds: elapsedSeconds(), error: why };
    }
    return { reported: false, elapsedSeconds: elapsedSeconds(), error: why };
  }

  const { job, upload, resultToken } = claimed;
  const report = (result: NodeResult): Promise<string | undefined> => reportWith(resultToken, result);

  if (job.buildId !== options.buildId) {
    log(`the claim answered with build ${job.buildId}, not ${options.buildId}`);
    const error = await report('ERROR');
    return { result: 'ERROR', reported: error === undefined, elapsedSeconds: elapsedSeconds(), error };
  }

  // Absolute, because the job runs elsewhere (in the checkout) and gets these paths in its environment.
  const workDir = path.resolve(options.workDir);
  const workspace = path.join(workDir, 'workspace');
  const logDir = path.join(workDir, 'logs');
  const artifactDir = path.join(logDir, 'artifacts');
  try {
    await mkdir(workspace, { recursive: true });
    await mkdir(artifactDir, { recursive: true });
  } catch (error) {
    log(`cannot create the work directory: ${describeError(error)}`);
    const reportError = await report('ERROR');
    return {
      result: 'ERROR',
      reported: reportError === undefined,
      elapsedSeconds: elapsedSeconds(),
      error: 'no work directory',
    };
  }

  const consoleLog = new ConsoleLog(path.join(logDir, 'job-output.txt'));
  const note = (line: string): void => {
    log(line);
    consoleLog.line(`akanda-ci: ${line}`);
  };
  const change = job.change === undefined ? '' : ` change ${job.change},${job.patchset ?? '?'}`;
  note(
    `build ${job.buildId}: job ${job.jobName} in the ${job.pipeline} pipeline for ${job.project}${change} (${job.ref} at ${job.revision})`,
  );

  let phase: 'preparing' | 'running' | 'finishing' = 'preparing';
  let stopReason: StopReason | undefined;
  let runningJob: RunningJob | undefined;
  const abortPreparation = new AbortController();
  const stop = (reason: StopReason): void => {
    if (stopReason !== undefined || phase === 'finishing') {
      return;
    }
    stopReason = reason;
    abortPreparation.abort();
    runningJob?.stop(reason);
  };

  const heartbeat = startHeartbeat(
    api,
    options.buildId,
    resultToken,
    (options.heartbeatSeconds ?? 30) * 1000,
    (state) => {
      // Cancelled (superseded), timed out, or relaunched after an interruption: this attempt is over.
      if (BUILD_OVER_STATES.has(state)) {
        note(`the build is ${state} on the control plane; stopping the job`);
        stop('cancelled');
      }
    },
  );

  const onAbort = (): void => {
    note('the agent was asked to stop; stopping the job');
    stop('cancelled');
  };
  if (options.signal?.aborted) {
    onAbort();
  }
  options.signal?.addEventListener('abort', onAbort, { once: true });

  // The timeout counts from the claim: fetching is part of the build, as the control plane's deadline is.
  const deadline = setTimeout(() => {
    note(`job timeout of ${job.timeoutSeconds} s reached; stopping the job`);
    stop('timeout');
  }, job.timeoutSeconds * 1000);

  const watcher = options.imdsUrl
    ? watchForInterruption(
        new ImdsClient(options.imdsUrl),
        (options.interruptionPollSeconds ?? 5) * 1000,
        (notice) => {
          note(`spot interruption notice (${notice.action}${notice.time ? ` at ${notice.time}` : ''})`);
          stop('interrupted');
        },
        log,
      )
    : undefined;

  let result: AgentResult | undefined;
  try {
    if (!job.repositories.some((repository) => repository.project === job.project)) {
      throw new GitPrepareError(`the project under test ${job.project} is not among the job's repositories`);
    }
    await prepareRepositories(job.repositories, {
      gitUrl: job.gitUrl,
      workspace,
      log: note,
      signal: abortPreparation.signal,
    });
  } catch (error) {
    if (stopReason === undefined) {
      note(`preparing the repositories failed: ${describeError(error)}`);
      result = 'ERROR';
    }
  }

  if (result === undefined && stopReason === undefined) {
    phase = 'running';
    note(`running in ${job.project}: ${job.run}`);
    const env = jobEnvironment(
      job,
      { workspace, logDir, artifactDir, scriptsDir: options.scriptsDir ?? defaultScriptsDir() },
      options.env ?? process.env,
    );
    runningJob = startJob({
      command: job.run,
      cwd: projectDir(workspace, job.project),
      env,
      consoleLog,
      killGraceMs: (options.killGraceSeconds ?? 10) * 1000,
    });
    const exit = await runningJob.done;
    if (exit.stoppedBy === undefined) {
      if (exit.startError !== undefined) {
        note(`the job could not start: ${exit.startError}`);
        result = 'ERROR';
      } else {
        note(exit.signal ? `the job was killed by ${exit.signal}` : `the job exited with status ${exit.exitCode}`);
        result = exit.exitCode === 0 ? 'SUCCESS' : 'FAILURE';
      }
    }
  }
  phase = 'finishing';
  clearTimeout(deadline);
  watcher?.stop();
  options.signal?.removeEventListener('abort', onAbort);
  if (result === undefined) {
    result = stopReason === 'interrupted' ? 'INTERRUPTED' : stopReason === 'cancelled' ? 'CANCELLED' : 'TIMED_OUT';
  }

  note(`result ${result} after ${elapsedSeconds()} s; uploading the logs to ${upload.publicUrl}`);
  await consoleLog.close();

  let uploadError: string | undefined;
  try {
    await writeIndexPages(logDir, upload.keyPrefix);
    const summary = await uploadDirectory(logDir, upload, {
      log,
      retryBudgetMs: (options.uploadRetrySeconds ?? 120) * 1000,
      timeoutMs: (options.httpTimeoutSeconds ?? 30) * 4000,
    });
    log(`uploaded ${summary.uploaded} files (${summary.bytes} bytes) to ${upload.publicUrl}`);
    if (summary.failed.length > 0) {
      uploadError = `${summary.failed.length} of ${summary.failed.length + summary.uploaded} log files could not be uploaded`;
    }
  } catch (error) {
    uploadError = `publishing the logs failed: ${describeError(error)}`;
  }
  if (uploadError !== undefined) {
    log(uploadError);
    // A vote must link to its logs: without them the build is an ERROR, not a pass or a fail.
    if (result === 'SUCCESS' || result === 'FAILURE') {
      result = 'ERROR';
    }
  }

  heartbeat.stop();
  if (result === 'TIMED_OUT' || result === 'CANCELLED') {
    log(
      result === 'TIMED_OUT'
        ? 'not reporting a result: the control plane declares TIMED_OUT when the deadline passes'
        : 'not reporting a result: the build already ended on the control plane',
    );
    return { result, reported: false, elapsedSeconds: elapsedSeconds(), logsUrl: upload.publicUrl, error: uploadError };
  }
  const reportError = await report(result);
  return {
    result,
    reported: reportError === undefined,
    elapsedSeconds: elapsedSeconds(),
    logsUrl: upload.publicUrl,
    error: reportError ?? uploadError,
  };
}
