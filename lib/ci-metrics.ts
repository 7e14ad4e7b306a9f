import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';

/**
 * The custom metrics the control plane emits as CloudWatch Embedded Metric Format log lines
 * (docs/design.md, Metrics). The dashboard and alarms read them; nothing here creates data.
 */
export const METRICS_NAMESPACE = 'AkandaCi';

export const METRIC = {
  /** Count, dimension `Result`: a build reached a terminal result. */
  buildsFinished: 'BuildsFinished',
  /** Count: a launch found no capacity in any pool, fallbacks included. */
  launchFailures: 'LaunchFailures',
  /** Seconds: from the Gerrit event to the posted review. */
  timeToVote: 'TimeToVoteSeconds',
  /** Seconds, dimension `Label`: node lifetime, the spend proxy. */
  nodeSeconds: 'NodeSeconds',
  /** Count (gauge): CI instances running, from the scheduler and the reaper. */
  runningNodes: 'RunningNodes',
  /** Count (gauge): builds waiting for a node. */
  queuedBuilds: 'QueuedBuilds',
  /** Count: a review will never be posted (Gerrit refused it, or it failed past every retry). */
  reportsDeadLettered: 'ReportsDeadLettered',
} as const;

export function ciMetric(
  metricName: (typeof METRIC)[keyof typeof METRIC],
  options: { statistic?: string; period?: Duration; dimensions?: Record<string, string>; label?: string } = {},
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    statistic: options.statistic ?? cloudwatch.Stats.SUM,
    period: options.period ?? Duration.minutes(5),
    dimensionsMap: options.dimensions,
    label: options.label,
  });
}
