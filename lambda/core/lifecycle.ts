/**
 * The build lifecycle: a pure reducer, so every handler (scheduler, node API, EC2 events, reaper)
 * applies the same rules and a retried or racing handler can never fork a build.
 *
 * Adapters read a build with its `version`, call `transition(build, event, now)`, and write the new
 * build back only if it `changed`, with the condition `version = :expected`. The loser of a race
 * re-reads and re-applies the event (usually a no-op by then). Commands run only after the write won,
 * or, when nothing changed, right away (a stale `launched` yields a terminate without a write).
 * Times are epoch seconds.
 *
 * | state       | event                       | next state                 | commands                        |
 * |-------------|-----------------------------|----------------------------|---------------------------------|
 * | queued      | launch_requested            | launching (launchSeq+1)    | launch                          |
 * | launching   | launched(seq, id)           | launching (+instanceId)    | -                               |
 * | launching   | launch_failed(retryable)    | queued (notBefore backoff) | -                               |
 * | launching   | launch_failed(retryable),   | node_failure               | report_if_complete              |
 * |             |   capacity wait > 2h        |                            |                                 |
 * | launching   | launch_failed(not retryable)| node_failure               | report_if_complete              |
 * | launching   | claimed                     | running                    | -                               |
 * | launching   | claim_deadline_passed       | queued (attempt+1)         | terminate?                      |
 * |             |   (>= claimDeadlineAt)      |   or node_failure at max   |   (report_if_complete first)    |
 * | running     | launched(seq, id), no id yet| running (+instanceId)      | -                               |
 * | launching,  | result(SUCCESS)             | succeeded                  | report_if_complete, terminate?  |
 * |   running   | result(FAILURE / ERROR)     | failed                     | report_if_complete, terminate?  |
 * |             | result(INTERRUPTED),        | queued (attempt+1)         | terminate?                      |
 * |             |   interrupted               |   or retry_limit at max    |   (report_if_complete first)    |
 * |             | deadline_passed (>= due)    | timed_out                  | report_if_complete, terminate?  |
 * | non-terminal| cancel                      | cancelled                  | terminate?                      |
 * | any         | launched for a stale launch | unchanged                  | terminate(that instance)        |
 * | any         | anything else (duplicates,  | unchanged (no-op)          | -                               |
 * |             |   late results, stale seq)  |                            |                                 |
 *
 * `terminate?` = `terminate(instanceId)` when the build knows its instance; it always comes after
 * `report_if_complete`, so a failing TerminateInstances cannot cost the report. A transition into
 * `queued` (interruption, capacity wait) means the caller should poke the scheduler; a queued build
 * is launchable once `launchableAt(build)` has passed and the concurrency limit allows.
 *
 * Stale events are no-ops: node events (`claimed`, `result`) whose `attempt` or `launchSeq` is not the
 * build's; `launched`/`launch_failed`/`claim_deadline_passed` for another `launchSeq`; `interrupted` for an
 * instance other than the build's, or for an instance the build has not adopted yet unless the event names
 * its launch (`launchSeq`, from the instance's `akanda-ci:launch` tag). A claim that names its instance
 * adopts it.
 *
 * The deadline of an attempt is fixed when it is launched: launch time + job timeout (already capped by
 * `limits.buildTimeLimit`) + `limits.timeoutGrace`; the grace covers boot, fetch and log upload.
 *
 * So is its claim deadline: launch time + `limits.claimTimeout`, at most the attempt's deadline. A node
 * that has not claimed by then (failed boot, hung agent, a bad AMI, a scheduler that died after
 * `launch_requested`) is treated like a lost node: the attempt ends, its instance (if known) is terminated
 * and the build goes back to the queue, so it neither holds a slot of the node limit for hours nor ends
 * TIMED_OUT for a job that never ran. When that happens on the last attempt the build is NODE_FAILURE, not
 * RETRY_LIMIT: the last attempt never got a usable node, which is what NODE_FAILURE says in Zuul (and what
 * a launch that fails for good already gives here), while RETRY_LIMIT says the job itself was started and
 * cut short too often; the word sends the operator to the AMI and the boot, not to the job. The attempt
 * that ends the build decides, whatever ended the earlier ones (as with a failed launch after an
 * interruption). The reaper sends `claim_deadline_passed` before `deadline_passed`, so an attempt whose
 * node never claimed is relaunched, not TIMED_OUT; a build without `claimTimeoutSeconds` (recorded before
 * the limit existed) has no claim deadline.
 *
 * Buildsets (their states are the control plane's, `lambda/control/records.ts`): `buildsetOutcome` says
 * when every build is terminal and whether the buildset gets a review. Cancelled builds never ask for a
 * report, and a buildset with a cancelled build is never reported.
 */

