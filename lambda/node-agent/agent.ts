/**
 * One build on one node, start to end: claim -> prepare and run (build-run.ts) -> ask for a fresh
 * upload right and publish the logs -> report the result.
 *
 * Every path ends with a log line and, once a result token is held, a result report, except a
 * timeout: the agent stops the job and uploads its logs but reports nothing, because TIMED_OUT is
 * the control plane's verdict (it declares it when the deadline of timeout plus grace passes and
 * no result came). Reporting FAILURE instead would turn every timeout into a plain failure.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { runBuild, type BuildResult } from './build-run';
import { ConsoleLog } from './console-log';
import { readFailureSummary } from './failure-summary';
import { describeError, redactUrl } from './http';
import { InvalidJobError, type ClaimedJob } from './job-spec';
import { BUILD_ID_PATTERN } from './names';
import { claimJob, reportResult, requestUpload, type NodeApiOptions, type NodeResult } from './node-api';
import { chooseUpload, publishLogs } from './publish-logs';

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
  /** How long to keep asking `/node/upload` for a fresh upload before falling back to the claim's. */
  uploadRequestRetrySeconds?: number;
  /** The same after a spot notice (two minutes to live, the upload needs them); default 10 s. */
  interruptedUploadRequestSeconds?: number;
  httpTimeoutSeconds?: number;
  /** The environment the job's allow-listed variables come from; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Agent log lines (no secrets in them); default stderr. */
  log?: (line: string) => void;
  /** Aborting stops the job (SIGTERM to the agent, a local fleet cancelling): logs are uploaded, no result reported. */
  signal?: AbortSignal;
}

/**
 * `TIMED_OUT` is never reported (see above), nor is `CANCELLED` (the build ended on the control
 * plane first, or the agent was told to stop); the others are what `/node/result` was sent.
 */
export type AgentResult = BuildResult;

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

