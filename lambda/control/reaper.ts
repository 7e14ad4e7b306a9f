/**
 * The reaper (every minute in AWS, every tick locally): builds whose node never claimed them are
 * relaunched (or NODE_FAILURE), overdue builds become TIMED_OUT and lose their node; nodes whose build
 * is finished, unknown or relaunched elsewhere are terminated; the scheduler is nudged so builds
 * waiting for capacity get another try; and stuck buildsets get their lost message again.
 */
import { isTerminal } from '../core/lifecycle';
import { planEvent } from '../core/planner';
import { applyBuildEvent } from './builds';
import { recordNodeGauges } from './metrics';
import type { ControlPorts } from './ports';
import type { BuildRecord, BuildsetRecord } from './records';

export interface ReaperSummary {
  /** Builds whose node did not claim them in time: requeued as their next attempt, or NODE_FAILURE. */
  unclaimed: string[];
  timedOut: string[];
  terminated: string[];
  /** Buildsets whose schedule or report message was sent again. */
  nudged: string[];
}

/** Buildsets looked at per run: the sweep's work is bounded whatever the backlog (oldest due first). */
export const SWEEP_BATCH = 25;
/** A buildset that still has work in flight is looked at again this much later. */
export const SWEEP_INTERVAL_SECONDS = 30 * 60;
/** Re-sends back off from the interval, doubling up to this. */
export const SWEEP_MAX_INTERVAL_SECONDS = 4 * 3600;
/** Re-sends for one buildset before the sweep gives up on it with an error log (about 31 hours). */
export const SWEEP_MAX_NUDGES = 10;
/** The report of a buildset whose last build ended this recently is probably on its way. */
const REPORT_SETTLE_SECONDS = 5 * 60;

export async function reap(ports: ControlPorts): Promise<ReaperSummary> {
  const summary: ReaperSummary = { unclaimed: [], timedOut: [], terminated: [], nudged: [] };
  const now = ports.now();
  // Before the deadlines: an attempt whose node never claimed is relaunched, not TIMED_OUT.
  for (const build of await ports.store.buildsInState<BuildRecord>('launching')) {
    if (build.claimDeadlineAt === undefined || build.claimDeadlineAt > now) continue;
    const event = { type: 'claim_deadline_passed', launchSeq: build.launchSeq } as const;
    const applied = await applyBuildEvent(ports, build.buildId, event, undefined, build);
    if (!applied.changed) continue;
    summary.unclaimed.push(build.buildId);
    ports.logger.warn(`build ${build.buildId} ${build.jobName}: its node did not claim it in time`, {
      buildId: build.buildId,
      buildsetId: build.buildsetId,
      attempt: build.attempt,
      launchSeq: build.launchSeq,
      to: applied.build?.state,
      ...(build.instanceId ? { instanceId: build.instanceId } : {}),
    });
  }
  for (const state of ['launching', 'running'] as const) {
    for (const build of await ports.store.buildsInState<BuildRecord>(state)) {
      if (build.deadlineAt === undefined || build.deadlineAt > now) continue;
      const applied = await applyBuildEvent(ports, build.buildId, { type: 'deadline_passed' });
      if (applied.changed) summary.timedOut.push(build.buildId);
    }
  }

  const instances = await ports.fleet.listManagedInstances();
  const builds = new Map(
    (
      await ports.store.getBuilds<BuildRecord>([...new Set(instances.flatMap((i) => (i.buildId ? [i.buildId] : [])))])
    ).map((b) => [b.buildId, b]),
  );
  const strays = instances.filter((instance) => {
    const build = instance.buildId ? builds.get(instance.buildId) : undefined;
    if (!build || isTerminal(build.state)) return true;
    // Launched for an earlier launch of the build (its `akanda-ci:launch` tag): a leftover, even before
    // the build has recorded its current instance.
    if (instance.launchSeq !== undefined && instance.launchSeq !== build.launchSeq) return true;
    // A launching build may not have recorded its instance yet; any other mismatch is a leftover.
    return build.instanceId !== undefined && build.instanceId !== instance.instanceId;
  });
  if (strays.length > 0) {
    const ids = strays.map((s) => s.instanceId);
    ports.logger.warn(`reaper: terminating ${ids.length} node(s) without a live build`, { instanceIds: ids });
    await ports.fleet.terminateInstances(ids);
    summary.terminated.push(...ids);
  }

  const queued = await ports.store.countBuildsInState('queued');
  // Every minute: the gauges of the node-limit alarm. Strays count: until they are gone they run on our bill.
  recordNodeGauges(ports, { runningNodes: instances.length, queuedBuilds: queued });
  if (queued > 0) await ports.scheduleQueue.send({ kind: 'launch' });
  // Last: a sweep that fails (a queue send) must not cost the builds and nodes above their minute.
  summary.nudged.push(...(await sweepBuildsets(ports, now)));
  return summary;
}