export type BuildState =
  | 'queued'
  | 'launching'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'node_failure'
  | 'retry_limit'
  | 'cancelled';

export const TERMINAL_STATES: readonly BuildState[] = [
  'succeeded',
  'failed',
  'timed_out',
  'node_failure',
  'retry_limit',
  'cancelled',
];

/** What a node reports through `POST /node/result`. */
export type NodeResult = 'SUCCESS' | 'FAILURE' | 'ERROR' | 'INTERRUPTED';
export const NODE_RESULTS: readonly NodeResult[] = ['SUCCESS', 'FAILURE', 'ERROR', 'INTERRUPTED'];

/** The Zuul result words this CI reports. */
export type ZuulResult = 'SUCCESS' | 'FAILURE' | 'ERROR' | 'TIMED_OUT' | 'NODE_FAILURE' | 'RETRY_LIMIT' | 'ABORTED';

/** How long a build may wait for spot/on-demand capacity before it becomes NODE_FAILURE. */
export const CAPACITY_WAIT_LIMIT_SECONDS = 2 * 3600;
/** Backoff between launch tries while there is no capacity: 30 s doubling up to 10 min. */
export const CAPACITY_RETRY_BASE_SECONDS = 30;
export const CAPACITY_RETRY_MAX_SECONDS = 600;

export interface Build {
  buildId: string;
  buildsetId: string;
  jobName: string;
  /** Node label: a key of config `nodes`. */
  nodeLabel: string;
  voting: boolean;
  /** Job timeout, already capped by `limits.buildTimeLimit`. */
  timeoutSeconds: number;
  /** `limits.timeoutGrace`. */
  graceSeconds: number;
  /** `limits.maxAttempts`. */
  maxAttempts: number;
  /** `limits.claimTimeout`; absent on builds recorded before it existed (they get no claim deadline). */
  claimTimeoutSeconds?: number;
  state: BuildState;
  /** 1-based; a spot interruption starts the next attempt. */
  attempt: number;
  /** Launch commands issued so far; `launched`/`launch_failed` name the one they answer. */
  launchSeq: number;
  createdAt: number;
  /** Queued after a retryable launch failure: not launchable before this time. */
  notBefore?: number;
  /** Start of the current wait for capacity (first retryable launch failure in a row). */
  waitingSince?: number;
  launchRetries?: number;
  launchedAt?: number;
  instanceId?: string;
  claimedAt?: number;
  /** When the current attempt is overdue: the reaper sends `deadline_passed`. */
  deadlineAt?: number;
  /** While launching: when the node is lost unless it has claimed; the reaper sends `claim_deadline_passed`. */
  claimDeadlineAt?: number;
  finishedAt?: number;
  /** Set exactly when the state is terminal. */
  result?: ZuulResult;
  elapsedSeconds?: number;
  /** Why the build ended as it did or went back to the queue, for logs (never a secret). */
  reason?: string;
}

