import fc from 'fast-check';
import {
  buildsetOutcome,
  CAPACITY_WAIT_LIMIT_SECONDS,
  isTerminal,
  newBuild,
  transition,
  zuulResult,
  type Build,
  type BuildCommand,
  type BuildEvent,
  type NodeResult,
} from '../../lambda/core/lifecycle';

const T0 = 1_800_000_000;

function build(overrides: Partial<Build> = {}): Build {
  return {
    ...newBuild(
      {
        buildId: 'b1',
        buildsetId: 'bs1',
        jobName: 'pep8',
        nodeLabel: 'small',
        voting: true,
        timeoutSeconds: 1800,
        graceSeconds: 600,
        maxAttempts: 3,
      },
      T0,
    ),
    ...overrides,
  };
}

/** Applies events in order, collecting commands; asserts nothing. */
function run(start: Build, events: readonly [BuildEvent, number][]): { build: Build; commands: BuildCommand[] } {
  let current = start;
  const commands: BuildCommand[] = [];
  for (const [event, now] of events) {
    const next = transition(current, event, now);
    current = next.build;
    commands.push(...next.commands);
  }
  return { build: current, commands };
}

const launchRequested: BuildEvent = { type: 'launch_requested' };

describe('transition: the paths of one build', () => {
  it('queued -> launching -> running -> succeeded, terminating the node and asking for the report', () => {
    const launching = transition(build(), launchRequested, T0 + 5);
    expect(launching.changed).toBe(true);
    expect(launching.build).toMatchObject({ state: 'launching', launchSeq: 1, deadlineAt: T0 + 5 + 1800 + 600 });
    expect(launching.commands).toEqual([
      { type: 'launch', buildId: 'b1', buildsetId: 'bs1', nodeLabel: 'small', attempt: 1, launchSeq: 1 },
    ]);
    const { build: done, commands } = run(launching.build, [
      [{ type: 'launched', launchSeq: 1, instanceId: 'i-1' }, T0 + 6],
      [{ type: 'claimed', attempt: 1 }, T0 + 60],
      [{ type: 'result', result: 'SUCCESS', elapsedSeconds: 723, attempt: 1 }, T0 + 800],
    ]);
    expect(done).toMatchObject({ state: 'succeeded', result: 'SUCCESS', elapsedSeconds: 723, finishedAt: T0 + 800 });
    expect(commands).toEqual([
      { type: 'report_if_complete', buildsetId: 'bs1' },
      { type: 'terminate', buildId: 'b1', instanceId: 'i-1' },
    ]);
  });

  it.each([
    ['FAILURE', 'FAILURE'],
    ['ERROR', 'ERROR'],
  ] as const)('a %s result fails the build with Zuul result %s', (result, zuul) => {
    const { build: done } = run(build(), [
      [launchRequested, T0],
      [{ type: 'claimed' }, T0 + 1],
      [{ type: 'result', result }, T0 + 61],
    ]);
    expect(done.state).toBe('failed');
    expect(zuulResult(done)).toBe(zuul);
    expect(done.elapsedSeconds).toBe(60);
  });

  it('a spot interruption sends the build back to the queue with the next attempt and terminates the node', () => {
    const { build: requeued, commands } = run(build(), [
      [launchRequested, T0],
      [{ type: 'launched', launchSeq: 1, instanceId: 'i-1' }, T0 + 1],
      [{ type: 'claimed', attempt: 1 }, T0 + 2],
      [{ type: 'interrupted', instanceId: 'i-1' }, T0 + 100],
    ]);
    expect(requeued).toMatchObject({ state: 'queued', attempt: 2, launchSeq: 1 });
    expect(requeued).not.toHaveProperty('instanceId');
    expect(requeued).not.toHaveProperty('deadlineAt');
    expect(commands.at(-1)).toEqual({ type: 'terminate', buildId: 'b1', instanceId: 'i-1' });
    // Once relaunched, the old node's interruption (delivered again) and its own INTERRUPTED are stale.
    const relaunched = transition(requeued, launchRequested, T0 + 102).build;
    const stale: BuildEvent[] = [
      { type: 'interrupted', instanceId: 'i-1', launchSeq: 1 },
      { type: 'interrupted', instanceId: 'i-1' },
      { type: 'result', result: 'INTERRUPTED', attempt: 1 },
      { type: 'claimed', attempt: 1 },
      { type: 'claimed', launchSeq: 1 },
    ];
    for (const event of stale) expect(transition(relaunched, event, T0 + 103).changed).toBe(false);
    // The new node's interruption counts even before its launch is recorded, when the event names the launch.
    expect(
      transition(relaunched, { type: 'interrupted', instanceId: 'i-2', launchSeq: 2 }, T0 + 104).build,
    ).toMatchObject({ state: 'queued', attempt: 3 });
  });

  it('the interruption of the last attempt ends in RETRY_LIMIT', () => {
    const { build: done, commands } = run(build({ maxAttempts: 2 }), [
      [launchRequested, T0],
      [{ type: 'launched', launchSeq: 1, instanceId: 'i-1' }, T0],
      [{ type: 'interrupted', instanceId: 'i-1' }, T0 + 10],
      [launchRequested, T0 + 20],
      [{ type: 'launched', launchSeq: 2, instanceId: 'i-2' }, T0 + 21],
      [{ type: 'result', result: 'INTERRUPTED', attempt: 2 }, T0 + 30],
    ]);
    expect(done).toMatchObject({ state: 'retry_limit', result: 'RETRY_LIMIT', attempt: 2 });
    expect(commands.filter((c) => c.type === 'launch')).toHaveLength(2);
    expect(commands.slice(-2)).toEqual([
      { type: 'report_if_complete', buildsetId: 'bs1' },
      { type: 'terminate', buildId: 'b1', instanceId: 'i-2' },
    ]);
  });

  it('times out only once the deadline has passed, and then terminates the node', () => {
    const { build: running } = run(build(), [
      [launchRequested, T0],
      [{ type: 'launched', launchSeq: 1, instanceId: 'i-1' }, T0],
      [{ type: 'claimed' }, T0 + 120],
    ]);
    expect(transition(running, { type: 'deadline_passed' }, T0 + 2399).changed).toBe(false);
    const late = transition(running, { type: 'deadline_passed' }, T0 + 2400);
    expect(late.build).toMatchObject({ state: 'timed_out', result: 'TIMED_OUT', elapsedSeconds: 2280 });
    expect(late.commands).toEqual([
      { type: 'report_if_complete', buildsetId: 'bs1' },
      { type: 'terminate', buildId: 'b1', instanceId: 'i-1' },
    ]);
    // A result that arrives after the timeout changes nothing.
    expect(transition(late.build, { type: 'result', result: 'SUCCESS' }, T0 + 2500)).toEqual({
      build: late.build,
      commands: [],
      changed: false,
    });
  });

  it('a launch that can never work is NODE_FAILURE at once', () => {
    const { build: done, commands } = run(build(), [
      [launchRequested, T0],
      [{ type: 'launch_failed', launchSeq: 1, reason: 'UnauthorizedOperation', retryable: false }, T0 + 1],
    ]);
    expect(done).toMatchObject({ state: 'node_failure', result: 'NODE_FAILURE', reason: 'UnauthorizedOperation' });
    expect(commands).toContainEqual({ type: 'report_if_complete', buildsetId: 'bs1' });
  });

  it('no capacity: back to the queue with a growing wait, then NODE_FAILURE after the wait limit', () => {
    let current = build();
    const waits: number[] = [];
    let now = T0;
    while (!isTerminal(current.state)) {
      current = transition(current, launchRequested, now).build;
      const failed = transition(
        current,
        {
          type: 'launch_failed',
          launchSeq: current.launchSeq,
          reason: 'InsufficientInstanceCapacity',
          retryable: true,
        },
        now,
      );
      current = failed.build;
      if (current.state === 'queued') {
        waits.push((current.notBefore ?? 0) - now);
        now = current.notBefore ?? now;
      }
    }
    expect(waits.slice(0, 6)).toEqual([30, 60, 120, 240, 480, 600]);
    expect(current.state).toBe('node_failure');
    expect(now - T0).toBeGreaterThanOrEqual(CAPACITY_WAIT_LIMIT_SECONDS);
    expect(current.attempt).toBe(1);
  });

  it('a launch answered after the build moved on is terminated, not adopted', () => {
    const cancelled = run(build(), [
      [launchRequested, T0],
      [{ type: 'cancel', reason: 'superseded by patchset 3' }, T0 + 1],
    ]).build;
    expect(cancelled).toMatchObject({ state: 'cancelled', result: 'ABORTED' });
    expect(transition(cancelled, { type: 'launched', launchSeq: 1, instanceId: 'i-9' }, T0 + 2)).toEqual({
      build: cancelled,
      commands: [{ type: 'terminate', buildId: 'b1', instanceId: 'i-9' }],
      changed: false,
    });
  });

  it('a second instance for the same launch (a retried launch handler) is terminated', () => {
    const { build: launched } = run(build(), [
      [launchRequested, T0],
      [{ type: 'launched', launchSeq: 1, instanceId: 'i-1' }, T0],
    ]);
    expect(transition(launched, { type: 'launched', launchSeq: 1, instanceId: 'i-1' }, T0).changed).toBe(false);
    expect(transition(launched, { type: 'launched', launchSeq: 1, instanceId: 'i-2' }, T0).commands).toEqual([
      { type: 'terminate', buildId: 'b1', instanceId: 'i-2' },
    ]);
  });

  it('a node that does not claim by the claim deadline is terminated and the build relaunched as its next attempt', () => {
    const launched = run(build({ claimTimeoutSeconds: 900 }), [
      [launchRequested, T0],
      [{ type: 'launched', launchSeq: 1, instanceId: 'i-1' }, T0 + 1],
    ]).build;
    expect(launched).toMatchObject({ state: 'launching', claimDeadlineAt: T0 + 900, deadlineAt: T0 + 2400 });
    expect(transition(launched, { type: 'claim_deadline_passed', launchSeq: 1 }, T0 + 899).changed).toBe(false);
    expect(transition(launched, { type: 'claim_deadline_passed', launchSeq: 0 }, T0 + 900).changed).toBe(false);
    const lost = transition(launched, { type: 'claim_deadline_passed', launchSeq: 1 }, T0 + 900);
    expect(lost.build).toMatchObject({ state: 'queued', attempt: 2, launchSeq: 1 });
    expect(lost.build.reason).toBe('node did not claim the build on attempt 1');
    for (const gone of ['instanceId', 'claimDeadlineAt', 'deadlineAt', 'launchedAt'] as const) {
      expect(lost.build).not.toHaveProperty(gone);
    }
    expect(lost.commands).toEqual([{ type: 'terminate', buildId: 'b1', instanceId: 'i-1' }]);
    // The late node's claim is stale; the relaunch gets a claim deadline of its own.
    expect(transition(lost.build, { type: 'claimed', attempt: 1, launchSeq: 1 }, T0 + 901).changed).toBe(false);
    const relaunched = transition(lost.build, launchRequested, T0 + 960).build;
    expect(relaunched).toMatchObject({ state: 'launching', attempt: 2, launchSeq: 2, claimDeadlineAt: T0 + 1860 });
    expect(transition(relaunched, { type: 'claim_deadline_passed', launchSeq: 1 }, T0 + 2000).changed).toBe(false);
  });

  it('a scheduler that died after launch_requested: the launch never answered is relaunched, no terminate', () => {
    const stuck = transition(build({ claimTimeoutSeconds: 900 }), launchRequested, T0).build;
    const lost = transition(stuck, { type: 'claim_deadline_passed' }, T0 + 900);
    expect(lost.build).toMatchObject({ state: 'queued', attempt: 2 });
    expect(lost.commands).toEqual([]);
  });

  it('never claimed on the last attempt: NODE_FAILURE, the report before the terminate', () => {
    const { build: done, commands } = run(build({ claimTimeoutSeconds: 900, maxAttempts: 2 }), [
      [launchRequested, T0],
      [{ type: 'claim_deadline_passed', launchSeq: 1 }, T0 + 900],
      [launchRequested, T0 + 901],
      [{ type: 'launched', launchSeq: 2, instanceId: 'i-2' }, T0 + 902],
      [{ type: 'claim_deadline_passed', launchSeq: 2 }, T0 + 1801],
    ]);
    expect(done).toMatchObject({ state: 'node_failure', result: 'NODE_FAILURE', attempt: 2 });
    expect(done.reason).toBe('node did not claim the build on attempt 2 of 2');
    expect(commands.slice(-2)).toEqual([
      { type: 'report_if_complete', buildsetId: 'bs1' },
      { type: 'terminate', buildId: 'b1', instanceId: 'i-2' },
    ]);
  });

  it('a claim ends the claim deadline; it never falls after the attempt deadline; old builds have none', () => {
    const running = run(build({ claimTimeoutSeconds: 900 }), [
      [launchRequested, T0],
      [{ type: 'claimed', attempt: 1 }, T0 + 60],
    ]).build;
    expect(running).not.toHaveProperty('claimDeadlineAt');
    expect(transition(running, { type: 'claim_deadline_passed', launchSeq: 1 }, T0 + 2000).changed).toBe(false);
    const short = transition(build({ claimTimeoutSeconds: 3600 }), launchRequested, T0).build;
    expect(short.claimDeadlineAt).toBe(short.deadlineAt);
    const legacy = transition(build(), launchRequested, T0).build;
    expect(legacy).not.toHaveProperty('claimDeadlineAt');
    expect(transition(legacy, { type: 'claim_deadline_passed', launchSeq: 1 }, T0 + 99_999).changed).toBe(false);
    // Back in the queue after a failed launch there is no node to wait for.
    const waiting = transition(
      transition(build({ claimTimeoutSeconds: 900 }), launchRequested, T0).build,
      { type: 'launch_failed', launchSeq: 1, reason: 'no capacity', retryable: true },
      T0 + 1,
    ).build;
    expect(waiting).toMatchObject({ state: 'queued', attempt: 1 });
    expect(waiting).not.toHaveProperty('claimDeadlineAt');
  });

  it('cancel terminates a known node and asks for no report', () => {
    const { build: running } = run(build(), [
      [launchRequested, T0],
      [{ type: 'launched', launchSeq: 1, instanceId: 'i-1' }, T0],
    ]);
    expect(transition(running, { type: 'cancel' }, T0 + 5).commands).toEqual([
      { type: 'terminate', buildId: 'b1', instanceId: 'i-1' },
    ]);
  });
});

