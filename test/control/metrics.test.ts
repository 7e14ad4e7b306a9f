/**
 * The control plane's metrics at the transitions that decide them, over the store on dynalite
 * and the Gerrit stand-in (whose clock is the test's, so event times line up): a recording
 * metrics port sees what the AWS adapter would write as EMF lines.
 */
import type { Fleet, LaunchOutcome, LaunchRequest, ManagedInstance } from '../../lambda/adapters/fleet';
import { METRICS_NAMESPACE as EMF_NAMESPACE } from '../../lambda/adapters/metrics';
import { nodeLost } from '../../lambda/control/instance-events';
import { voteClockStart } from '../../lambda/control/metrics';
import { handleNodeRequest } from '../../lambda/control/node-api';
import type { CountMetric, MetricDimensions, MetricName, MetricsPort } from '../../lambda/control/ports';
import { reap } from '../../lambda/control/reaper';
import type { BuildsetRecord } from '../../lambda/control/records';
import { reportBuildset } from '../../lambda/control/reporter';
import { handleScheduleMessage } from '../../lambda/control/scheduler';
import { type Emulator, startDynalite } from '../../lambda/local/emulators';
import { METRIC, METRICS_NAMESPACE } from '../../lib/ci-metrics';
import { GerritStandin } from '../support/gerrit-standin';
import { claimLatest, controlHarness, FAKE_ARTIFACTS, PROJECT } from './harness';

const TOKEN = 'metrics-test-webhook-token';

interface Recorded {
  unit: 'Count' | 'Seconds';
  name: MetricName;
  value: number;
  dimensions: Record<string, string>;
}

class RecordingMetrics implements MetricsPort {
  readonly recorded: Recorded[] = [];

  count<N extends CountMetric>(name: N, value: number, dimensions: MetricDimensions[N]): void {
    this.recorded.push({ unit: 'Count', name, value, dimensions: { ...dimensions } });
  }

  seconds<N extends 'TimeToVoteSeconds' | 'NodeSeconds'>(name: N, value: number, dimensions: MetricDimensions[N]) {
    this.recorded.push({ unit: 'Seconds', name, value, dimensions: { ...dimensions } });
  }

  /** What was recorded since the last call. */
  take(): Recorded[] {
    return this.recorded.splice(0);
  }
}

class ScriptedFleet implements Fleet {
  readonly launches: LaunchRequest[] = [];
  readonly live = new Map<string, string>();
  capacity = true;
  private next = 0;

  async launch(request: LaunchRequest): Promise<LaunchOutcome> {
    this.launches.push(request);
    if (!this.capacity) return { status: 'no_capacity', reason: 'InsufficientInstanceCapacity in every pool' };
    const instanceId = `i-${String(++this.next).padStart(17, '0')}`;
    this.live.set(instanceId, request.buildId);
    return { status: 'launched', instanceId, lifecycle: 'spot' };
  }

  async terminateInstances(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.live.delete(id);
  }

  async listManagedInstances(): Promise<ManagedInstance[]> {
    return [...this.live].map(([instanceId, buildId]) => ({ instanceId, buildId, state: 'running' }));
  }
}

let dynamo: Emulator;
let gerrit: GerritStandin;
let clock = 1_700_000_000;

beforeAll(async () => {
  dynamo = await startDynalite();
  gerrit = await GerritStandin.start({ now: () => clock * 1000 });
});

afterAll(async () => {
  await gerrit.close();
  await dynamo.close();
});

async function setup(options: { metrics?: MetricsPort; maxConcurrentNodes?: number } = {}) {
  const metrics = new RecordingMetrics();
  const harness = await controlHarness({
    dynamo,
    gerrit,
    table: 'metrics',
    webhookToken: TOKEN,
    now: () => clock,
    fleet: new ScriptedFleet(),
    config: {
      jobs: [{ name: 'pep8', node: 'small', run: 'tox -e pep8', timeout: '10m' }],
      projects: [{ name: PROJECT, check: ['pep8'] }],
      limits: { maxConcurrentNodes: options.maxConcurrentNodes ?? 2, timeoutGrace: '1m', maxAttempts: 3 },
    },
    ports: {
      artifacts: {
        logUpload: async (keyPrefix) => ({ url: 'https://s3.example/', fields: {}, keyPrefix, publicUrl: 'x' }),
        publicUrl: FAKE_ARTIFACTS.publicUrl,
      },
      metrics: options.metrics ?? metrics,
    },
  });
  const claim = (buildId: string) => claimLatest(harness.ports, harness.fleet, buildId);
  return { ...harness, metrics, claim };
}

