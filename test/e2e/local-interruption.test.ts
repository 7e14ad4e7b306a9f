/**
 * Spot interruptions end to end through `akanda-ci local --node-imds-url`: an IMDSv2 stand-in on
 * 127.0.0.1 answers 404 on `spot/instance-action` until the test serves a notice; the real node
 * agent sees it, stops its job, uploads its logs and reports INTERRUPTED; the control plane sends
 * the build back to the queue with the next attempt and relaunches it, or ends it RETRY_LIMIT
 * after `limits.maxAttempts`. Each test runs its own `akanda-ci local` and, once it has stopped,
 * reads the build from the table it left behind.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Store } from '../../lambda/adapters/store';
import type { ConfigInput } from '../../lambda/core/config';
import type { BuildRecord } from '../../lambda/control/records';
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynalite } from '../../lambda/local/emulators';
import { LOCAL_TABLE } from '../../lambda/local/run';
import { startFakeImds, type FakeImds } from '../node-agent/fake-imds';
import { GerritStandin } from '../support/gerrit-standin';
import { createGitRepos, type GitRepos } from '../support/git-repos';
import { type LocalProcess, startLocalProcess } from './local-process';

const WEBHOOK_TOKEN = randomBytes(16).toString('hex');
const MAX_ATTEMPTS = 3;

let gerrit: GerritStandin;
let repos: GitRepos;
let workDir: string;
/** The `held` job waits until this file exists, so an attempt is still running when its notice comes. */
let releaseFile: string;
let imds: FakeImds | undefined;
let local: LocalProcess | undefined;
let nextChange = 301;

function config(): ConfigInput {
  return {
    gerrit: { url: gerrit.url, gitUrl: repos.gitUrl, username: gerrit.username },
    nodes: { local: { instanceTypes: ['local'] } },
    jobs: [
      {
        name: 'held',
        node: 'local',
        timeout: '2m',
        run: `while [ ! -e '${releaseFile}' ]; do sleep 0.1; done; echo released`,
      },
      { name: 'doomed', node: 'local', timeout: '2m', run: 'sleep 600' },
    ],
    projects: [
      { name: 'e2e/spot', check: ['held'] },
      { name: 'e2e/spot-always', check: ['doomed'] },
    ],
    limits: { timeoutGrace: '1s', maxAttempts: MAX_ATTEMPTS, maxConcurrentNodes: 2 },
  };
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'akanda-ci-e2e-spot-'));
  releaseFile = join(workDir, 'release');
  gerrit = await GerritStandin.start();
  repos = await createGitRepos(join(workDir, 'git'));
  for (const project of ['e2e/spot', 'e2e/spot-always']) {
    await repos.createProject(project, { files: { 'README.rst': `${project} readme\n` } });
  }
  await writeFile(join(workDir, 'akanda-ci.yaml'), stringify(config()));
});

afterEach(async () => {
  await local?.stop();
  local = undefined;
  await imds?.close();
  imds = undefined;
});

afterAll(async () => {
  await gerrit?.close();
  await rm(workDir, { recursive: true, force: true });
});

/** `akanda-ci local` whose nodes watch a fresh IMDS stand-in. */
async function startWithImds(name: string): Promise<{ local: LocalProcess; imds: FakeImds; dataDir: string }> {
  imds = await startFakeImds({});
  const dataDir = join(workDir, name);
  local = await startLocalProcess({
    configPath: join(workDir, 'akanda-ci.yaml'),
    dataDir,
    env: { WEBHOOK_TOKEN, GERRIT_HTTP_PASSWORD: gerrit.password },
    args: ['--reaper-interval', '0.2', '--retry-scale', '0.005', '--node-imds-url', imds.url],
  });
  await local.waitForLine(new RegExp(`nodes watch ${imds.url.replace(/[.]/g, '\\.')} for spot interruption notices`));
  return { local, imds, dataDir };
}