describe('buildsetOutcome', () => {
  const b = (state: Build['state'], voting = true) => ({ state, voting });

  it('waits for every build', () => {
    expect(buildsetOutcome([b('succeeded'), b('running')], { commentOnly: false })).toEqual({ complete: false });
  });

  it('votes +1 only when every voting build succeeded, never on non-voting jobs alone', () => {
    expect(buildsetOutcome([b('succeeded'), b('failed', false)], { commentOnly: false })).toEqual({
      complete: true,
      report: true,
      succeeded: true,
      vote: 1,
    });
    expect(buildsetOutcome([b('succeeded'), b('timed_out')], { commentOnly: false })).toMatchObject({ vote: -1 });
    expect(buildsetOutcome([b('failed', false)], { commentOnly: false })).toEqual({
      complete: true,
      report: true,
      succeeded: true,
    });
    expect(buildsetOutcome([b('failed')], { commentOnly: true })).toEqual({
      complete: true,
      report: true,
      succeeded: false,
    });
  });

  it('never reports a cancelled buildset or one without builds', () => {
    expect(buildsetOutcome([b('succeeded'), b('cancelled')], { commentOnly: false })).toEqual({
      complete: true,
      report: false,
      why: 'cancelled',
    });
    expect(buildsetOutcome([], { commentOnly: false })).toEqual({ complete: true, report: false, why: 'no builds' });
  });
});