it('uses the names and the namespace the dashboard and alarms read', () => {
  const names: Record<MetricName, true> = {
    BuildsFinished: true,
    LaunchFailures: true,
    TimeToVoteSeconds: true,
    NodeSeconds: true,
    RunningNodes: true,
    QueuedBuilds: true,
    ReportsDeadLettered: true,
  };
  expect(Object.keys(names).sort()).toEqual(Object.values(METRIC).sort());
  expect(EMF_NAMESPACE).toBe(METRICS_NAMESPACE);
});

it('a build from launch to vote: gauges, one BuildsFinished, its node time, and the time to vote', async () => {
  const t = await setup();
  const change = gerrit.createChange({ project: PROJECT });
  const eventAt = clock;
  const event = gerrit.patchsetCreatedEvent(change.number);
  clock += 5; // the webhook arrives a little after Gerrit made the event
  const buildsetId = await t.ingest(event);
  clock += 1;
  await t.drain();
  expect(t.metrics.take()).toEqual([
    { unit: 'Count', name: 'RunningNodes', value: 1, dimensions: {} },
    { unit: 'Count', name: 'QueuedBuilds', value: 0, dimensions: {} },
  ]);
  const build = await t.buildOf(buildsetId);
  const launchedAt = clock;

  clock += 20;
  const resultToken = await t.claim(build.buildId);
  expect(t.metrics.take()).toEqual([]); // launching -> running ends nothing

  clock += 300;
  const result = { buildId: build.buildId, resultToken, result: 'SUCCESS', elapsedSeconds: 280 };
  expect((await handleNodeRequest(t.ports, '/node/result', result)).status).toBe(200);
  // A repeated result changes nothing and records nothing.
  expect((await handleNodeRequest(t.ports, '/node/result', result)).status).toBe(200);
  expect(t.metrics.take()).toEqual([
    { unit: 'Count', name: 'BuildsFinished', value: 1, dimensions: { Result: 'SUCCESS' } },
    { unit: 'Seconds', name: 'NodeSeconds', value: clock - launchedAt, dimensions: { Label: 'small' } },
  ]);

  clock += 4;
  // The repeated result queued the report again (harmless: the reporter posts once).
  expect(t.reports).toEqual([{ buildsetId }, { buildsetId }]);
  expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
  expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
  expect(t.metrics.take()).toEqual([
    { unit: 'Seconds', name: 'TimeToVoteSeconds', value: clock - eventAt, dimensions: {} },
  ]);
  t.store.destroy();
});

it('counts launches that found no capacity, and no node time for a node that never was', async () => {
  const t = await setup();
  t.fleet.capacity = false;
  const change = gerrit.createChange({ project: PROJECT });
  const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
  await t.drain();
  expect(t.metrics.take()).toEqual([
    { unit: 'Count', name: 'LaunchFailures', value: 1, dimensions: {} },
    { unit: 'Count', name: 'RunningNodes', value: 0, dimensions: {} },
    { unit: 'Count', name: 'QueuedBuilds', value: 1, dimensions: {} },
  ]);
  expect((await t.buildOf(buildsetId)).state).toBe('queued');

  // Abandoned while it waits: ABORTED, and still no node time.
  await handleScheduleMessage(t.ports, {
    kind: 'supersede',
    supersedes: [{ project: PROJECT, change: change.number, belowPatchset: 2 }],
  });
  expect(t.metrics.take()).toEqual([
    { unit: 'Count', name: 'BuildsFinished', value: 1, dimensions: { Result: 'ABORTED' } },
  ]);
  t.store.destroy();
});

it('node time for an interrupted attempt, then TIMED_OUT at the deadline; the reaper reports the gauges', async () => {
  const t = await setup();
  const change = gerrit.createChange({ project: PROJECT });
  const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
  await t.drain();
  const first = await t.buildOf(buildsetId);
  clock += 10;
  await t.claim(first.buildId);
  clock += 50;
  t.metrics.take();

  await nodeLost(t.ports, first.buildId, first.instanceId!, 'spot interruption warning');
  expect(t.metrics.take()).toEqual([
    { unit: 'Seconds', name: 'NodeSeconds', value: 60, dimensions: { Label: 'small' } },
  ]);
  await t.drain(); // relaunched
  const second = await t.buildOf(buildsetId);
  expect(second).toMatchObject({ state: 'launching', attempt: 2 });
  await t.claim(second.buildId); // a node that never claims is relaunched at its deadline, not TIMED_OUT
  t.metrics.take();

  clock += 10 * 60 + 60; // job timeout + grace
  t.fleet.live.set('i-00000000000000099', 'no-such-build');
  expect(await reap(t.ports)).toMatchObject({ timedOut: [second.buildId] });
  expect(t.metrics.take()).toEqual([
    { unit: 'Count', name: 'BuildsFinished', value: 1, dimensions: { Result: 'TIMED_OUT' } },
    { unit: 'Seconds', name: 'NodeSeconds', value: 660, dimensions: { Label: 'small' } },
    // The timed-out node is terminated; the stray is still up while the reaper terminates it.
    { unit: 'Count', name: 'RunningNodes', value: 1, dimensions: {} },
    { unit: 'Count', name: 'QueuedBuilds', value: 0, dimensions: {} },
  ]);
  t.store.destroy();
});

