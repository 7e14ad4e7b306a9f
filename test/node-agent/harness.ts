/**
 * Shared set-up of the node-agent tests: real git repositories with change refs, s3rver as the
 * upload target, the node API stand-in, and a job spec like the control plane sends.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { runNodeAgent, type AgentOutcome, type NodeAgentOptions } from '../../lambda/node-agent/main';
import { createGitRepos, type CreatedChange, type GitRepos } from '../support/git-repos';
import { startFakeNodeApi, type FakeNodeApi } from './fake-node-api';
import { startLogTarget, type LogTarget } from './log-target';

export const execFileAsync = promisify(execFile);

export const CLAIM_TOKEN = 'claim-token-7f3a9c';
export const RESULT_TOKEN = 'result-token-4e8b21';
export const PROJECT = 'stackforge/akanda-rug';
export const DEPENDENCY = 'stackforge/akanda-neutron';

export interface Harness {
  repos: GitRepos;
  logs: LogTarget;
  api: FakeNodeApi;
  change: CreatedChange;
  dependency: CreatedChange;
  close(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const repos = await createGitRepos();
  const base = await repos.createProject(PROJECT, { files: { 'tox.ini': '[tox]\n', 'README.rst': 'rug\n' } });
  await repos.tag(PROJECT, '2015.1.0', base.revision);
  const change = await repos.addChange(PROJECT, { change: 1234, patchset: 2, files: { 'akanda/rug/x.py': 'x = 2\n' } });
  await repos.createProject(DEPENDENCY);
  const dependency = await repos.addChange(DEPENDENCY, { change: 567, patchset: 1 });
  const logs = await startLogTarget();
  const api = await startFakeNodeApi();
  return {
    repos,
    logs,
    api,
    change,
    dependency,
    async close() {
      await api.close();
      await logs.close();
      await repos.cleanup();
    },
  };
}

/** A job spec as `/node/claim` returns it; tests override fields, hostile ones included. */
export function jobSpec(harness: Harness, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    buildId: randomBytes(8).toString('hex'),
    buildsetId: 'bs-1',
    pipeline: 'check',
    project: PROJECT,
    branch: 'master',
    change: 1234,
    patchset: 2,
    ref: harness.change.ref,
    revision: harness.change.revision,
    jobName: 'pep8',
    run: 'true',
    timeoutSeconds: 60,
    imageMode: 'none',
    gitUrl: harness.repos.gitUrl,
    repositories: [
      { project: PROJECT, ref: harness.change.ref, revision: harness.change.revision },
      { project: DEPENDENCY, ref: harness.dependency.ref, revision: harness.dependency.revision },
    ],
    ...overrides,
  };
}

export interface AgentRun {
  outcome: AgentOutcome;
  buildId: string;
  workDir: string;
  keyPrefix: string;
  logLines: string[];
}

export function keyPrefixFor(buildId: string): string {
  return `logs/34/1234/2/check/pep8/${buildId.slice(0, 7)}/`;
}

/** Answers the claim with `job` and runs the agent in-process to its end. */
export async function runAgent(
  harness: Harness,
  job: Record<string, unknown>,
  options: Partial<NodeAgentOptions> = {},
): Promise<AgentRun> {
  const started = startAgent(harness, job, options);
  const outcome = await started.outcome;
  return { ...started, outcome };
}

export function startAgent(
  harness: Harness,
  job: Record<string, unknown>,
  options: Partial<NodeAgentOptions> = {},
): Omit<AgentRun, 'outcome'> & { outcome: Promise<AgentOutcome> } {
  const buildId = String(job.buildId);
  const keyPrefix = keyPrefixFor(buildId);
  const upload = harness.logs.presign(keyPrefix);
  let uploadValue: unknown;
  harness.api.onClaim = (body) => {
    if (body.buildId !== buildId || body.claimToken !== CLAIM_TOKEN) {
      return { status: 401, body: { error: 'wrong claim token' } };
    }
    return { status: 200, body: { job, upload: uploadValue, resultToken: RESULT_TOKEN } };
  };
  // As the control plane does: a freshly signed POST for the same prefix, for the claim's result token.
  harness.api.onUpload = async (body) => {
    if (body.buildId !== buildId || body.resultToken !== RESULT_TOKEN) {
      return { status: 401, body: { error: 'wrong result token' } };
    }
    return { status: 200, body: { upload: await harness.logs.presign(keyPrefix) } };
  };
  const logLines: string[] = [];
  const workDirReady = mkdtemp(path.join(tmpdir(), 'akanda-ci-agent-'));
  const result = { buildId, keyPrefix, logLines, workDir: '' };
  const outcome = (async () => {
    uploadValue = await upload;
    result.workDir = await workDirReady;
    return runNodeAgent({
      apiUrl: harness.api.url,
      buildId,
      claimToken: CLAIM_TOKEN,
      workDir: result.workDir,
      scriptsDir: path.resolve(__dirname, '../../scripts'),
      heartbeatSeconds: 60,
      killGraceSeconds: 0.5,
      claimRetrySeconds: 1,
      resultRetrySeconds: 5,
      uploadRetrySeconds: 5,
      httpTimeoutSeconds: 5,
      env: { ...process.env, GERRIT_HTTP_PASSWORD: 'gerrit-password-secret', WEBHOOK_TOKEN: 'webhook-token-secret' },
      log: (line) => logLines.push(line),
      ...options,
    });
  })();
  return {
    get buildId() {
      return result.buildId;
    },
    get keyPrefix() {
      return result.keyPrefix;
    },
    get workDir() {
      return result.workDir;
    },
    logLines,
    outcome,
  };
}

/** Polls until `condition` holds; the test's own timeout bounds it. */
export async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Alive and not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) {
    return false;
  }
  try {
    const state = readFileSync(stat, 'utf8').split(') ')[1]?.[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