/*
 * The model: builds of several buildsets driven by handlers that read, decide and write with a version
 * check, interleaved at random with node callbacks, spot interruptions, clock ticks, deadlines, cancels,
 * launch outcomes and duplicate deliveries. Then a drain lets everything settle, and the invariants are
 * checked on what happened.
 */

interface Stored<T> {
  value: T;
  version: number;
}

/** The model's buildset: reported or cancelled by a conditional write from active, whichever lands first. */
type BuildsetState = 'active' | 'cancelled' | 'reported';

/** The reporter's decision in the model: the outcome to post, when the buildset is active and reportable. */
function reportDecision(state: BuildsetState, builds: readonly Build[], options: { commentOnly: boolean }) {
  if (state !== 'active') return undefined;
  const outcome = buildsetOutcome(builds, options);
  return outcome.complete && outcome.report ? outcome : undefined;
}

interface Buildset {
  id: string;
  buildIds: string[];
  commentOnly: boolean;
}

type Pending = { buildId: string; event: BuildEvent };

type Op =
  | { kind: 'build'; buildId: string; event: BuildEvent; read?: Stored<Build> }
  | { kind: 'report'; buildsetId: string; read?: { set: Stored<BuildsetState>; builds: Build[] } }
  | { kind: 'cancel'; buildsetId: string; read?: Stored<BuildsetState> };

