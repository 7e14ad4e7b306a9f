/**
 * The reaper over the store on dynalite and the Gerrit stand-in: nodes that never claim their build
 * (relaunched as the next attempt, NODE_FAILURE on the last), and the sweep that re-sends the lost
 * schedule or report message of a stuck buildset, a bounded batch per run. Nodes are a recording
 * Fleet; the queues are arrays the test delivers (or loses) itself.
 */
import type { Fleet, LaunchOutcome, LaunchRequest, ManagedInstance } from '../../lambda/adapters/fleet';
import { FIRST_SWEEP_AFTER_SECONDS } from '../../lambda/adapters/store';
import { handleNodeRequest } from '../../lambda/control/node-api';
import { reap, SWEEP_BATCH, SWEEP_INTERVAL_SECONDS } from '../../lambda/control/reaper';
import type { BuildRecord, BuildsetRecord } from '../../lambda/control/records';
import { reportBuildset } from '../../lambda/control/reporter';
import { type Emulator, startDynalite } from '../../lambda/local/emulators';
import { GerritStandin } from '../support/gerrit-standin';
import { controlHarness, PROJECT } from './harness';

const TOKEN = 'reaper-test-webhook-token';
const CLAIM_TIMEOUT = 5 * 60;

class RecordingFleet implements Fleet {
  readonly launches: LaunchRequest[] = [];
  readonly terminated: string[] = [];
  readonly live = new Map<string, { buildId: string; launchSeq: number }>();
  private next = 0;

  async launch(request: LaunchRequest): Promise<LaunchOutcome> {
    this.launches.push(request);
    const instanceId = `i-${String(++this.next).padStart(17, '0')}`;
    this.live.set(instanceId, { buildId: request.buildId, launchSeq: request.launchSeq });
    return { status: 'launched', instanceId, lifecycle: 'spot' };
  }

  async terminateInstances(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      this.terminated.push(id);
      this.live.delete(id);
    }
  }

  async listManagedInstances(): Promise<ManagedInstance[]> {
    return [...this.live].map(([instanceId, node]) => ({ instanceId, state: 'running', ...node }));
  }
}

let dynamo: Emulator;
let gerrit: GerritStandin;
let clock = 3_000_000;

async function setup(maxAttempts = 3) {
  const harness = await controlHarness({
    dynamo,
    gerrit,
    table: 'reaper',
    webhookToken: TOKEN,
    now: () => clock,
    fleet: new RecordingFleet(),
    config: {
      jobs: [{ name: 'pep8', node: 'small', run: 'tox -e pep8', timeout: '30m' }],
      projects: [{ name: PROJECT, check: ['pep8'], gate: ['pep8'] }],
      limits: { maxConcurrentNodes: 50, timeoutGrace: '5m', claimTimeout: '5m', maxAttempts },
    },
  });
  const claim = (buildId: string, claimToken: string) =>
    handleNodeRequest(harness.ports, '/node/claim', { buildId, claimToken });
  return { ...harness, claim };
}

beforeAll(async () => {
  dynamo = await startDynalite();
  gerrit = await GerritStandin.start();
});

afterAll(async () => {
  await gerrit.close();
  await dynamo.close();
});