export type BuildEvent =
  | { type: 'launch_requested' }
  | { type: 'launched'; launchSeq: number; instanceId: string }
  | { type: 'launch_failed'; launchSeq: number; reason: string; retryable: boolean }
  /** instanceId: the node's own (IMDS); launchSeq: the launch its claim token belongs to. */
  | { type: 'claimed'; attempt?: number; launchSeq?: number; instanceId?: string }
  | { type: 'result'; result: NodeResult; elapsedSeconds?: number; attempt?: number }
  /**
   * A spot interruption warning or the node's instance going away. launchSeq: from the instance's
   * `akanda-ci:launch` tag; without it an instance the build has not adopted is ignored.
   */
  | { type: 'interrupted'; attempt?: number; launchSeq?: number; instanceId?: string }
  | { type: 'deadline_passed' }
  /** launchSeq: the launch the sender saw overdue; a later launch has its own deadline. */
  | { type: 'claim_deadline_passed'; launchSeq?: number }
  | { type: 'cancel'; reason?: string };

export type BuildCommand =
  | { type: 'launch'; buildId: string; buildsetId: string; nodeLabel: string; attempt: number; launchSeq: number }
  | { type: 'terminate'; buildId: string; instanceId: string }
  | { type: 'report_if_complete'; buildsetId: string };

export interface Transition<B extends Build> {
  build: B;
  commands: BuildCommand[];
  /** False when the event was a no-op: nothing to write, `build` is the input object. */
  changed: boolean;
}

export type NewBuild = Pick<
  Build,
  | 'buildId'
  | 'buildsetId'
  | 'jobName'
  | 'nodeLabel'
  | 'voting'
  | 'timeoutSeconds'
  | 'graceSeconds'
  | 'maxAttempts'
  | 'claimTimeoutSeconds'
>;

export function newBuild(fields: NewBuild, now: number): Build {
  return { ...fields, state: 'queued', attempt: 1, launchSeq: 0, createdAt: now };
}

export function isTerminal(state: BuildState): boolean {
  return TERMINAL_STATES.includes(state);
}

/** The Zuul result of a finished build; undefined while it is not terminal. */
export function zuulResult(build: Pick<Build, 'state' | 'result'>): ZuulResult | undefined {
  switch (build.state) {
    case 'succeeded':
      return 'SUCCESS';
    case 'failed':
      return build.result === 'ERROR' ? 'ERROR' : 'FAILURE';
    case 'timed_out':
      return 'TIMED_OUT';
    case 'node_failure':
      return 'NODE_FAILURE';
    case 'retry_limit':
      return 'RETRY_LIMIT';
    case 'cancelled':
      return 'ABORTED';
    default:
      return undefined;
  }
}

/** Earliest time a queued build may be launched (a capacity wait pushes it out). */
export function launchableAt(build: Build): number {
  return build.notBefore ?? build.createdAt;
}

