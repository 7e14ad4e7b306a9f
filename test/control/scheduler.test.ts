/**
 * Ingest, scheduler, node API and reaper together over the store on dynalite and the Gerrit
 * stand-in: the node limit with its FIFO queue, supersede and abandon, the one-time tokens, and
 * the reaper's deadlines and strays, the change's current patchset and status and its Depends-On
 * changes (transitive, cycles and unresolvable footers reported once instead of run). Nodes are a recording Fleet (what EC2 or child processes
 * would be); the queues are delivered by the test, one message at a time.
 */
import type { Fleet, LaunchOutcome, LaunchRequest, ManagedInstance } from '../../lambda/adapters/fleet';
import { ingestWebhook } from '../../lambda/control/ingest';
import { handleNodeRequest } from '../../lambda/control/node-api';
import type { ControlPorts } from '../../lambda/control/ports';
import { reap } from '../../lambda/control/reaper';
import { reportBuildset } from '../../lambda/control/reporter';
import type { BuildRecord, BuildsetRecord } from '../../lambda/control/records';
import { handleScheduleMessage, launchQueued, MAX_DEPENDENCY_CHANGES } from '../../lambda/control/scheduler';
import { type Emulator, startDynalite } from '../../lambda/local/emulators';
import { GerritStandin } from '../support/gerrit-standin';
import { controlHarness, PROJECT } from './harness';

const NOTHING_REAPED = { unclaimed: [], timedOut: [], terminated: [], nudged: [] };
const TOKEN = 'scheduler-test-webhook-token';

class RecordingFleet implements Fleet {
  readonly launches: LaunchRequest[] = [];
  readonly terminated: string[] = [];
  live = new Map<string, string>();
  /** Each instance's `akanda-ci:launch` tag. */
  readonly launchTags = new Map<string, number>();
  private next = 0;

  async launch(request: LaunchRequest): Promise<LaunchOutcome> {
    this.launches.push(request);
    const instanceId = `i-${String(++this.next).padStart(17, '0')}`;
    this.live.set(instanceId, request.buildId);
    this.launchTags.set(instanceId, request.launchSeq);
    return { status: 'launched', instanceId, lifecycle: 'spot' };
  }

  async terminateInstances(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      this.terminated.push(id);
      this.live.delete(id);
    }
  }

  async listManagedInstances(): Promise<ManagedInstance[]> {
    return [...this.live].map(([instanceId, buildId]) => {
      const launchSeq = this.launchTags.get(instanceId);
      return { instanceId, buildId, state: 'running', ...(launchSeq === undefined ? {} : { launchSeq }) };
    });
  }
}

let dynamo: Emulator;
let gerrit: GerritStandin;
let clock = 2_000_000;

function setup(maxConcurrentNodes: number) {
  return controlHarness({
    dynamo,
    gerrit,
    table: 'scheduler',
    webhookToken: TOKEN,
    now: () => clock,
    fleet: new RecordingFleet(),
    config: {
      jobs: [{ name: 'pep8', node: 'small', run: 'tox -e pep8', timeout: '10m' }],
      projects: [{ name: PROJECT, check: ['pep8'], gate: ['pep8'] }],
      limits: { maxConcurrentNodes, timeoutGrace: '1m' },
    },
  });
}

beforeAll(async () => {
  dynamo = await startDynalite();
  gerrit = await GerritStandin.start();
});

afterAll(async () => {
  await gerrit.close();
  await dynamo.close();
});

