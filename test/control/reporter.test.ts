/**
 * The reporter against the store on dynalite and the Gerrit stand-in through the real client:
 * racing deliveries, lost answers and retries still give exactly one review per buildset.
 */
import type { Store } from '../../lambda/adapters/store';
import { newBuild } from '../../lambda/core/lifecycle';
import type { ControlPorts, LoggerPort } from '../../lambda/control/ports';
import type { BuildRecord, BuildsetRecord } from '../../lambda/control/records';
import { reportBuildset } from '../../lambda/control/reporter';
import { type Emulator, startDynalite } from '../../lambda/local/emulators';
import { GerritStandin } from '../support/gerrit-standin';
import { controlHarness, FAKE_ARTIFACTS, PROJECT } from './harness';

let dynamo: Emulator;
let store: Store;
let gerrit: GerritStandin;
let ports: ControlPorts;
let clock = 1_000_000;
const lines: string[] = [];

beforeAll(async () => {
  dynamo = await startDynalite();
  gerrit = await GerritStandin.start();
  const logger: LoggerPort = {
    info: (m) => lines.push(m),
    warn: (m) => lines.push(m),
    error: (m) => lines.push(`ERROR ${m}`),
  };
  const unused = () => Promise.reject(new Error('not used by the reporter'));
  ({ store, ports } = await controlHarness({
    dynamo,
    gerrit,
    table: 'reporter-test',
    webhookToken: 'unused',
    now: () => clock,
    fleet: { launch: unused, terminateInstances: unused, listManagedInstances: unused },
    config: {
      jobs: [
        { name: 'pep8', node: 'small', run: 'true' },
        { name: 'py27', node: 'small', run: 'true', voting: false },
      ],
      projects: [{ name: PROJECT, check: ['pep8', 'py27'] }],
    },
    ports: {
      scheduleQueue: { send: unused },
      reportQueue: { send: unused },
      artifacts: { logUpload: unused, publicUrl: FAKE_ARTIFACTS.publicUrl },
      logger,
      reportRetry: { delaySeconds: (attempt) => 2 ** attempt, maxAttempts: 4 },
    },
  }));
});

afterAll(async () => {
  store.destroy();
  await gerrit.close();
  await dynamo.close();
});

/** A scheduled buildset whose builds are all finished (pep8 as given, py27 failed, non-voting). */
async function finishedBuildset(pep8: 'succeeded' | 'failed' = 'succeeded') {
  const change = gerrit.createChange({ project: PROJECT });
  const patchset = gerrit.currentPatchset(change.number);
  const buildsetId = `bs${change.number}`;
  const builds: BuildRecord[] = (['pep8', 'py27'] as const).map((job, i) => ({
    ...newBuild(
      {
        buildId: `${buildsetId}${job}`,
        buildsetId,
        jobName: job,
        nodeLabel: 'small',
        voting: job === 'pep8',
        timeoutSeconds: 600,
        graceSeconds: 60,
        maxAttempts: 3,
      },
      clock + i,
    ),
    state: job === 'pep8' ? pep8 : 'failed',
    result: job === 'pep8' && pep8 === 'succeeded' ? 'SUCCESS' : 'FAILURE',
    elapsedSeconds: 65,
    finishedAt: clock,
    version: 0,
    run: 'true',
    imageMode: 'none',
    publishesImage: false,
    logKeyPrefix: `logs/${change.number}/${job}/`,
    logUrl: `https://logs.example/logs/${change.number}/${job}/`,
  }));
  for (const build of builds) expect(await store.putBuild(build)).toBe(true);
  const buildset: BuildsetRecord = {
    buildsetId,
    state: 'scheduled',
    pipeline: 'check',
    project: PROJECT,
    branch: 'master',
    change: change.number,
    patchset: 1,
    changeId: change.changeId,
    ref: patchset.ref,
    revision: patchset.revision,
    eventJson: '{}',
    triggerIndex: 0,
    buildIds: builds.map((b) => b.buildId),
    repositories: [],
    createdAt: clock,
    version: 0,
  };
  expect(await store.putBuildset(buildset)).toBe(true);
  return { change: change.number, buildsetId };
}

