import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ciMetric, METRIC } from './ci-metrics';

export interface CiAlarmsProps {
  /** Every dead-letter queue; one message in any of them means work was lost or stuck. */
  readonly deadLetterQueues: Readonly<Record<string, sqs.IQueue>>;
  /**
   * The report queue: the reporter retries a failed review POST by hiding the message again
   * (not by throwing), so a report stuck in retries shows as the age of the oldest message.
   */
  readonly reportQueue: sqs.IQueue;
  /** Oldest report before the reporter counts as failing. @default 15 minutes */
  readonly reportAgeThreshold?: Duration;
  readonly reporter: lambda.IFunction;
  /** config limits.maxConcurrentNodes: more running nodes than this means the guard failed. */
  readonly maxConcurrentNodes: number;
  /** config deploy.alarmEmail. @default no subscription (subscribe to the topic yourself) */
  readonly alarmEmail?: string;
  /** Launch failures (no capacity anywhere) within 15 minutes that raise the alarm. @default 3 */
  readonly launchFailureThreshold?: number;
}

/** The alarms an operator must hear about, all sent to one SNS topic. */
export class CiAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: CiAlarmsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'akanda-ci alarms', enforceSSL: true });
    Validations.of(this.topic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'Alarm notifications carry only alarm names and states; CloudWatch cannot publish to a topic under the AWS-managed SNS key, and a customer key would cost money at idle.',
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const action = new actions.SnsAction(this.topic);
    const add = (alarmId: string, alarmProps: cloudwatch.AlarmProps) => {
      const alarm = new cloudwatch.Alarm(this, alarmId, alarmProps);
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
      this.alarms.push(alarm);
    };

    for (const [name, queue] of Object.entries(props.deadLetterQueues)) {
      add(`${name}DeadLetters`, {
        alarmDescription: `akanda-ci: messages in the ${name} dead-letter queue (inspect, fix, redrive)`,
        metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    const reportAge = props.reportAgeThreshold ?? Duration.minutes(15);
    add('ReporterFailures', {
      alarmDescription: `akanda-ci: a review has been waiting ${reportAge.toHumanString()} (Gerrit down, password wrong or expired?)`,
      metric: props.reportQueue.metricApproximateAgeOfOldestMessage({
        period: Duration.minutes(5),
        statistic: 'Maximum',
      }),
      threshold: reportAge.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    add('ReporterErrors', {
      alarmDescription: 'akanda-ci: the reporter handler itself keeps failing (a bug or a missing permission)',
      metric: props.reporter.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    add('ReportsDeadLettered', {
      alarmDescription:
        'akanda-ci: a review was dead-lettered and its vote will never be posted (Gerrit password wrong or expired, account lacks the Verified label, or Gerrit down for over 30 minutes)',
      metric: ciMetric(METRIC.reportsDeadLettered, { period: Duration.minutes(5) }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    add('LaunchFailures', {
      alarmDescription: 'akanda-ci: nodes cannot be launched (no spot or on-demand capacity, quota, or IAM)',
      metric: ciMetric(METRIC.launchFailures, { period: Duration.minutes(15) }),
      threshold: props.launchFailureThreshold ?? 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    add('NodesAboveLimit', {
      alarmDescription: `akanda-ci: more than limits.maxConcurrentNodes (${props.maxConcurrentNodes}) nodes are running`,
      metric: ciMetric(METRIC.runningNodes, { statistic: 'Maximum' }),
      threshold: props.maxConcurrentNodes,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}