it('launches at most maxConcurrentNodes, the rest first in first out as nodes finish', async () => {
  const t = await setup(2);
  const changes = [1, 2, 3, 4].map(() => gerrit.createChange({ project: PROJECT }));
  const buildsets: string[] = [];
  for (const change of changes) {
    clock += 1;
    buildsets.push(await t.ingest(gerrit.patchsetCreatedEvent(change.number)));
  }
  await t.drain();
  const first = await t.buildOf(buildsets[0]!);
  const second = await t.buildOf(buildsets[1]!);
  expect(t.fleet.launches.map((l) => l.buildId)).toEqual([first.buildId, second.buildId]);
  expect((await t.buildOf(buildsets[2]!)).state).toBe('queued');

  // The second build's node claims and reports; its slot goes to the third buildset, not the fourth.
  const claimToken = t.fleet.launches[1]!.claimToken;
  const claim = await handleNodeRequest(t.ports, '/node/claim', { buildId: second.buildId, claimToken });
  expect(claim.status).toBe(200);
  expect(claim.body.job).toMatchObject({ buildId: second.buildId, project: PROJECT, change: changes[1]!.number });
  expect((await handleNodeRequest(t.ports, '/node/claim', { buildId: second.buildId, claimToken })).status).toBe(401);
  const resultToken = claim.body.resultToken as string;
  const wrong = await handleNodeRequest(t.ports, '/node/result', {
    buildId: second.buildId,
    resultToken: claimToken,
    result: 'SUCCESS',
  });
  expect(wrong.status).toBe(401);
  const result = { buildId: second.buildId, resultToken, result: 'SUCCESS', elapsedSeconds: 30 };
  expect((await handleNodeRequest(t.ports, '/node/result', result)).status).toBe(200);
  expect(t.reports).toEqual([{ buildsetId: buildsets[1] }]);
  // Idempotent, and the repeat queues the report again: the first delivery may have died before queueing it.
  expect((await handleNodeRequest(t.ports, '/node/result', result)).status).toBe(200);
  expect((await handleNodeRequest(t.ports, '/node/result', { ...result, result: 'FAILURE' })).status).toBe(409);
  expect(t.reports).toEqual([{ buildsetId: buildsets[1] }, { buildsetId: buildsets[1] }]);

  await launchQueued(t.ports);
  const third = await t.buildOf(buildsets[2]!);
  expect(t.fleet.launches.map((l) => l.buildId)).toEqual([first.buildId, second.buildId, third.buildId]);
  expect((await t.buildOf(buildsets[3]!)).state).toBe('queued');
  t.store.destroy();
});

it('a node result is reported even when terminating its node fails (the reaper gets the stray)', async () => {
  const t = await setup(10);
  const change = gerrit.createChange({ project: PROJECT });
  const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
  await t.drain();
  const build = await t.buildOf(buildsetId);
  t.fleet.terminateInstances = async () => {
    throw new Error('RequestLimitExceeded');
  };
  const claimToken = t.fleet.launches[0]!.claimToken;
  const claim = await handleNodeRequest(t.ports, '/node/claim', { buildId: build.buildId, claimToken });
  const resultToken = claim.body.resultToken as string;
  const answer = await handleNodeRequest(t.ports, '/node/result', {
    buildId: build.buildId,
    resultToken,
    result: 'SUCCESS',
    elapsedSeconds: 30,
  });
  expect(answer).toMatchObject({ status: 200, body: { state: 'succeeded' } });
  expect(t.reports).toEqual([{ buildsetId }]);
  for (const message of t.reports) expect(await reportBuildset(t.ports, message.buildsetId)).toEqual({ kind: 'done' });
  const reviews = gerrit.reviews.filter((r) => r.changeNumber === change.number);
  expect(reviews.map((r) => r.input.labels)).toEqual([{ Verified: 1 }]);
  expect(t.fleet.live.has(build.instanceId!)).toBe(true);
  t.store.destroy();
});

it('never exceeds the limit when launchers race', async () => {
  const t = await setup(3);
  for (let i = 0; i < 6; i++) {
    const change = gerrit.createChange({ project: PROJECT });
    clock += 1;
    const answer = await ingestWebhook(t.ports, {
      token: TOKEN,
      body: JSON.stringify(gerrit.patchsetCreatedEvent(change.number)),
    });
    expect(answer.status).toBe(202);
  }
  // Schedule every buildset with no room to launch, then let four launchers run at once.
  const noRoom: ControlPorts = {
    ...t.ports,
    config: { ...t.ports.config, limits: { ...t.ports.config.limits, maxConcurrentNodes: 0 } },
  };
  for (const message of t.schedule.splice(0)) await handleScheduleMessage(noRoom, message);
  expect(await t.store.countBuildsInState('queued')).toBe(6);
  await Promise.all([launchQueued(t.ports), launchQueued(t.ports), launchQueued(t.ports), launchQueued(t.ports)]);
  await t.drain(); // launchers that found the lease taken asked to be run again
  const launching = await t.store.countBuildsInState('launching');
  expect(launching).toBe(3);
  expect(t.fleet.live.size).toBe(3);
  t.store.destroy();
});