interface Instance {
  instanceId: string;
  buildId: string;
  attempt: number;
  /** From its `akanda-ci:launch` tag. */
  launchSeq: number;
  live: boolean;
  /** Its claim was accepted: only then does the node hold a result token. */
  claimed: boolean;
}

class Violation extends Error {}

class World {
  now = T0;
  readonly builds = new Map<string, Stored<Build>>();
  readonly buildsets = new Map<string, Stored<BuildsetState>>();
  readonly sets: Buildset[] = [];
  pending: Pending[] = [];
  ops: Op[] = [];
  launches: Extract<BuildCommand, { type: 'launch' }>[] = [];
  readonly instances: Instance[] = [];
  readonly terminalWrites = new Map<string, number>();
  readonly adoptions = new Map<string, number>();
  readonly reports = new Map<string, { vote?: 1 | -1; succeeded: boolean }[]>();
  readonly cancelledSets = new Set<string>();
  readonly successes = new Set<string>();
  private nextInstance = 1;
  /** When set, EC2 never has capacity again once the random phase is over. */
  noCapacityAfterwards = false;

  constructor(shape: { jobs: { voting: boolean }[]; commentOnly: boolean }[], maxAttempts: number) {
    shape.forEach((set, s) => {
      const id = `bs${s}`;
      const buildIds = set.jobs.map((job, j) => {
        const buildId = `${id}-b${j}`;
        const fresh = newBuild(
          {
            buildId,
            buildsetId: id,
            jobName: `job${j}`,
            nodeLabel: 'small',
            voting: job.voting,
            timeoutSeconds: 1800,
            graceSeconds: 600,
            claimTimeoutSeconds: 900,
            maxAttempts,
          },
          this.now,
        );
        this.builds.set(buildId, { value: fresh, version: 1 });
        return buildId;
      });
      this.sets.push({ id, buildIds, commentOnly: set.commentOnly });
      this.buildsets.set(id, { value: 'active', version: 1 });
      this.reports.set(id, []);
    });
  }