export function transition<B extends Build>(build: B, event: BuildEvent, now: number): Transition<B> {
  const same: Transition<B> = { build, commands: [], changed: false };
  const active = build.state === 'launching' || build.state === 'running';

  switch (event.type) {
    case 'launch_requested': {
      if (build.state !== 'queued') return same;
      const launchSeq = build.launchSeq + 1;
      const deadlineAt = now + build.timeoutSeconds + build.graceSeconds;
      return step(
        build,
        {
          state: 'launching',
          launchSeq,
          launchedAt: now,
          deadlineAt,
          claimDeadlineAt:
            build.claimTimeoutSeconds === undefined ? undefined : Math.min(deadlineAt, now + build.claimTimeoutSeconds),
          instanceId: undefined,
          claimedAt: undefined,
          notBefore: undefined,
        },
        [
          {
            type: 'launch',
            buildId: build.buildId,
            buildsetId: build.buildsetId,
            nodeLabel: build.nodeLabel,
            attempt: build.attempt,
            launchSeq,
          },
        ],
      );
    }

    case 'launched': {
      if (build.instanceId === event.instanceId) return same;
      if (active && event.launchSeq === build.launchSeq && build.instanceId === undefined) {
        return step(build, { instanceId: event.instanceId, waitingSince: undefined, launchRetries: undefined }, []);
      }
      // A launch nobody wants any more (stale, cancelled, or a second instance from a retried launch):
      // its instance must not run on our bill. The only no-op whose command must still run.
      return { build, commands: [terminate(build, event.instanceId)], changed: false };
    }

    case 'launch_failed': {
      if (build.state !== 'launching' || event.launchSeq !== build.launchSeq) return same;
      if (build.instanceId !== undefined) return same;
      if (!event.retryable) return finish(build, 'node_failure', now, { reason: event.reason });
      const waitingSince = build.waitingSince ?? now;
      if (now - waitingSince >= CAPACITY_WAIT_LIMIT_SECONDS) {
        return finish(build, 'node_failure', now, { reason: `no capacity since ${waitingSince}: ${event.reason}` });
      }
      const launchRetries = (build.launchRetries ?? 0) + 1;
      const backoff = Math.min(CAPACITY_RETRY_BASE_SECONDS * 2 ** (launchRetries - 1), CAPACITY_RETRY_MAX_SECONDS);
      return step(
        build,
        {
          state: 'queued',
          waitingSince,
          launchRetries,
          notBefore: now + backoff,
          deadlineAt: undefined,
          claimDeadlineAt: undefined,
          launchedAt: undefined,
          reason: event.reason,
        },
        [],
      );
    }

    case 'claimed': {
      if (build.state !== 'launching' || staleAttempt(build, event.attempt) || staleLaunch(build, event.launchSeq)) {
        return same;
      }
      const claimed = { state: 'running' as const, claimedAt: now, claimDeadlineAt: undefined };
      if (event.instanceId === undefined) return step(build, claimed, []);
      if (build.instanceId !== undefined && build.instanceId !== event.instanceId) return same;
      // The node may claim before its launch is recorded: learn the instance now, so its interruption counts.
      return step(build, { ...claimed, instanceId: event.instanceId }, []);
    }

    case 'result': {
      if (!active || staleAttempt(build, event.attempt)) return same;
      if (event.result === 'INTERRUPTED') return endAttempt(build, now, undefined, 'interrupted');
      const elapsedSeconds = event.elapsedSeconds ?? now - (build.claimedAt ?? build.launchedAt ?? now);
      if (event.result === 'SUCCESS') return finish(build, 'succeeded', now, { elapsedSeconds });
      return finish(build, 'failed', now, { elapsedSeconds, result: event.result });
    }

    case 'interrupted': {
      if (!active || staleAttempt(build, event.attempt) || staleLaunch(build, event.launchSeq)) return same;
      if (event.instanceId !== undefined) {
        if (build.instanceId !== undefined && event.instanceId !== build.instanceId) return same;
        // An instance we have not heard of may be a leftover of an earlier launch: without its launch
        // number it must not cost an attempt (if it was ours, the claim deadline or the deadline still catches the build).
        if (build.instanceId === undefined && event.launchSeq === undefined) return same;
      }
      return endAttempt(build, now, event.instanceId, 'interrupted');
    }

    case 'claim_deadline_passed': {
      if (build.state !== 'launching' || staleLaunch(build, event.launchSeq)) return same;
      if (build.claimDeadlineAt === undefined || now < build.claimDeadlineAt) return same;
      return endAttempt(build, now, undefined, 'unclaimed');
    }

    case 'deadline_passed': {
      if (!active || build.deadlineAt === undefined || now < build.deadlineAt) return same;
      const elapsedSeconds = now - (build.claimedAt ?? build.launchedAt ?? now);
      return finish(build, 'timed_out', now, { elapsedSeconds });
    }

    case 'cancel': {
      if (isTerminal(build.state)) return same;
      const commands = build.instanceId === undefined ? [] : [terminate(build, build.instanceId)];
      return step(
        build,
        { state: 'cancelled', result: 'ABORTED', finishedAt: now, reason: event.reason ?? 'cancelled' },
        commands,
      );
    }
  }
}

function staleAttempt(build: Build, attempt: number | undefined): boolean {
  return attempt !== undefined && attempt !== build.attempt;
}

function staleLaunch(build: Build, launchSeq: number | undefined): boolean {
  return launchSeq !== undefined && launchSeq !== build.launchSeq;
}