it('cancels older patchsets and abandoned changes, terminating their nodes and never reporting them', async () => {
  const t = await setup(10);
  const change = gerrit.createChange({ project: PROJECT });
  const old = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
  await t.drain();
  const oldBuild = await t.buildOf(old);
  expect(oldBuild.state).toBe('launching');

  gerrit.addPatchset(change.number);
  clock += 1;
  const newer = await t.ingest(gerrit.patchsetCreatedEvent(change.number, 2));
  await t.drain();
  expect((await t.store.getBuildset<BuildsetRecord>(old))?.state).toBe('cancelled');
  expect((await t.store.getBuild<BuildRecord>(oldBuild.buildId))?.state).toBe('cancelled');
  expect(t.fleet.terminated).toEqual([oldBuild.instanceId]);
  // The old node's late result is refused and reports nothing.
  const token = t.fleet.launches[0]!.claimToken;
  expect(
    (await handleNodeRequest(t.ports, '/node/claim', { buildId: oldBuild.buildId, claimToken: token })).status,
  ).toBe(409);

  const newBuild = await t.buildOf(newer);
  expect(newBuild.state).toBe('launching');
  const abandoned = await ingestWebhook(t.ports, {
    token: TOKEN,
    body: JSON.stringify(gerrit.changeAbandonedEvent(change.number)),
  });
  expect(abandoned.status).toBe(202);
  await t.drain();
  expect((await t.store.getBuildset<BuildsetRecord>(newer))?.state).toBe('cancelled');
  expect(t.fleet.terminated).toEqual([oldBuild.instanceId, newBuild.instanceId]);
  expect(t.reports).toEqual([]);
  t.store.destroy();
});