async function newChange(project: string): Promise<number> {
  const number = nextChange++;
  const created = await repos.addChange(project, { change: number, patchset: 1, files: { 'change.txt': 'x' } });
  gerrit.createChange({ project, number, revision: created.revision, files: ['change.txt'] });
  const response = await fetch(`${local!.url}/webhook/${WEBHOOK_TOKEN}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(gerrit.patchsetCreatedEvent(number)),
  });
  expect(response.status).toBe(202);
  return number;
}

function linesAbout(run: LocalProcess, buildId: string, pattern: RegExp): string[] {
  return run.lines.filter((line) => line.includes(`build ${buildId} `) && pattern.test(line));
}

/** The node agent logs of a build's launches (`<data>/nodes/<buildId>-<launchSeq>/`), oldest first. */
async function agentLogs(dataDir: string, buildId: string): Promise<string[]> {
  const nodes = join(dataDir, 'nodes');
  const launches = (await readdir(nodes))
    .filter((name) => name.startsWith(`${buildId}-`))
    .sort((a, b) => Number(a.slice(buildId.length + 1)) - Number(b.slice(buildId.length + 1)));
  return Promise.all(launches.map((name) => readFile(join(nodes, name, 'node-agent.log'), 'utf8')));
}

/** The build as the stopped local instance left it in its table. */
async function storedBuild(dataDir: string, buildId: string): Promise<BuildRecord | undefined> {
  const dynamo = await startDynalite(join(dataDir, 'dynamodb'));
  const store = new Store(LOCAL_TABLE, {
    endpoint: dynamo.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  try {
    return await store.getBuild<BuildRecord>(buildId);
  } finally {
    store.destroy();
    await dynamo.close();
  }
}

it('relaunches a node interrupted by a spot notice and votes once, on the second attempt', async () => {
  const { local, imds, dataDir } = await startWithImds('relaunch');
  expect(existsSync(releaseFile)).toBe(false);
  const change = await newChange('e2e/spot');

  const running = await local.waitForLine(/build (\w+) held: launching -> running/);
  const buildId = running[1]!;
  // Only the node running now gets the notice; its relaunch finds none.
  imds.interruptNext();
  await local.waitForLine(new RegExp(`build ${buildId} held: running -> queued`));
  expect(imds.noticesServed).toBe(1);
  await writeFile(releaseFile, 'go\n');

  const [review] = await gerrit.waitForReviews(1, { change });
  expect(review!.input.labels).toEqual({ Verified: 1 });
  expect(String(review!.input.message)).toMatch(
    /^Build succeeded \(check pipeline\)\.\n\n- held http:\S+ : SUCCESS in /,
  );
  await local.waitForLine(/buildset \w+: reporting -> reported/);
  expect(await local.stop()).toBe(0);

  expect(linesAbout(local, buildId, /launching -> running/)).toHaveLength(2);
  expect(linesAbout(local, buildId, /running -> queued/)).toHaveLength(1);
  expect(linesAbout(local, buildId, /running -> succeeded SUCCESS/)).toHaveLength(1);
  const [first, second, ...more] = await agentLogs(dataDir, buildId);
  expect(more).toEqual([]);
  expect(first).toContain('spot interruption notice (terminate at ');
  expect(first).toContain(`reported INTERRUPTED for build ${buildId}`);
  expect(second).not.toContain('spot interruption notice');
  expect(second).toContain(`reported SUCCESS for build ${buildId}`);
  expect(imds.noticesServed).toBe(1);
  expect(gerrit.reviews.filter((r) => r.changeNumber === change)).toHaveLength(1);

  const build = await storedBuild(dataDir, buildId);
  expect(build).toMatchObject({ state: 'succeeded', attempt: 2 });
});

it('ends a build interrupted on every attempt RETRY_LIMIT after limits.maxAttempts, with one report', async () => {
  const { local, imds, dataDir } = await startWithImds('retry-limit');
  imds.interrupt();
  const change = await newChange('e2e/spot-always');

  const [review] = await gerrit.waitForReviews(1, { change });
  expect(review!.input.labels).toEqual({ Verified: -1 });
  expect(String(review!.input.message)).toMatch(
    /^Build failed \(check pipeline\)\.\n\n- doomed http:\S+ : RETRY_LIMIT/,
  );
  await local.waitForLine(/buildset \w+: reporting -> reported/);
  expect(await local.stop()).toBe(0);

  const [, buildId] = local.lines
    .map((line) => line.match(/build (\w+) doomed: running -> retry_limit RETRY_LIMIT/))
    .find(Boolean)!;
  expect(linesAbout(local, buildId!, /launching -> running/)).toHaveLength(MAX_ATTEMPTS);
  expect(linesAbout(local, buildId!, /running -> queued/)).toHaveLength(MAX_ATTEMPTS - 1);
  const logs = await agentLogs(dataDir, buildId!);
  expect(logs).toHaveLength(MAX_ATTEMPTS);
  for (const log of logs) expect(log).toContain(`reported INTERRUPTED for build ${buildId}`);
  expect(imds.noticesServed).toBe(MAX_ATTEMPTS);
  expect(gerrit.reviews.filter((r) => r.changeNumber === change)).toHaveLength(1);

  const build = await storedBuild(dataDir, buildId!);
  expect(build).toMatchObject({ state: 'retry_limit', attempt: MAX_ATTEMPTS });
});