it('posts one review however many deliveries race for it, even while the first POST is slow', async () => {
  const { change, buildsetId } = await finishedBuildset();
  // The first POST is held until every other delivery has finished: they must not post meanwhile.
  const client = ports.gerrit;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = false;
  const racing: ControlPorts = {
    ...ports,
    gerrit: {
      getChange: (...args) => client.getChange(...args),
      getChangedFiles: (...args) => client.getChangedFiles(...args),
      resolveDependency: (...args) => client.resolveDependency(...args),
      queryOpenChanges: (...args) => client.queryOpenChanges(...args),
      hasReview: (...args) => client.hasReview(...args),
      postReview: async (...args) => {
        if (!held) {
          held = true;
          await gate;
        }
        return client.postReview(...args);
      },
    },
  };
  const first = reportBuildset(racing, buildsetId);
  while (!held) await new Promise((resolve) => setImmediate(resolve));
  const others = await Promise.all(Array.from({ length: 5 }, () => reportBuildset(racing, buildsetId)));
  release();
  expect(await first).toEqual({ kind: 'done' });
  // They look again when the first attempt's lease ends, and find the buildset reported.
  expect(others).toEqual(Array(5).fill({ kind: 'retry', delaySeconds: 60 }));
  expect(gerrit.reviewPosts.filter((r) => r.changeNumber === change)).toHaveLength(1);
  const [review] = gerrit.reviews.filter((r) => r.changeNumber === change);
  expect(review!.input).toEqual({
    message:
      'Build succeeded (check pipeline).\n\n' +
      `- pep8 https://logs.example/logs/${change}/pep8/ : SUCCESS in 1m 05s\n` +
      `- py27 https://logs.example/logs/${change}/py27/ : FAILURE in 1m 05s (non-voting)`,
    labels: { Verified: 1 },
    tag: 'autogenerated:akanda-ci',
  });
  expect((await store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('reported');
  // Deliveries after the report change nothing.
  expect(await reportBuildset(ports, buildsetId)).toEqual({ kind: 'done' });
  expect(gerrit.reviewPosts.filter((r) => r.changeNumber === change)).toHaveLength(1);
});

it('retries with the policy delay, leaves early duplicates alone, and finds a review whose answer was lost', async () => {
  const { change, buildsetId } = await finishedBuildset('failed');
  gerrit.failRequests({ status: 503, count: 1, only: 'review' });
  expect(await reportBuildset(ports, buildsetId)).toEqual({ kind: 'retry', delaySeconds: 2 });
  // A duplicate delivery before the retry is due leaves the report to the retry.
  expect(await reportBuildset(ports, buildsetId)).toEqual({ kind: 'done' });
  expect(gerrit.reviewPosts.filter((r) => r.changeNumber === change)).toHaveLength(1);

  clock += 2;
  gerrit.failRequests({ status: 'reset', count: 1, only: 'review', afterApplying: true });
  expect(await reportBuildset(ports, buildsetId)).toEqual({ kind: 'retry', delaySeconds: 4 });
  clock += 4;
  expect(await reportBuildset(ports, buildsetId)).toEqual({ kind: 'done' });
  const accepted = gerrit.reviews.filter((r) => r.changeNumber === change);
  expect(accepted).toHaveLength(1);
  expect(accepted[0]!.input.labels).toEqual({ Verified: -1 });
  expect(gerrit.reviewPosts.filter((r) => r.changeNumber === change)).toHaveLength(2);
  expect((await store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('reported');
});

it('dead-letters after the last attempt and drops a review the closed change refuses', async () => {
  const first = await finishedBuildset();
  gerrit.failRequests({ status: 503, count: 4, only: 'review' });
  const steps = [];
  for (let i = 0; i < 4; i++) {
    const step = await reportBuildset(ports, first.buildsetId);
    steps.push(step);
    if (step.kind === 'retry') clock += step.delaySeconds;
  }
  expect(steps).toEqual([
    { kind: 'retry', delaySeconds: 2 },
    { kind: 'retry', delaySeconds: 4 },
    { kind: 'retry', delaySeconds: 8 },
    { kind: 'done' },
  ]);
  expect((await store.getBuildset<BuildsetRecord>(first.buildsetId))?.state).toBe('dead_lettered');
  expect(
    lines.some((l) => l.startsWith(`ERROR buildset ${first.buildsetId}: review dead-lettered after 4 attempts`)),
  ).toBe(true);

  const closed = await finishedBuildset();
  gerrit.setStatus(closed.change, 'ABANDONED');
  expect(await reportBuildset(ports, closed.buildsetId)).toEqual({ kind: 'done' });
  expect((await store.getBuildset<BuildsetRecord>(closed.buildsetId))?.state).toBe('dropped');
  expect(gerrit.reviews.filter((r) => r.changeNumber === closed.change)).toHaveLength(0);
});