  /** A conditional write: only if nobody wrote since `expected` was read. */
  private writeBuild(buildId: string, next: Build, expected: number): boolean {
    const stored = this.builds.get(buildId)!;
    if (stored.version !== expected) return false;
    const before = stored.value;
    if (isTerminal(before.state) && JSON.stringify(before) !== JSON.stringify(next)) {
      throw new Violation(`${buildId} left terminal state ${before.state} for ${next.state}`);
    }
    if (!isTerminal(before.state) && isTerminal(next.state)) {
      this.terminalWrites.set(buildId, (this.terminalWrites.get(buildId) ?? 0) + 1);
    }
    if (before.instanceId === undefined && next.instanceId !== undefined && !isTerminal(next.state)) {
      this.adoptions.set(buildId, (this.adoptions.get(buildId) ?? 0) + 1);
    }
    if (next.attempt > next.maxAttempts) throw new Violation(`${buildId} attempt ${next.attempt} > max`);
    this.builds.set(buildId, { value: next, version: stored.version + 1 });
    return true;
  }

  private writeBuildset(id: string, next: BuildsetState, expected: number): boolean {
    const stored = this.buildsets.get(id)!;
    if (stored.version !== expected) return false;
    this.buildsets.set(id, { value: next, version: stored.version + 1 });
    return true;
  }

  private readOp(op: Op): void {
    if (op.kind === 'build') op.read = { ...this.builds.get(op.buildId)! };
    else if (op.kind === 'cancel') op.read = { ...this.buildsets.get(op.buildsetId)! };
    else {
      const set = this.sets.find((s) => s.id === op.buildsetId)!;
      op.read = {
        set: { ...this.buildsets.get(op.buildsetId)! },
        builds: set.buildIds.map((id) => this.builds.get(id)!.value),
      };
    }
  }

  read(index: number): void {
    const op = this.ops[index % this.ops.length];
    if (op !== undefined && op.read === undefined) this.readOp(op);
  }

  /** Finishes an in-flight handler; a loser re-reads and stays in flight to re-apply later. */
  write(index: number): void {
    if (this.ops.length === 0) return;
    const at = index % this.ops.length;
    const op = this.ops[at]!;
    if (op.read === undefined) this.readOp(op);
    if (this.apply(op)) this.ops.splice(at, 1);
    else this.readOp(op);
  }

  private apply(op: Op): boolean {
    if (op.kind === 'build') {
      const read = op.read as Stored<Build>;
      const result = transition(read.value, op.event, this.now);
      if (result.changed && !this.writeBuild(op.buildId, result.build, read.version)) return false;
      if (result.changed) this.checkAccepted(read.value, op.event, result.build);
      result.commands.forEach((command) => this.run(command));
      return true;
    }
    if (op.kind === 'cancel') {
      const read = op.read as Stored<BuildsetState>;
      if (read.value !== 'active') return true;
      if (!this.writeBuildset(op.buildsetId, 'cancelled', read.version)) return false;
      this.cancelledSets.add(op.buildsetId);
      const set = this.sets.find((s) => s.id === op.buildsetId)!;
      set.buildIds.forEach((buildId) =>
        this.pending.push({ buildId, event: { type: 'cancel', reason: 'superseded' } }),
      );
      return true;
    }
    const read = op.read as { set: Stored<BuildsetState>; builds: Build[] };
    const set = this.sets.find((s) => s.id === op.buildsetId)!;
    const decision = reportDecision(read.set.value, read.builds, { commentOnly: set.commentOnly });
    if (decision === undefined) return true;
    if (!this.writeBuildset(op.buildsetId, 'reported', read.set.version)) return false;
    this.reports.get(op.buildsetId)!.push({
      succeeded: decision.succeeded,
      ...(decision.vote === undefined ? {} : { vote: decision.vote }),
    });
    return true;
  }