describe('a node that never claims its build', () => {
  it('is terminated at the claim deadline and the build relaunched as its next attempt, with a new claim token', async () => {
    const t = await setup();
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    await t.drain();
    const first = await t.buildOf(buildsetId);
    expect(first).toMatchObject({
      state: 'launching',
      attempt: 1,
      launchSeq: 1,
      claimDeadlineAt: clock + CLAIM_TIMEOUT,
    });

    clock += CLAIM_TIMEOUT - 1;
    expect(await reap(t.ports)).toMatchObject({ unclaimed: [], timedOut: [], terminated: [] });
    clock += 1;
    expect(await reap(t.ports)).toMatchObject({ unclaimed: [first.buildId], timedOut: [], terminated: [] });
    expect(await t.store.getBuild<BuildRecord>(first.buildId)).toMatchObject({ state: 'queued', attempt: 2 });
    expect(t.fleet.terminated).toEqual([first.instanceId]);
    expect(t.reports).toEqual([]);
    expect(t.warnings).toContain(`build ${first.buildId} pep8: its node did not claim it in time`);
    // The reaper pokes the scheduler, which relaunches; the slot was freed hours before the job deadline.
    expect(t.schedule).toEqual([{ kind: 'launch' }]);
    await t.drain();
    const second = await t.buildOf(buildsetId);
    expect(second).toMatchObject({ state: 'launching', attempt: 2, launchSeq: 2 });
    expect(second.instanceId).not.toBe(first.instanceId);

    // The first node turning up late cannot claim; the second one can, and then the claim deadline is gone.
    expect((await t.claim(first.buildId, t.fleet.launches[0]!.claimToken)).status).toBe(401);
    expect((await t.claim(first.buildId, t.fleet.launches[1]!.claimToken)).status).toBe(200);
    clock += CLAIM_TIMEOUT * 2;
    expect(await reap(t.ports)).toMatchObject({ unclaimed: [], timedOut: [], terminated: [] });
    expect(await t.store.getBuild<BuildRecord>(first.buildId)).toMatchObject({ state: 'running', attempt: 2 });
    t.store.destroy();
  });

  it('ends NODE_FAILURE, reported once, when no attempt ever claimed', async () => {
    const t = await setup(2);
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    await t.drain();
    const { buildId } = await t.buildOf(buildsetId);
    for (let attempt = 1; attempt <= 2; attempt++) {
      clock += CLAIM_TIMEOUT;
      expect(await reap(t.ports)).toMatchObject({ unclaimed: [buildId], timedOut: [] });
      await t.drain();
    }
    const done = await t.store.getBuild<BuildRecord>(buildId);
    expect(done).toMatchObject({ state: 'node_failure', result: 'NODE_FAILURE', attempt: 2 });
    expect(done?.reason).toBe('node did not claim the build on attempt 2 of 2');
    expect(t.fleet.launches).toHaveLength(2);
    expect(t.fleet.terminated).toEqual(t.fleet.launches.map((_, i) => `i-${String(i + 1).padStart(17, '0')}`));
    expect(t.reports).toEqual([{ buildsetId }]);
    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
    const reviews = gerrit.reviews.filter((r) => r.changeNumber === change.number);
    expect(reviews.map((r) => r.input.labels)).toEqual([{ Verified: -1 }]);
    expect(reviews[0]!.input.message).toContain('NODE_FAILURE');
    t.store.destroy();
  });

  it('relaunches a build whose launcher died after launch_requested (no node, nothing to terminate)', async () => {
    const t = await setup();
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    // The launcher dies inside CreateFleet: launch_requested is written, nothing answers it ever.
    let reached!: () => void;
    const inLaunch = new Promise<void>((resolve) => (reached = resolve));
    const fleetLaunch = t.fleet.launch.bind(t.fleet);
    t.fleet.launch = () => {
      reached();
      return new Promise<LaunchOutcome>(() => {});
    };
    void t.drain();
    await inLaunch;
    t.fleet.launch = fleetLaunch;
    t.schedule.length = 0;
    const queued = await t.buildOf(buildsetId);
    expect(queued).toMatchObject({ state: 'launching', attempt: 1 });
    expect(queued).not.toHaveProperty('instanceId');

    clock += CLAIM_TIMEOUT;
    expect(await reap(t.ports)).toMatchObject({ unclaimed: [queued.buildId], terminated: [] });
    await t.drain();
    expect(await t.store.getBuild<BuildRecord>(queued.buildId)).toMatchObject({ state: 'launching', attempt: 2 });
    expect(t.fleet.launches.map((l) => l.launchSeq)).toEqual([2]);
    t.store.destroy();
  });
});