it('a cancel that lands while the scheduler asks Gerrit still cancels the builds it then creates', async () => {
  const t = await setup(10);
  const change = gerrit.createChange({ project: PROJECT });
  const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
  const message = t.schedule.shift()!;
  // Gerrit answers the changed files only once the abandon has been handled.
  let asked!: () => void;
  const askedForFiles = new Promise<void>((resolve) => (asked = resolve));
  let answer!: () => void;
  const answerFiles = new Promise<void>((resolve) => (answer = resolve));
  const gerritPort = t.ports.gerrit;
  const slowGerrit: ControlPorts = {
    ...t.ports,
    gerrit: {
      getChange: (n) => gerritPort.getChange(n),
      getChangedFiles: async (locator, revision) => {
        asked();
        await answerFiles;
        return gerritPort.getChangedFiles(locator, revision);
      },
      resolveDependency: (reference, branch) => gerritPort.resolveDependency(reference, branch),
      queryOpenChanges: (query) => gerritPort.queryOpenChanges(query),
      postReview: (triplet, revision, review) => gerritPort.postReview(triplet, revision, review),
      hasReview: (...args) => gerritPort.hasReview(...args),
    },
  };
  const scheduling = handleScheduleMessage(slowGerrit, message);
  await askedForFiles;
  const abandoned = await ingestWebhook(t.ports, {
    token: TOKEN,
    body: JSON.stringify(gerrit.changeAbandonedEvent(change.number)),
  });
  expect(abandoned.status).toBe(202);
  await t.drain();
  expect((await t.store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('cancelled');
  answer();
  await scheduling;
  await t.drain();

  const buildset = await t.store.getBuildset<BuildsetRecord>(buildsetId);
  expect(buildset).toMatchObject({ state: 'cancelled', buildIds: [] });
  const builds = await t.store.buildsInState<BuildRecord>('queued');
  expect(builds).toEqual([]);
  expect(t.fleet.launches).toEqual([]);
  expect(await t.store.countBuildsInState('launching')).toBe(0);
  t.store.destroy();
});

it('times out overdue builds and terminates nodes without a live build', async () => {
  const t = await setup(10);
  const change = gerrit.createChange({ project: PROJECT });
  const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
  await t.drain();
  const build = await t.buildOf(buildsetId);
  const claimToken = t.fleet.launches[0]!.claimToken;
  expect((await handleNodeRequest(t.ports, '/node/claim', { buildId: build.buildId, claimToken })).status).toBe(200);
  t.fleet.live.set('i-00000000000000099', 'no-such-build');

  expect(await reap(t.ports)).toEqual({ ...NOTHING_REAPED, terminated: ['i-00000000000000099'] });
  clock += 10 * 60 + 60; // job timeout + grace
  expect(await reap(t.ports)).toEqual({ ...NOTHING_REAPED, timedOut: [build.buildId] });
  const after = await t.store.getBuild<BuildRecord>(build.buildId);
  expect(after).toMatchObject({ state: 'timed_out', result: 'TIMED_OUT' });
  expect(t.fleet.terminated).toEqual(['i-00000000000000099', build.instanceId]);
  expect(t.reports).toEqual([{ buildsetId }]);
  t.store.destroy();
});

it('terminates a node launched for an earlier launch of its build, before the build records its current node', async () => {
  const t = await setup(10);
  const change = gerrit.createChange({ project: PROJECT });
  const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
  await t.drain();
  const first = await t.buildOf(buildsetId);
  expect(first).toMatchObject({ state: 'launching', launchSeq: 1 });
  // The build went on to its second launch, not answered yet; the first launch's node is still up.
  const relaunching: BuildRecord = { ...first, launchSeq: 2, version: first.version + 1 };
  delete relaunching.instanceId;
  expect(await t.store.putBuild(relaunching)).toBe(true);
  // A node of the current launch whose launch is not recorded yet stays.
  t.fleet.live.set('i-00000000000000042', first.buildId);
  t.fleet.launchTags.set('i-00000000000000042', 2);

  expect(await reap(t.ports)).toEqual({ ...NOTHING_REAPED, terminated: [first.instanceId] });
  expect(t.fleet.terminated).toEqual([first.instanceId]);
  expect(await reap(t.ports)).toEqual(NOTHING_REAPED);
  t.store.destroy();
});

/** The event as if it had come for an older patchset of its change (a recheck or approval left on it). */
function onPatchset(event: Record<string, unknown>, changeNumber: number, patchset: number): Record<string, unknown> {
  const { patchSet } = gerrit.patchsetCreatedEvent(changeNumber, patchset) as { patchSet: unknown };
  const comment =
    typeof event.comment === 'string' ? event.comment.replace(/^Patch Set \d+:/, `Patch Set ${patchset}:`) : undefined;
  return { ...event, patchSet, ...(comment !== undefined ? { comment } : {}) };
}

/** The node of the buildset's build claims and succeeds; the reporter posts. */
async function finish(t: Awaited<ReturnType<typeof setup>>, buildsetId: string): Promise<void> {
  const build = await t.buildOf(buildsetId);
  const launch = t.fleet.launches.find((l) => l.buildId === build.buildId)!;
  const claim = await handleNodeRequest(t.ports, '/node/claim', {
    buildId: build.buildId,
    claimToken: launch.claimToken,
  });
  const resultToken = claim.body.resultToken as string;
  const answer = await handleNodeRequest(t.ports, '/node/result', {
    buildId: build.buildId,
    resultToken,
    result: 'SUCCESS',
    elapsedSeconds: 30,
  });
  expect(answer.status).toBe(200);
  for (const message of t.reports.splice(0)) await reportBuildset(t.ports, message.buildsetId);
  expect((await t.store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('reported');
}

describe('the change as Gerrit has it now', () => {
  it('a recheck or an approval on an old patchset builds nothing: the current patchset comes from Gerrit REST', async () => {
    const t = await setup(10);
    const change = gerrit.createChange({ project: PROJECT });
    gerrit.addPatchset(change.number);
    clock += 1;
    const recheck = await t.ingest(onPatchset(gerrit.commentAddedEvent(change.number, 'recheck'), change.number, 1));
    clock += 1;
    const approval = await t.ingest(
      onPatchset(
        gerrit.commentAddedEvent(change.number, 'Workflow+1', [{ type: 'Workflow', value: '1', oldValue: '0' }]),
        change.number,
        1,
      ),
    );
    await t.drain();
    for (const [buildsetId, pipeline] of [
      [recheck, 'check'],
      [approval, 'gate'],
    ] as const) {
      expect(await t.store.getBuildset<BuildsetRecord>(buildsetId)).toMatchObject({
        pipeline,
        patchset: 1,
        state: 'skipped',
        reason: `patchset 1 of change ${change.number} is not current (current: 2)`,
        buildIds: [],
      });
    }
    // The current patchset still builds.
    clock += 1;
    const current = await t.ingest(gerrit.commentAddedEvent(change.number, 'recheck'));
    await t.drain();
    expect((await t.buildOf(current)).state).toBe('launching');
    expect(t.fleet.launches).toHaveLength(1);
    t.store.destroy();
  });

  it('a change merged or abandoned since the event gets no check or gate build', async () => {
    const t = await setup(10);
    const merged = gerrit.createChange({ project: PROJECT });
    const abandoned = gerrit.createChange({ project: PROJECT });
    clock += 1;
    const check = await t.ingest(gerrit.patchsetCreatedEvent(abandoned.number));
    const gate = await t.ingest(
      gerrit.commentAddedEvent(merged.number, 'Workflow+1', [{ type: 'Workflow', value: '1', oldValue: '0' }]),
    );
    gerrit.setStatus(merged.number, 'MERGED');
    gerrit.setStatus(abandoned.number, 'ABANDONED');
    await t.drain();
    expect(await t.store.getBuildset<BuildsetRecord>(check)).toMatchObject({
      state: 'skipped',
      reason: `change ${abandoned.number} is abandoned`,
    });
    expect(await t.store.getBuildset<BuildsetRecord>(gate)).toMatchObject({
      pipeline: 'gate',
      state: 'skipped',
      reason: `change ${merged.number} is merged`,
    });
    expect(t.fleet.launches).toEqual([]);
    t.store.destroy();
  });

  it('Gerrit unreachable: the schedule message fails (the queue retries it) and nothing is guessed', async () => {
    const t = await setup(10);
    const change = gerrit.createChange({ project: PROJECT });
    gerrit.addPatchset(change.number);
    clock += 1;
    const buildsetId = await t.ingest(onPatchset(gerrit.commentAddedEvent(change.number, 'recheck'), change.number, 1));
    const message = t.schedule.shift()!;
    gerrit.failRequests({ status: 503, only: 'read', count: 1 });
    await expect(handleScheduleMessage(t.ports, message)).rejects.toThrow(/HTTP 503/);
    expect((await t.store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('pending');
    expect(t.fleet.launches).toEqual([]);
    // The redelivery, with Gerrit back, finds the patchset outdated.
    await handleScheduleMessage(t.ports, message);
    expect((await t.store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('skipped');
    expect(t.fleet.launches).toEqual([]);
    t.store.destroy();
  });
});

describe('Depends-On', () => {
  const NEUTRON = 'stackforge/akanda-neutron';
  const APPLIANCE = 'stackforge/akanda-appliance';
  const message = (subject: string, ...dependsOn: string[]) =>
    [subject, '', ...dependsOn.map((target) => `Depends-On: ${target}`)].join('\n') + '\n';
  const reviewsOf = (change: number) => gerrit.reviews.filter((r) => r.changeNumber === change);

  it('resolves a two-level chain: the dependencies of a dependency are tested too', async () => {
    const t = await setup(10);
    const appliance = gerrit.createChange({ project: APPLIANCE });
    const neutron = gerrit.createChange({
      project: NEUTRON,
      commitMessage: message('Neutron side', gerrit.changeUrl(appliance.number)),
    });
    // A URL on another Gerrit server is ignored, as Zuul ignores unknown connections.
    const rug = gerrit.createChange({
      project: PROJECT,
      commitMessage: message('Rug side', gerrit.changeUrl(neutron.number), 'https://review.other.example/c/x/+/5'),
    });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(rug.number));
    await t.drain();
    const buildset = await t.store.getBuildset<BuildsetRecord>(buildsetId);
    expect(buildset?.state).toBe('scheduled');
    expect(buildset?.repositories).toEqual([
      {
        project: PROJECT,
        ref: gerrit.currentPatchset(rug.number).ref,
        revision: gerrit.currentPatchset(rug.number).revision,
      },
      {
        project: NEUTRON,
        ref: gerrit.currentPatchset(neutron.number).ref,
        revision: gerrit.currentPatchset(neutron.number).revision,
      },
      {
        project: APPLIANCE,
        ref: gerrit.currentPatchset(appliance.number).ref,
        revision: gerrit.currentPatchset(appliance.number).revision,
      },
    ]);
    expect(buildset?.dependencies?.map((d) => d.change)).toEqual([neutron.number, appliance.number]);
    expect(t.fleet.launches).toHaveLength(1);
    t.store.destroy();
  });

  it('a URL the core reads (a zero-padded number) is resolved by the number the core found', async () => {
    const t = await setup(10);
    const neutron = gerrit.createChange({ project: NEUTRON });
    const rug = gerrit.createChange({
      project: PROJECT,
      commitMessage: message('Rug side', `${gerrit.url}/c/${NEUTRON}/+/0${neutron.number}/`),
    });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(rug.number));
    await t.drain();
    const buildset = await t.store.getBuildset<BuildsetRecord>(buildsetId);
    expect(buildset).toMatchObject({ state: 'scheduled' });
    expect(buildset?.unrunnable).toBeUndefined();
    expect(buildset?.dependencies?.map((d) => d.change)).toEqual([neutron.number]);
    expect(t.fleet.launches).toHaveLength(1);
    t.store.destroy();
  });

  it('a same-project Depends-On is tested through the history: below the change it runs, beside it it is reported', async () => {
    const t = await setup(10);
    // base <- middle <- stacked: stacked's Depends-On on base is in its history (two commits down).
    const base = gerrit.createChange({ project: PROJECT });
    const middle = gerrit.createChange({ project: PROJECT, parent: gerrit.currentPatchset(base.number).revision });
    const stacked = gerrit.createChange({
      project: PROJECT,
      parent: gerrit.currentPatchset(middle.number).revision,
      commitMessage: message('Stacked', gerrit.changeUrl(base.number)),
    });
    const inHistory = await t.ingest(gerrit.patchsetCreatedEvent(stacked.number));
    await t.drain();
    expect(await t.store.getBuildset<BuildsetRecord>(inHistory)).toMatchObject({ state: 'scheduled' });
    expect((await t.store.getBuildset<BuildsetRecord>(inHistory))?.unrunnable).toBeUndefined();
    expect(t.fleet.launches).toHaveLength(1);

    // A sibling on the branch (not based on base) cannot have base in its one checkout of the project.
    const sibling = gerrit.createChange({
      project: PROJECT,
      commitMessage: message('Sibling', gerrit.changeUrl(base.number)),
    });
    const beside = await t.ingest(gerrit.patchsetCreatedEvent(sibling.number));
    await t.drain();
    const reason =
      `Depends-On change ${base.number} is in the same project but not in the history of this patchset: ` +
      `rebase onto patchset 1 of change ${base.number} to test them together`;
    expect(await t.store.getBuildset<BuildsetRecord>(beside)).toMatchObject({
      state: 'scheduled',
      buildIds: [],
      unrunnable: reason,
    });
    expect(t.fleet.launches).toHaveLength(1);
    expect(await reportBuildset(t.ports, beside)).toEqual({ kind: 'done' });
    expect(reviewsOf(sibling.number).map((r) => r.input)).toEqual([
      {
        message: `Build failed (check pipeline).\n\n${reason}`,
        labels: { Verified: -1 },
        tag: 'autogenerated:akanda-ci',
      },
    ]);

    // Based on an older patchset of base: the node would test that one, so it is reported too.
    await finish(t, inHistory); // a recheck while it is still in the check pipeline would start nothing
    gerrit.addPatchset(base.number);
    clock += 1;
    const outdated = await t.ingest(gerrit.commentAddedEvent(stacked.number, 'recheck'));
    await t.drain();
    expect((await t.store.getBuildset<BuildsetRecord>(outdated))?.unrunnable).toBe(
      `Depends-On change ${base.number} is in the same project but not in the history of this patchset: ` +
        `rebase onto patchset 2 of change ${base.number} to test them together`,
    );
    t.store.destroy();
  });

  it('a cycle runs nothing and is reported once, Zuul-style, with Verified -1', async () => {
    const t = await setup(10);
    const rug = gerrit.createChange({ project: PROJECT });
    const neutron = gerrit.createChange({
      project: NEUTRON,
      commitMessage: message('Neutron side', gerrit.changeUrl(rug.number)),
    });
    gerrit.addPatchset(rug.number, { commitMessage: message('Rug side', gerrit.changeUrl(neutron.number)) });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(rug.number, 2));
    await t.drain();
    const reason = `Depends-On cycle: ${rug.number} -> ${neutron.number} -> ${rug.number}`;
    expect(await t.store.getBuildset<BuildsetRecord>(buildsetId)).toMatchObject({
      state: 'scheduled',
      buildIds: [],
      unrunnable: reason,
    });
    expect(t.fleet.launches).toEqual([]);
    expect(t.reports).toEqual([{ buildsetId }]);

    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
    expect(reviewsOf(rug.number).map((r) => [r.patchset, r.input])).toEqual([
      [
        2,
        {
          message: `Build failed (check pipeline).\n\n${reason}`, // this config has no report footer
          labels: { Verified: -1 },
          tag: 'autogenerated:akanda-ci',
        },
      ],
    ]);
    expect((await t.store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('reported');
    t.store.destroy();
  });

  it('a footer on this Gerrit naming no change is reported once, even when the answer to the POST is lost', async () => {
    const t = await setup(10);
    const missing = `${gerrit.url}/c/${PROJECT}/+/99999`;
    const rug = gerrit.createChange({ project: PROJECT, commitMessage: message('Rug side', missing) });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(rug.number));
    await t.drain();
    const reason = `Depends-On ${missing} could not be resolved`;
    expect(await t.store.getBuildset<BuildsetRecord>(buildsetId)).toMatchObject({
      state: 'scheduled',
      unrunnable: reason,
    });
    expect(t.fleet.launches).toEqual([]);

    // Gerrit saves the review, then the answer is lost: the retry finds it rather than posting twice.
    gerrit.failRequests({ status: 503, only: 'review', count: 1, afterApplying: true });
    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'retry', delaySeconds: 1 });
    clock += 2;
    expect(await reportBuildset(t.ports, buildsetId)).toEqual({ kind: 'done' });
    expect(gerrit.reviewPosts.filter((r) => r.changeNumber === rug.number)).toHaveLength(1);
    const [review] = reviewsOf(rug.number);
    expect(review?.input).toMatchObject({ labels: { Verified: -1 } });
    expect(review?.input.message).toBe(`Build failed (check pipeline).\n\n${reason}`);
    expect((await t.store.getBuildset<BuildsetRecord>(buildsetId))?.state).toBe('reported');
    t.store.destroy();
  });

  it(`more than ${MAX_DEPENDENCY_CHANGES} changes to test together are reported, not run`, async () => {
    const t = await setup(10);
    let previous = gerrit.createChange({ project: NEUTRON });
    for (let i = 0; i < MAX_DEPENDENCY_CHANGES; i++) {
      previous = gerrit.createChange({
        project: NEUTRON,
        commitMessage: message(`link ${i}`, gerrit.changeUrl(previous.number)),
      });
    }
    const rug = gerrit.createChange({
      project: PROJECT,
      commitMessage: message('Rug side', gerrit.changeUrl(previous.number)),
    });
    const buildsetId = await t.ingest(gerrit.patchsetCreatedEvent(rug.number));
    await t.drain();
    expect(await t.store.getBuildset<BuildsetRecord>(buildsetId)).toMatchObject({
      state: 'scheduled',
      unrunnable: `Depends-On: more than ${MAX_DEPENDENCY_CHANGES} changes to test together`,
    });
    expect(t.fleet.launches).toEqual([]);
    t.store.destroy();
  });
});

describe('a change already in the check pipeline', () => {
  /** A recheck comment at its own time: two rechecks are two events. */
  const recheckEvent = (changeNumber: number, patchset?: number) => {
    const event = { ...gerrit.commentAddedEvent(changeNumber, 'recheck'), eventCreatedOn: ++clock };
    return patchset === undefined ? event : onPatchset(event, changeNumber, patchset);
  };

  const restoredEvent = (changeNumber: number) => {
    const { uploader, ...rest } = gerrit.patchsetCreatedEvent(changeNumber);
    return { ...rest, type: 'change-restored', restorer: uploader, eventCreatedOn: ++clock };
  };

  it('a recheck while the patchset is being checked starts nothing; after the report it starts a new buildset', async () => {
    const t = await setup(10);
    const change = gerrit.createChange({ project: PROJECT });
    const first = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    await t.drain();

    for (const event of [recheckEvent(change.number), restoredEvent(change.number)]) {
      const answer = await ingestWebhook(t.ports, { token: TOKEN, body: JSON.stringify(event) });
      expect(answer).toMatchObject({ status: 200, body: { duplicate: true } });
    }
    expect(t.schedule).toEqual([]);
    expect((await t.store.buildsetsOfChange<BuildsetRecord>(PROJECT, change.number)).map((b) => b.buildsetId)).toEqual([
      first,
    ]);

    await finish(t, first);
    const reviewsOf = () => gerrit.reviews.filter((r) => r.changeNumber === change.number);
    expect(reviewsOf()).toHaveLength(1);

    const second = await t.ingest(recheckEvent(change.number));
    expect(second).not.toBe(first);
    await t.drain();
    await finish(t, second);
    expect(reviewsOf().map((r) => r.input.labels)).toEqual([{ Verified: 1 }, { Verified: 1 }]);
    t.store.destroy();
  });

  it('gate is its own pipeline, and a new patchset still supersedes the one being checked', async () => {
    const t = await setup(10);
    const change = gerrit.createChange({ project: PROJECT });
    const check = await t.ingest(gerrit.patchsetCreatedEvent(change.number));
    await t.drain();

    // A recheck that also approves: the check part is already there, the gate part is new.
    const both = {
      ...gerrit.commentAddedEvent(change.number, 'recheck', [{ type: 'Workflow', value: '1', oldValue: '0' }]),
      eventCreatedOn: ++clock,
    };
    const answer = await ingestWebhook(t.ports, { token: TOKEN, body: JSON.stringify(both) });
    expect(answer.status).toBe(202);
    const [gate] = (answer.body as { buildsets: string[] }).buildsets;
    expect(await t.store.getBuildset<BuildsetRecord>(gate!)).toMatchObject({ pipeline: 'gate', patchset: 1 });
    expect((await t.store.buildsetsOfChange<BuildsetRecord>(PROJECT, change.number)).map((b) => b.pipeline)).toEqual([
      'check',
      'gate',
    ]);

    gerrit.addPatchset(change.number);
    clock += 1;
    const newer = await t.ingest(gerrit.patchsetCreatedEvent(change.number, 2));
    await t.drain();
    expect((await t.store.getBuildset<BuildsetRecord>(check))?.state).toBe('cancelled');
    expect(await t.store.getBuildset<BuildsetRecord>(newer)).toMatchObject({ patchset: 2, state: 'scheduled' });
    // The cancelled check is out of the pipeline: a late recheck of patchset 1 is recorded, then superseded.
    const old = await t.ingest(recheckEvent(change.number, 1));
    await t.drain();
    expect(await t.store.getBuildset<BuildsetRecord>(old)).toMatchObject({
      patchset: 1,
      state: 'cancelled',
      reason: 'superseded by patchset 2',
    });
    t.store.destroy();
  });
});