  /** What the spec says an accepted event may do, checked against what the model knows. */
  private checkAccepted(before: Build, event: BuildEvent, after: Build): void {
    const id = before.buildId;
    if ((event.type === 'claimed' || event.type === 'result') && event.attempt !== before.attempt) {
      throw new Violation(`${id}: a node of attempt ${event.attempt} changed attempt ${before.attempt}`);
    }
    if ((event.type === 'launched' || event.type === 'launch_failed') && event.launchSeq !== before.launchSeq) {
      throw new Violation(`${id}: an answer to launch ${event.launchSeq} changed launch ${before.launchSeq}`);
    }
    if (event.type === 'interrupted') {
      const instance = this.instances.find((i) => i.instanceId === event.instanceId)!;
      if (instance.attempt !== before.attempt) {
        throw new Violation(`${id}: interruption of attempt ${instance.attempt} hit attempt ${before.attempt}`);
      }
    }
    if (event.type === 'claimed') this.instances.find((i) => i.instanceId === event.instanceId)!.claimed = true;
    if (event.type === 'result' && event.result === 'SUCCESS') this.successes.add(`${id}#${event.attempt}`);
    if (event.type === 'claim_deadline_passed') {
      if (before.state !== 'launching') throw new Violation(`${id}: claim deadline hit a ${before.state} build`);
      const due = (before.launchedAt ?? Infinity) + (before.claimTimeoutSeconds ?? Infinity);
      if (this.now < due) throw new Violation(`${id}: claim deadline at ${this.now}, before ${due}`);
      if (event.launchSeq !== undefined && event.launchSeq !== before.launchSeq) {
        throw new Violation(`${id}: claim deadline of launch ${event.launchSeq} hit launch ${before.launchSeq}`);
      }
      if (after.state === 'queued' ? after.attempt !== before.attempt + 1 : before.attempt !== before.maxAttempts) {
        throw new Violation(`${id}: an unclaimed attempt ${before.attempt} ended in ${after.state}`);
      }
      if (after.state !== 'queued' && after.state !== 'node_failure') {
        throw new Violation(`${id}: an unclaimed attempt ended in ${after.state}`);
      }
    }
    if (after.state === 'timed_out') {
      const due = (before.launchedAt ?? Infinity) + before.timeoutSeconds + before.graceSeconds;
      if (this.now < due) throw new Violation(`${id}: timed out at ${this.now}, before ${due}`);
    }
  }

  private run(command: BuildCommand): void {
    if (command.type === 'launch') this.launches.push(command);
    else if (command.type === 'terminate') {
      const instance = this.instances.find((i) => i.instanceId === command.instanceId);
      if (instance === undefined) throw new Violation(`terminate of unknown instance ${command.instanceId}`);
      const owner = this.builds.get(instance.buildId)!.value;
      if (!isTerminal(owner.state) && owner.instanceId === instance.instanceId) {
        throw new Violation(`${owner.buildId}: terminated its own node ${instance.instanceId} while ${owner.state}`);
      }
      instance.live = false;
    } else this.ops.push({ kind: 'report', buildsetId: command.buildsetId });
  }

  deliver(index: number, duplicate: boolean): void {
    if (this.pending.length === 0) return;
    const at = index % this.pending.length;
    const item = this.pending[at]!;
    if (!duplicate) this.pending.splice(at, 1);
    this.ops.push({ kind: 'build', buildId: item.buildId, event: item.event });
  }

  /** The scheduler: every queued build whose wait is over gets a launch request. */
  schedule(): void {
    for (const [buildId, stored] of this.builds) {
      const b = stored.value;
      if (b.state === 'queued' && (b.notBefore ?? 0) <= this.now) {
        this.ops.push({ kind: 'build', buildId, event: { type: 'launch_requested' } });
      }
    }
  }

  /** EC2 answers a launch command; `again` keeps it to be executed twice (a retried handler). */
  fleet(index: number, outcome: 'ok' | 'capacity' | 'fatal', again: boolean): void {
    if (this.launches.length === 0) return;
    const at = index % this.launches.length;
    const launch = this.launches[at]!;
    if (!again) this.launches.splice(at, 1);
    if (outcome === 'ok') {
      const instanceId = `i-${this.nextInstance++}`;
      this.instances.push({
        instanceId,
        buildId: launch.buildId,
        attempt: launch.attempt,
        launchSeq: launch.launchSeq,
        live: true,
        claimed: false,
      });
      this.pending.push({
        buildId: launch.buildId,
        event: { type: 'launched', launchSeq: launch.launchSeq, instanceId },
      });
    } else {
      const event: BuildEvent = {
        type: 'launch_failed',
        launchSeq: launch.launchSeq,
        reason: outcome,
        retryable: outcome === 'capacity',
      };
      this.pending.push({ buildId: launch.buildId, event });
    }
  }

