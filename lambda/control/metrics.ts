/**
 * What the control plane measures, at the transitions that decide it (docs/design.md, Metrics).
 * Recording never breaks the caller: a failing metrics port costs the metric, not the build.
 */
import { isTerminal } from '../core/lifecycle';
import type { ControlPorts, MetricsPort } from './ports';
import type { BuildRecord, BuildsetRecord } from './records';

/** An `eventCreatedOn` this much older than the buildset is a replayed event, not a slow vote. */
const MAX_EVENT_AGE_SECONDS = 24 * 3600;

export function recordMetrics(ports: ControlPorts, record: (metrics: MetricsPort) => void): void {
  if (!ports.metrics) return;
  try {
    record(ports.metrics);
  } catch (error) {
    ports.logger.warn('metrics not recorded', { error: error instanceof Error ? error.message : String(error) });
  }
}

/**
 * After a build's transition was written (the conditional write makes it happen once):
 * `BuildsFinished` when it became terminal, `NodeSeconds` when the attempt of a node known to
 * exist (an instance recorded, or a claim) ended, by finishing or by going back to the queue.
 */
export function recordBuildTransition(ports: ControlPorts, before: BuildRecord, after: BuildRecord): void {
  const finished = !isTerminal(before.state) && isTerminal(after.state) && after.result !== undefined;
  const active = before.state === 'launching' || before.state === 'running';
  const nodeKnown = before.instanceId !== undefined || before.state === 'running';
  const attemptEnded = active && after.state !== 'launching' && after.state !== 'running';
  const launchedAt = before.launchedAt;
  recordMetrics(ports, (metrics) => {
    if (finished && after.result) metrics.count('BuildsFinished', 1, { Result: after.result });
    if (attemptEnded && nodeKnown && launchedAt !== undefined) {
      metrics.seconds('NodeSeconds', Math.max(0, ports.now() - launchedAt), { Label: before.nodeLabel });
    }
  });
}

/** A review is on the change: from the Gerrit event (or, without a usable event time, the buildset's arrival). */
export function recordVote(ports: ControlPorts, buildset: BuildsetRecord): void {
  const since = voteClockStart(buildset);
  recordMetrics(ports, (metrics) => metrics.seconds('TimeToVoteSeconds', Math.max(0, ports.now() - since), {}));
}

/**
 * A review that will never be posted (Gerrit refused it, e.g. 401/403 for a wrong password, or it
 * kept failing past the retry policy). A 409 drop (change closed) is expected and not counted.
 */
export function recordDeadLetteredReport(ports: ControlPorts): void {
  recordMetrics(ports, (metrics) => metrics.count('ReportsDeadLettered', 1, {}));
}

/** `eventCreatedOn` of the stored event when it is plausible (not after arrival, not a day before it). */
export function voteClockStart(buildset: BuildsetRecord): number {
  let created: unknown;
  try {
    created = (JSON.parse(buildset.eventJson) as { eventCreatedOn?: unknown }).eventCreatedOn;
  } catch {
    return buildset.createdAt;
  }
  const seconds = typeof created === 'string' && /^\d{1,12}$/.test(created) ? Number(created) : created;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return buildset.createdAt;
  if (seconds > buildset.createdAt || seconds < buildset.createdAt - MAX_EVENT_AGE_SECONDS) return buildset.createdAt;
  return seconds;
}

/** The gauges the scheduler and the reaper see: nodes out and builds waiting for one. */
export function recordNodeGauges(ports: ControlPorts, gauges: { runningNodes: number; queuedBuilds: number }): void {
  recordMetrics(ports, (metrics) => {
    metrics.count('RunningNodes', gauges.runningNodes, {});
    metrics.count('QueuedBuilds', gauges.queuedBuilds, {});
  });
}
