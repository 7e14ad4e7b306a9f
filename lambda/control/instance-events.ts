/**
 * A node went away or is about to (EventBridge spot interruption warnings and instance state
 * changes in AWS; a node process that exited locally). If it still carried a live attempt, the
 * lifecycle sends the build back to the queue (or to RETRY_LIMIT) and the scheduler relaunches it.
 */
import { isTerminal } from '../core/lifecycle';
import { applyBuildEvent, pokeSchedulerIfQueued } from './builds';
import type { ControlPorts } from './ports';
import type { BuildRecord } from './records';

export async function nodeLost(ports: ControlPorts, buildId: string, instanceId: string, why: string): Promise<void> {
  const build = await ports.store.getBuild<BuildRecord>(buildId);
  if (!build || isTerminal(build.state)) return;
  if (build.instanceId !== undefined && build.instanceId !== instanceId) return;
  if (build.state !== 'launching' && build.state !== 'running') return;
  ports.logger.info(`build ${buildId}: node ${instanceId} lost (${why})`, { buildId, instanceId, why });
  const applied = await applyBuildEvent(ports, buildId, { type: 'interrupted', attempt: build.attempt, instanceId });
  await pokeSchedulerIfQueued(ports, applied);
}