  /**
   * A node (live or long gone) calls back with its attempt, as the node API knows it from the token.
   * Results come only from nodes whose claim was accepted: the node API hands out the result token then.
   */
  node(index: number, what: 'claim' | NodeResult): void {
    if (this.instances.length === 0) return;
    const instance = this.instances[index % this.instances.length]!;
    if (what !== 'claim' && !instance.claimed) return;
    const event: BuildEvent =
      what === 'claim'
        ? { type: 'claimed', attempt: instance.attempt, launchSeq: instance.launchSeq, instanceId: instance.instanceId }
        : { type: 'result', result: what, elapsedSeconds: 42, attempt: instance.attempt };
    this.pending.push({ buildId: instance.buildId, event });
  }

  /** EventBridge: a spot interruption warning (or the state change of any instance we launched). */
  interrupt(index: number): void {
    if (this.instances.length === 0) return;
    const instance = this.instances[index % this.instances.length]!;
    const event: BuildEvent = { type: 'interrupted', instanceId: instance.instanceId, launchSeq: instance.launchSeq };
    this.pending.push({ buildId: instance.buildId, event });
  }

  deadline(index: number): void {
    const ids = [...this.builds.keys()];
    this.pending.push({ buildId: ids[index % ids.length]!, event: { type: 'deadline_passed' } });
  }

  /** The reaper saw the build launching past its claim deadline; the event names the launch it saw. */
  claimDeadline(index: number): void {
    const ids = [...this.builds.keys()];
    const buildId = ids[index % ids.length]!;
    const { launchSeq } = this.builds.get(buildId)!.value;
    this.pending.push({ buildId, event: { type: 'claim_deadline_passed', launchSeq } });
  }

  cancel(index: number): void {
    this.ops.push({ kind: 'cancel', buildsetId: this.sets[index % this.sets.length]!.id });
  }

  /** Let everything settle: handlers finish, launches succeed, events arrive, and time runs out. */
  drain(): void {
    for (let round = 0; round < 100; round += 1) {
      while (this.ops.length > 0) this.write(0);
      while (this.launches.length > 0) this.fleet(0, this.noCapacityAfterwards ? 'capacity' : 'ok', false);
      while (this.pending.length > 0) {
        this.deliver(0, false);
        while (this.ops.length > 0) this.write(0);
      }
      const open = [...this.builds.values()].filter((s) => !isTerminal(s.value.state));
      if (open.length === 0 && this.ops.length === 0 && this.launches.length === 0) return;
      if (open.every((s) => s.value.state !== 'queued')) {
        this.now += 6 * 3600;
        // As the reaper does: claim deadlines first, so a node that never claimed is relaunched.
        open.forEach((s) =>
          this.pending.push(
            { buildId: s.value.buildId, event: { type: 'claim_deadline_passed', launchSeq: s.value.launchSeq } },
            { buildId: s.value.buildId, event: { type: 'deadline_passed' } },
          ),
        );
      } else {
        const waits = open.map((s) => s.value.notBefore ?? 0);
        this.now = Math.max(this.now, ...waits);
        this.schedule();
      }
    }
    throw new Violation('the world did not settle');
  }
}

type Action =
  | { t: 'deliver'; i: number; dup: boolean }
  | { t: 'read'; i: number }
  | { t: 'write'; i: number }
  | { t: 'tick'; dt: number }
  | { t: 'schedule' }
  | { t: 'fleet'; i: number; outcome: 'ok' | 'capacity' | 'fatal'; again: boolean }
  | { t: 'node'; i: number; what: 'claim' | NodeResult }
  | { t: 'interrupt'; i: number }
  | { t: 'deadline'; i: number }
  | { t: 'claimDeadline'; i: number }
  | { t: 'cancel'; i: number };

const index = fc.nat({ max: 50 });
const action: fc.Arbitrary<Action> = fc.oneof(
  { arbitrary: fc.record({ t: fc.constant('deliver' as const), i: index, dup: fc.boolean() }), weight: 30 },
  { arbitrary: fc.record({ t: fc.constant('read' as const), i: index }), weight: 15 },
  { arbitrary: fc.record({ t: fc.constant('write' as const), i: index }), weight: 30 },
  { arbitrary: fc.record({ t: fc.constant('tick' as const), dt: fc.integer({ min: 1, max: 900 }) }), weight: 10 },
  { arbitrary: fc.constant({ t: 'schedule' as const }), weight: 15 },
  {
    arbitrary: fc.record({
      t: fc.constant('fleet' as const),
      i: index,
      outcome: fc.constantFrom('ok' as const, 'ok' as const, 'capacity' as const, 'fatal' as const),
      again: fc.boolean(),
    }),
    weight: 20,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('node' as const),
      i: index,
      what: fc.constantFrom(
        'claim' as const,
        'SUCCESS' as const,
        'FAILURE' as const,
        'ERROR' as const,
        'INTERRUPTED' as const,
      ),
    }),
    weight: 25,
  },
  { arbitrary: fc.record({ t: fc.constant('interrupt' as const), i: index }), weight: 10 },
  { arbitrary: fc.record({ t: fc.constant('deadline' as const), i: index }), weight: 10 },
  { arbitrary: fc.record({ t: fc.constant('claimDeadline' as const), i: index }), weight: 10 },
  { arbitrary: fc.record({ t: fc.constant('cancel' as const), i: index }), weight: 1 },
);