/** After a spot notice, one request for a fresh upload may take this long (the whole ask: 10 s by default). */
const INTERRUPTED_REQUEST_TIMEOUT_MS = 5_000;

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
  const api: NodeApiOptions = { apiUrl: options.apiUrl, timeoutMs: (options.httpTimeoutSeconds ?? 30) * 1000, log };

  if (!BUILD_ID_PATTERN.test(options.buildId)) {
    log('refusing to start: the build id is not a valid build id');
    return { reported: false, elapsedSeconds: 0, error: 'invalid build id' };
  }
  if (!/^https?:\/\/[^\s]+$/.test(options.apiUrl)) {
    log('refusing to start: the node API URL is not an http(s) URL');
    return { reported: false, elapsedSeconds: 0, error: 'invalid node API URL' };
  }

  /** Reports a result; resolves to an outcome whose `error` says why the report failed, if it did. */
  const report = async (
    resultToken: string,
    result: NodeResult,
    outcome: Partial<AgentOutcome> = {},
    summary?: string,
  ) => {
    let error = outcome.error;
    try {
      const body = {
        buildId: options.buildId,
        resultToken,
        result,
        elapsedSeconds: elapsedSeconds(),
        ...(summary === undefined ? {} : { summary }),
      };
      await reportResult(api, body, (options.resultRetrySeconds ?? 600) * 1000);
      log(`reported ${result} for build ${options.buildId}`);
    } catch (reportError) {
      log(`cannot report ${result} for build ${options.buildId}: ${describeError(reportError)}`);
      error = `result report failed: ${describeError(reportError)}`;
    }
    return { ...outcome, result, reported: error === outcome.error, elapsedSeconds: elapsedSeconds(), error };
  };

  log(`claiming build ${options.buildId} from ${redactUrl(options.apiUrl)}`);
  let claimed: ClaimedJob;
  try {
    const budgetMs = (options.claimRetrySeconds ?? 300) * 1000;
    claimed = await claimJob(api, options.buildId, options.claimToken, budgetMs, options.signal);
  } catch (error) {
    const why = describeError(error);
    log(`cannot claim build ${options.buildId}: ${why}`);
    if (error instanceof InvalidJobError && error.resultToken !== undefined) {
      // The claim was spent: end the build now rather than at its deadline.
      return report(error.resultToken, 'ERROR', { error: why });
    }
    return { reported: false, elapsedSeconds: elapsedSeconds(), error: why };
  }

  const { job, upload, resultToken } = claimed;
  if (job.buildId !== options.buildId) {
    log(`the claim answered with build ${job.buildId}, not ${options.buildId}`);
    return report(resultToken, 'ERROR', { error: 'the claim answered for another build' });
  }

  // Absolute, because the job runs elsewhere (in the checkout) and gets these paths in its environment.
  const workDir = path.resolve(options.workDir);
  const paths = {
    workspace: path.join(workDir, 'workspace'),
    logDir: path.join(workDir, 'logs'),
    artifactDir: path.join(workDir, 'logs', 'artifacts'),
    scriptsDir: options.scriptsDir ?? defaultScriptsDir(),
  };
  try {
    await mkdir(paths.workspace, { recursive: true });
    await mkdir(paths.artifactDir, { recursive: true });
  } catch (error) {
    log(`cannot create the work directory: ${describeError(error)}`);
    return report(resultToken, 'ERROR', { error: 'no work directory' });
  }

  const consoleLog = new ConsoleLog(path.join(paths.logDir, 'job-output.txt'));
  const note = (line: string): void => {
    log(line);
    consoleLog.line(`akanda-ci: ${line}`);
  };
  const change = job.change === undefined ? '' : ` change ${job.change},${job.patchset ?? '?'}`;
  note(
    `build ${job.buildId}: job ${job.jobName} (${job.pipeline}) for ${job.project}${change}, ${job.ref} at ${job.revision}`,
  );

  let result: AgentResult;
  try {
    result = await runBuild({
      job,
      paths,
      baseEnv: options.env ?? process.env,
      consoleLog,
      note,
      log,
      api,
      resultToken,
      heartbeatMs: (options.heartbeatSeconds ?? 30) * 1000,
      killGraceMs: (options.killGraceSeconds ?? 10) * 1000,
      imdsUrl: options.imdsUrl,
      interruptionPollMs: (options.interruptionPollSeconds ?? 5) * 1000,
      signal: options.signal,
    });
  } catch (error) {
    // A bug, not a job failure; still the build must end with a report, not a hang.
    note(`unexpected failure: ${describeError(error)}`);
    result = 'ERROR';
  }

  const summary = await readFailureSummary(paths.logDir);
  note(`result ${result} after ${elapsedSeconds()} s; uploading the logs to ${upload.publicUrl}`);
  await consoleLog.close();
  // Within a spot notice's two minutes the upload itself needs the time: ask briefly, then fall back.
  const interrupted = result === 'INTERRUPTED';
  const requestApi = interrupted ? { ...api, timeoutMs: Math.min(api.timeoutMs, INTERRUPTED_REQUEST_TIMEOUT_MS) } : api;
  const requestBudgetMs =
    (interrupted ? (options.interruptedUploadRequestSeconds ?? 10) : (options.uploadRequestRetrySeconds ?? 60)) * 1000;
  const choice = await chooseUpload(
    upload,
    () => requestUpload(requestApi, { buildId: options.buildId, resultToken }, requestBudgetMs),
    log,
  );
  const uploadError =
    'error' in choice
      ? choice.error
      : await publishLogs(paths.logDir, choice.upload, {
          log,
          retryBudgetMs: (options.uploadRetrySeconds ?? 120) * 1000,
          timeoutMs: (options.httpTimeoutSeconds ?? 30) * 4000,
        });
  if (uploadError !== undefined) {
    log(uploadError);
    // A vote must link to its logs: without them the build is an ERROR, not a pass or a fail.
    if (result === 'SUCCESS' || result === 'FAILURE') {
      result = 'ERROR';
    }
  }

  const outcome = { logsUrl: upload.publicUrl, error: uploadError };
  if (result === 'TIMED_OUT' || result === 'CANCELLED') {
    log(
      result === 'TIMED_OUT'
        ? 'not reporting a result: the control plane declares TIMED_OUT when the deadline passes'
        : 'not reporting a result: the build ended on the control plane or the agent was stopped',
    );
    return { ...outcome, result, reported: false, elapsedSeconds: elapsedSeconds() };
  }
  return report(resultToken, result, outcome, result === 'FAILURE' || result === 'ERROR' ? summary : undefined);
}