function step<B extends Build>(build: B, patch: Partial<Build>, commands: BuildCommand[]): Transition<B> {
  const next = { ...build, ...patch };
  for (const key of Object.keys(patch) as (keyof Build)[]) {
    if (patch[key] === undefined) delete next[key];
  }
  return { build: next, commands, changed: true };
}

function terminate(build: Build, instanceId: string): BuildCommand {
  return { type: 'terminate', buildId: build.buildId, instanceId };
}

function finish<B extends Build>(
  build: B,
  state: 'succeeded' | 'failed' | 'timed_out' | 'node_failure' | 'retry_limit',
  now: number,
  extra: { elapsedSeconds?: number; result?: ZuulResult; reason?: string },
): Transition<B> {
  const result = extra.result ?? zuulResult({ state });
  // The report first: a terminate that fails (the reaper kills strays anyway) must not lose it.
  const commands: BuildCommand[] = [{ type: 'report_if_complete', buildsetId: build.buildsetId }];
  if (build.instanceId !== undefined) commands.push(terminate(build, build.instanceId));
  return step(
    build,
    {
      state,
      result,
      finishedAt: now,
      elapsedSeconds: extra.elapsedSeconds,
      reason: extra.reason,
      notBefore: undefined,
      deadlineAt: undefined,
      claimDeadlineAt: undefined,
    },
    commands,
  );
}

/**
 * The current attempt is lost (`interrupted`: a spot interruption or its node gone; `unclaimed`: its
 * node never claimed): the node goes and the build is queued as its next attempt, or ends at the
 * last one (RETRY_LIMIT, or NODE_FAILURE when that attempt never had a usable node).
 */
function endAttempt<B extends Build>(
  build: B,
  now: number,
  reportedInstanceId: string | undefined,
  why: 'interrupted' | 'unclaimed',
): Transition<B> {
  const instanceId = build.instanceId ?? reportedInstanceId;
  const what = why === 'interrupted' ? 'interrupted' : 'node did not claim the build';
  if (build.attempt >= build.maxAttempts) {
    return finish({ ...build, instanceId }, why === 'interrupted' ? 'retry_limit' : 'node_failure', now, {
      reason: `${what} on attempt ${build.attempt} of ${build.maxAttempts}`,
    });
  }
  const commands = instanceId === undefined ? [] : [terminate(build, instanceId)];
  return step(
    build,
    {
      state: 'queued',
      attempt: build.attempt + 1,
      instanceId: undefined,
      claimedAt: undefined,
      launchedAt: undefined,
      deadlineAt: undefined,
      claimDeadlineAt: undefined,
      notBefore: undefined,
      reason: `${what} on attempt ${build.attempt}`,
    },
    commands,
  );
}

/** What a buildset's builds decide, for the reporter. */
export type BuildsetOutcome =
  { complete: false } | { complete: true; report: false; why: 'cancelled' | 'no builds' } | ReportableOutcome;

/** A complete buildset that gets its one review. */
export type ReportableOutcome = { complete: true; report: true; succeeded: boolean; vote?: 1 | -1 };

/**
 * When every build is terminal the buildset is complete. It is reported unless one of its builds was
 * cancelled (superseded or abandoned: no vote for an old patchset). The vote is +1 when every voting
 * build succeeded, -1 otherwise, none when no job votes or the CI only comments; never +-2.
 */
export function buildsetOutcome(
  builds: readonly Pick<Build, 'state' | 'voting'>[],
  options: { commentOnly: boolean },
): BuildsetOutcome {
  if (builds.length === 0) return { complete: true, report: false, why: 'no builds' };
  if (builds.some((b) => b.state === 'cancelled')) return { complete: true, report: false, why: 'cancelled' };
  if (!builds.every((b) => isTerminal(b.state))) return { complete: false };
  const voting = builds.filter((b) => b.voting);
  const succeeded = voting.every((b) => b.state === 'succeeded');
  if (options.commentOnly || voting.length === 0) return { complete: true, report: true, succeeded };
  return { complete: true, report: true, succeeded, vote: succeeded ? 1 : -1 };
}