/**
 * Buildsets nothing would ever finish: `pending` ones whose schedule message was lost (a Gerrit outage
 * longer than the queue's retries, a crash) get it again; `scheduled` (or `reporting`) ones whose builds
 * are all over but whose report message was lost get `report_if_complete` again. Both handlers are
 * idempotent, so a message sent while the first one is merely slow costs nothing but a read. Each open
 * buildset has a sweep marker in the state index ordered by when it is due, so a run reads only the
 * due ones, at most SWEEP_BATCH.
 */
async function sweepBuildsets(ports: ControlPorts, now: number): Promise<string[]> {
  const nudged: string[] = [];
  for (const sweep of await ports.store.dueBuildsetSweeps(now, SWEEP_BATCH)) {
    const buildset = await ports.store.getBuildset<BuildsetRecord>(sweep.buildsetId);
    if (!buildset || !['pending', 'scheduled', 'reporting'].includes(buildset.state)) {
      await ports.store.deleteBuildsetSweep(sweep.buildsetId);
      continue;
    }
    const since = await stuckSince(ports, buildset);
    if (since === undefined || now < since + REPORT_SETTLE_SECONDS) {
      const dueAt = since === undefined ? now + SWEEP_INTERVAL_SECONDS : since + REPORT_SETTLE_SECONDS;
      await ports.store.putBuildsetSweep({ ...sweep, dueAt });
      continue;
    }
    if (sweep.nudges >= SWEEP_MAX_NUDGES) {
      ports.logger.error(`buildset ${buildset.buildsetId}: still ${buildset.state} after ${sweep.nudges} re-sends`, {
        buildsetId: buildset.buildsetId,
        state: buildset.state,
      });
      await ports.store.deleteBuildsetSweep(sweep.buildsetId);
      continue;
    }
    await nudge(ports, buildset);
    nudged.push(buildset.buildsetId);
    const backoff = Math.min(SWEEP_INTERVAL_SECONDS * 2 ** sweep.nudges, SWEEP_MAX_INTERVAL_SECONDS);
    await ports.store.putBuildsetSweep({ ...sweep, dueAt: now + backoff, nudges: sweep.nudges + 1 });
  }
  return nudged;
}

/**
 * Since when nothing is under way that would move the buildset on; undefined while something is
 * (a build not over yet, a report retry not yet due or in flight).
 */
async function stuckSince(ports: ControlPorts, buildset: BuildsetRecord): Promise<number | undefined> {
  // Pending: the marker's first due time already waited the bound out since it was recorded.
  if (buildset.state === 'pending') return buildset.createdAt;
  if (buildset.state === 'reporting') {
    const busyUntil = Math.max(buildset.reportingUntil ?? 0, buildset.nextReportAt ?? 0);
    return busyUntil > 0 ? busyUntil : buildset.createdAt;
  }
  const builds = await ports.store.getBuilds<BuildRecord>(buildset.buildIds);
  if (builds.length !== buildset.buildIds.length || !builds.every((b) => isTerminal(b.state))) return undefined;
  return Math.max(buildset.createdAt, ...builds.map((b) => b.finishedAt ?? 0));
}

async function nudge(ports: ControlPorts, buildset: BuildsetRecord): Promise<void> {
  const fields = { buildsetId: buildset.buildsetId, state: buildset.state };
  if (buildset.state === 'pending') {
    ports.logger.warn(`buildset ${buildset.buildsetId}: still pending, scheduling it again`, fields);
    await ports.scheduleQueue.send({
      kind: 'buildset',
      buildsetId: buildset.buildsetId,
      supersedes: supersedes(ports, buildset),
    });
    return;
  }
  ports.logger.warn(
    `buildset ${buildset.buildsetId}: every build is over but it is unreported, reporting again`,
    fields,
  );
  await ports.reportQueue.send({ buildsetId: buildset.buildsetId });
}

/** What the lost schedule message would have superseded: the pure planner says it again from the event. */
function supersedes(ports: ControlPorts, buildset: BuildsetRecord) {
  try {
    return planEvent(ports.config, JSON.parse(buildset.eventJson)).supersedes;
  } catch {
    return [];
  }
}