describe('the buildset sweep', () => {
  it('re-sends the schedule message of a buildset left pending, then leaves it alone once scheduled', async () => {
    const t = await setup();
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    t.schedule.length = 0; // lost (dead-lettered after a long Gerrit outage, or never sent)

    clock += FIRST_SWEEP_AFTER_SECONDS - 1;
    expect(await reap(t.ports)).toMatchObject({ nudged: [] });
    clock += 1;
    expect(await reap(t.ports)).toMatchObject({ nudged: [buildsetId] });
    expect(t.schedule).toEqual([{ kind: 'buildset', buildsetId, supersedes: [] }]);
    expect(t.warnings).toContain(`buildset ${buildsetId}: still pending, scheduling it again`);

    // Lost again: the next re-send backs off (twice the interval).
    t.schedule.length = 0;
    clock += SWEEP_INTERVAL_SECONDS;
    expect(await reap(t.ports)).toMatchObject({ nudged: [buildsetId] });
    clock += SWEEP_INTERVAL_SECONDS;
    expect(await reap(t.ports)).toMatchObject({ nudged: [] });
    clock += SWEEP_INTERVAL_SECONDS;
    expect(await reap(t.ports)).toMatchObject({ nudged: [buildsetId] });

    // The scheduler is idempotent: the re-sent message and a late original schedule one buildset, one build.
    t.schedule.push({ kind: 'buildset', buildsetId, supersedes: [] });
    await t.drain();
    const buildset = await t.store.getBuildset<BuildsetRecord>(buildsetId);
    expect(buildset).toMatchObject({ state: 'scheduled', buildIds: [expect.any(String)] });
    expect(t.fleet.launches).toHaveLength(1);
    expect((await t.buildOf(buildsetId)).state).toBe('launching');

    // Scheduled with a build under way: looked at, nothing sent.
    const claimed = await t.claim(buildset!.buildIds[0]!, t.fleet.launches[0]!.claimToken);
    expect(claimed.status).toBe(200);
    await t.store.putBuildsetSweep({ buildsetId, dueAt: clock, nudges: 3 });
    clock += 20 * 60;
    t.reports.length = 0;
    t.schedule.length = 0;
    expect(await reap(t.ports)).toMatchObject({ nudged: [], timedOut: [] });
    expect(t.reports).toEqual([]);
    expect(t.schedule.filter((m) => m.kind === 'buildset')).toEqual([]);
    const [next] = await t.store.dueBuildsetSweeps(clock + SWEEP_INTERVAL_SECONDS, 10);
    expect(next).toEqual({ buildsetId, dueAt: clock + SWEEP_INTERVAL_SECONDS, nudges: 3 });
    t.store.destroy();
  });

  it('re-sends report_if_complete for a scheduled buildset whose builds are all over, until it is reported', async () => {
    const t = await setup();
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    await t.drain();
    const build = await t.buildOf(buildsetId);
    const claim = await t.claim(build.buildId, t.fleet.launches[0]!.claimToken);
    const resultToken = claim.body.resultToken as string;
    clock += FIRST_SWEEP_AFTER_SECONDS - 100;
    const result = { buildId: build.buildId, resultToken, result: 'SUCCESS', elapsedSeconds: 1700 };
    expect((await handleNodeRequest(t.ports, '/node/result', result)).status).toBe(200);
    expect(t.reports).toEqual([{ buildsetId }]);
    t.reports.length = 0; // the report message is lost (a crash, or dead-lettered before the reporter ran)

    // Due at the first sweep, but the last build ended moments ago: not yet.
    clock = (await t.store.getBuildset<BuildsetRecord>(buildsetId))!.createdAt + FIRST_SWEEP_AFTER_SECONDS;
    const finishedAt = (await t.store.getBuild<BuildRecord>(build.buildId))!.finishedAt!;
    expect(clock - finishedAt).toBeLessThan(5 * 60);
    expect(await reap(t.ports)).toMatchObject({ nudged: [] });
    clock = finishedAt + 5 * 60;
    expect(await reap(t.ports)).toMatchObject({ nudged: [buildsetId] });
    expect(t.reports).toEqual([{ buildsetId }]);

    // The reporter is idempotent: two deliveries, one review; the reported buildset leaves the sweep.
    t.reports.push({ buildsetId });
    for (const message of t.reports.splice(0)) await reportBuildset(t.ports, message.buildsetId);
    const reviews = gerrit.reviews.filter((r) => r.changeNumber === change.number);
    expect(reviews.map((r) => r.input.labels)).toEqual([{ Verified: 1 }]);
    expect((await t.store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('reported');
    expect(await t.store.dueBuildsetSweeps(clock + 30 * 24 * 3600, 100)).toEqual([]);
    t.store.destroy();
  });

  it('reports an unrunnable buildset whose report message was lost', async () => {
    const t = await setup();
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    // Scheduled without builds (as for a Depends-On cycle), its report message lost.
    const pending = (await t.store.getBuildset<BuildsetRecord>(buildsetId))!;
    const unrunnable: BuildsetRecord = {
      ...pending,
      state: 'scheduled',
      unrunnable: 'Depends-On cycle: 1 -> 2 -> 1',
      version: pending.version + 1,
    };
    expect(await t.store.putBuildset(unrunnable)).toBe(true);
    clock += FIRST_SWEEP_AFTER_SECONDS;
    expect(await reap(t.ports)).toMatchObject({ nudged: [buildsetId] });
    expect(t.reports).toEqual([{ buildsetId }]);
    t.store.destroy();
  });

  it('looks at most SWEEP_BATCH buildsets per run, the longest overdue first, and drops closed ones', async () => {
    const t = await setup();
    const ids: string[] = [];
    for (let i = 0; i < SWEEP_BATCH + 5; i++) {
      clock += 1;
      const change = gerrit.createChange({ project: PROJECT });
      ids.push(await t.ingest(gerrit.patchsetCreatedEvent(change.number)));
    }
    t.schedule.length = 0;
    // One of them was closed by a writer that died before it dropped the sweep marker: the sweep drops it.
    const skipped = (await t.store.getBuildset<BuildsetRecord>(ids[0]!))!;
    expect(
      await t.store.putBuildset({ ...skipped, state: 'skipped', closedAt: clock, version: skipped.version + 1 }),
    ).toBe(true);
    await t.store.putBuildsetSweep({
      buildsetId: ids[0]!,
      dueAt: skipped.createdAt + FIRST_SWEEP_AFTER_SECONDS,
      nudges: 0,
    });

    clock += FIRST_SWEEP_AFTER_SECONDS;
    const first = await reap(t.ports);
    expect(first.nudged).toEqual(ids.slice(1, SWEEP_BATCH));
    expect((await reap(t.ports)).nudged).toEqual(ids.slice(SWEEP_BATCH));
    expect((await reap(t.ports)).nudged).toEqual([]);
    expect(t.schedule).toHaveLength(ids.length - 1);
    const due = await t.store.dueBuildsetSweeps(clock + 365 * 24 * 3600, 100);
    expect(due.map((s) => s.buildsetId).sort()).toEqual(ids.slice(1).sort());
    t.store.destroy();
  });

  it('gives up with an error log after the last re-send', async () => {
    const t = await setup();
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    t.schedule.length = 0;
    clock += FIRST_SWEEP_AFTER_SECONDS;
    await t.store.putBuildsetSweep({ buildsetId, dueAt: clock, nudges: 10 });
    expect(await reap(t.ports)).toMatchObject({ nudged: [] });
    expect(t.errors).toEqual([`buildset ${buildsetId}: still pending after 10 re-sends`]);
    expect(await t.store.dueBuildsetSweeps(clock + 365 * 24 * 3600, 100)).toEqual([]);
    t.store.destroy();
  });
});