describe('reviews that will never be posted', () => {
  /** A check buildset whose only build finished, ready to report; the metrics recorded so far are taken. */
  async function finishedBuildset(t: Awaited<ReturnType<typeof setup>>) {
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    await t.drain();
    const build = await t.buildOf(buildsetId);
    const resultToken = await t.claim(build.buildId);
    const result = { buildId: build.buildId, resultToken, result: 'SUCCESS', elapsedSeconds: 5 };
    expect((await handleNodeRequest(t.ports, '/node/result', result)).status).toBe(200);
    t.metrics.take();
    return { buildsetId, change };
  }

  it('a review Gerrit refuses (403: wrong password or no Verified right) is counted once', async () => {
    const t = await setup();
    const { buildsetId } = await finishedBuildset(t);
    gerrit.failNextReviews(1, 403);
    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
    expect(await t.store.getBuildset<BuildsetRecord>(buildsetId)).toMatchObject({ state: 'dead_lettered' });
    // A redelivery of the same report finds it settled and records nothing more.
    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
    expect(t.metrics.take()).toEqual([{ unit: 'Count', name: 'ReportsDeadLettered', value: 1, dimensions: {} }]);
    t.store.destroy();
  });

  it('a review still failing after the last retry is counted; the retries before it are not', async () => {
    const t = await setup();
    const { buildsetId } = await finishedBuildset(t);
    gerrit.failNextReviews(3, 503); // reportRetry.maxAttempts is 3
    for (let attempt = 1; attempt < 3; attempt++) {
      expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'retry', delaySeconds: 1 });
      expect(t.metrics.take()).toEqual([]);
      clock += 1;
    }
    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
    expect(await t.store.getBuildset<BuildsetRecord>(buildsetId)).toMatchObject({ state: 'dead_lettered' });
    expect(t.metrics.take()).toEqual([{ unit: 'Count', name: 'ReportsDeadLettered', value: 1, dimensions: {} }]);
    t.store.destroy();
  });

  it('a review dropped because the change is closed (409) is expected, not counted', async () => {
    const t = await setup();
    const { buildsetId } = await finishedBuildset(t);
    gerrit.failNextReviews(1, 409);
    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
    expect(await t.store.getBuildset<BuildsetRecord>(buildsetId)).toMatchObject({ state: 'dropped' });
    expect(t.metrics.take()).toEqual([]);
    t.store.destroy();
  });
});

it('a metrics port that throws costs the metric, never the build', async () => {
  const broken: MetricsPort = {
    count: () => {
      throw new Error('metrics backend down');
    },
    seconds: () => {
      throw new Error('metrics backend down');
    },
  };
  const t = await setup({ metrics: broken });
  const change = gerrit.createChange({ project: PROJECT });
  const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
  await t.drain();
  const build = await t.buildOf(buildsetId);
  const resultToken = await t.claim(build.buildId);
  const result = { buildId: build.buildId, resultToken, result: 'FAILURE', elapsedSeconds: 5 };
  expect((await handleNodeRequest(t.ports, '/node/result', result)).status).toBe(200);
  expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
  expect(await t.store.getBuildset<BuildsetRecord>(buildsetId)).toMatchObject({ state: 'reported' });
  expect(t.warnings.filter((w) => w === 'metrics not recorded').length).toBeGreaterThanOrEqual(3);
  t.store.destroy();
});

describe('voteClockStart', () => {
  const buildset = (eventJson: string) => ({ eventJson, createdAt: 1_700_000_100 }) as BuildsetRecord;

  it("takes Gerrit's eventCreatedOn, as a number or a numeric string", () => {
    expect(voteClockStart(buildset('{"eventCreatedOn":1700000040}'))).toBe(1_700_000_040);
    expect(voteClockStart(buildset('{"eventCreatedOn":"1700000040"}'))).toBe(1_700_000_040);
  });

  it('falls back to the arrival for a missing, later (clock skew), replayed or malformed event time', () => {
    expect(voteClockStart(buildset('{}'))).toBe(1_700_000_100);
    expect(voteClockStart(buildset('{"eventCreatedOn":1700000200}'))).toBe(1_700_000_100);
    expect(voteClockStart(buildset('{"eventCreatedOn":1418133772}'))).toBe(1_700_000_100);
    expect(voteClockStart(buildset('{"eventCreatedOn":"soon"}'))).toBe(1_700_000_100);
    expect(voteClockStart(buildset('not json'))).toBe(1_700_000_100);
  });
});