const worldShape = fc.array(
  fc.record({
    jobs: fc.array(fc.record({ voting: fc.boolean() }), { minLength: 1, maxLength: 3 }),
    commentOnly: fc.boolean(),
  }),
  { minLength: 1, maxLength: 3 },
);

function play(world: World, actions: readonly Action[]): void {
  for (const a of actions) {
    switch (a.t) {
      case 'deliver':
        world.deliver(a.i, a.dup);
        break;
      case 'read':
        world.read(a.i);
        break;
      case 'write':
        world.write(a.i);
        break;
      case 'tick':
        world.now += a.dt;
        break;
      case 'schedule':
        world.schedule();
        break;
      case 'fleet':
        world.fleet(a.i, a.outcome, a.again);
        break;
      case 'node':
        world.node(a.i, a.what);
        break;
      case 'interrupt':
        world.interrupt(a.i);
        break;
      case 'deadline':
        world.deadline(a.i);
        break;
      case 'claimDeadline':
        world.claimDeadline(a.i);
        break;
      case 'cancel':
        world.cancel(a.i);
        break;
    }
  }
  world.drain();
}

describe('the lifecycle under every interleaving', () => {
  it('ends each build in one terminal state and each buildset in one report or a cancel', () => {
    fc.assert(
      fc.property(
        worldShape,
        fc.integer({ min: 1, max: 3 }),
        fc.array(action, { minLength: 10, maxLength: 200, size: 'max' }),
        fc.boolean(),
        (shape, maxAttempts, actions, noCapacityAfterwards) => {
          const world = new World(shape, maxAttempts);
          world.noCapacityAfterwards = noCapacityAfterwards;
          play(world, actions);

          for (const [buildId, { value: b }] of world.builds) {
            // Exactly one terminal state, reached by exactly one write, with its Zuul result.
            expect(isTerminal(b.state)).toBe(true);
            expect(world.terminalWrites.get(buildId)).toBe(1);
            expect(b.result).toBe(zuulResult(b));
            // Never more nodes adopted than attempts allowed; RETRY_LIMIT only on the last attempt.
            expect(world.adoptions.get(buildId) ?? 0).toBeLessThanOrEqual(maxAttempts);
            expect(b.attempt).toBeLessThanOrEqual(maxAttempts);
            if (b.state === 'retry_limit') expect(b.attempt).toBe(maxAttempts);
            // Success only from a node of the attempt that counted.
            if (b.state === 'succeeded') expect(world.successes.has(`${buildId}#${b.attempt}`)).toBe(true);
            // Cancelled builds only in buildsets whose cancel won.
            if (b.state === 'cancelled') expect(world.cancelledSets.has(b.buildsetId)).toBe(true);
          }
          // No node is left running on our bill.
          expect(world.instances.filter((i) => i.live)).toEqual([]);

          for (const set of world.sets) {
            const reports = world.reports.get(set.id)!;
            if (world.cancelledSets.has(set.id)) {
              expect(reports).toEqual([]);
              continue;
            }
            expect(reports).toHaveLength(1);
            const builds = set.buildIds.map((id) => world.builds.get(id)!.value);
            const voting = builds.filter((b) => b.voting);
            const succeeded = voting.every((b) => b.state === 'succeeded');
            const vote = set.commentOnly || voting.length === 0 ? undefined : succeeded ? 1 : -1;
            expect(reports[0]).toEqual({ succeeded, ...(vote === undefined ? {} : { vote }) });
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('reports exactly once when every handler runs twice and reporters race', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom<NodeResult>('SUCCESS', 'FAILURE', 'ERROR'), { minLength: 1, maxLength: 4 }),
        fc.array(index, { maxLength: 40 }),
        (results, order) => {
          const world = new World([{ jobs: results.map(() => ({ voting: true })), commentOnly: false }], 1);
          world.schedule();
          while (world.ops.length > 0) world.write(0);
          while (world.launches.length > 0) world.fleet(0, 'ok', false);
          results.forEach((result, i) => world.node(i, result));
          // Deliver every event twice, then finish the handlers (and the reporters they start) in a random order.
          while (world.pending.length > 0) {
            world.deliver(0, true);
            world.deliver(0, false);
          }
          for (const i of order) world.read(i);
          for (const i of order) world.write(i);
          world.drain();
          expect(world.reports.get('bs0')).toHaveLength(1);
        },
      ),
      { numRuns: 200 },
    );
  });
});
