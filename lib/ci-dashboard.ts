import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ciMetric, METRIC, METRICS_NAMESPACE } from './ci-metrics';

export interface CiDashboardProps {
  readonly dashboardName: string;
  readonly queues: Readonly<Record<string, sqs.IQueue>>;
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** Node labels from the config: one spend-proxy line each. */
  readonly nodeLabels: readonly string[];
  readonly maxConcurrentNodes: number;
}

/** One page for the operator: work waiting, results, launches, time to vote and lost votes, spend proxy. */
export class CiDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: CiDashboardProps) {
    super(scope, id);
    const period = Duration.minutes(5);
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.days(1),
    });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Queue depth',
        left: [
          ciMetric(METRIC.queuedBuilds, { statistic: 'Maximum', label: 'builds waiting for a node' }),
          ...Object.entries(props.queues).map(([name, queue]) =>
            queue.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum', label: name }),
          ),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Builds by result',
        left: [
          new cloudwatch.MathExpression({
            expression: `SEARCH('{${METRICS_NAMESPACE},Result} MetricName="${METRIC.buildsFinished}"', 'Sum', 300)`,
            label: '',
            period,
          }),
        ],
        stacked: true,
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Nodes',
        left: [
          ciMetric(METRIC.runningNodes, { statistic: 'Maximum', label: 'running' }),
          ciMetric(METRIC.launchFailures, { label: 'launch failures' }),
        ],
        leftAnnotations: [{ value: props.maxConcurrentNodes, label: 'limits.maxConcurrentNodes' }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Time to vote, reviews dead-lettered',
        left: ['p50', 'p90', 'Maximum'].map((statistic) =>
          ciMetric(METRIC.timeToVote, { statistic, label: statistic }),
        ),
        right: [ciMetric(METRIC.reportsDeadLettered, { label: 'reviews dead-lettered' })],
        leftYAxis: { label: 'seconds', showUnits: false },
        rightYAxis: { label: 'reviews', showUnits: false },
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Spend proxy: node hours per label',
        left: props.nodeLabels.map(
          (label, i) =>
            new cloudwatch.MathExpression({
              expression: `seconds${i} / 3600`,
              usingMetrics: {
                [`seconds${i}`]: ciMetric(METRIC.nodeSeconds, {
                  dimensions: { Label: label },
                  period: Duration.hours(1),
                }),
              },
              label,
              period: Duration.hours(1),
            }),
        ),
        stacked: true,
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Handler errors',
        left: Object.entries(props.functions).map(([name, fn]) =>
          fn.metricErrors({ period, statistic: 'Sum', label: name }),
        ),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Handler duration p90',
        left: Object.entries(props.functions).map(([name, fn]) =>
          fn.metricDuration({ period, statistic: 'p90', label: name }),
        ),
        width: 12,
      }),
    );
  }
}
