/**
 * The reaper (every minute in AWS, every tick locally): overdue builds become TIMED_OUT and lose
 * their node; nodes whose build is finished, unknown or relaunched elsewhere are terminated; and
 * the scheduler is nudged so builds waiting for capacity get another try.
 */
import { isTerminal } from '../core/lifecycle';
import { applyBuildEvent } from './builds';
import { recordNodeGauges } from './metrics';
import type { ControlPorts } from './ports';
import type { BuildRecord } from './records';

export interface ReaperSummary {
  timedOut: string[];
  terminated: string[];
}

export async function reap(ports: ControlPorts): Promise<ReaperSummary> {
  const summary: ReaperSummary = { timedOut: [], terminated: [] };
  const now = ports.now();
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
  return summary;
}
