import { CfnOutput, Duration, Fn, RemovalPolicy, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import type * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Config } from '../lambda/core/config';
import { CiAlarms } from './ci-alarms';
import { CiDashboard } from './ci-dashboard';
import { TABLE_KEYS } from './build-table';
import { ControlPlaneFunction, type HandlerName } from './control-plane-function';
import { FLEET_WILDCARD_REASONS, FleetAccess } from './fleet-access';
import type { FleetStack } from './fleet-stack';
import { acknowledgeWildcards, nagFinding } from './wildcard-acknowledgements';
import { WorkQueue } from './work-queue';

/** The reporter must keep retrying a review POST for at least this long (Gerrit outages). */
export const REPORT_RETRY_WINDOW = Duration.minutes(30);
/**
 * The reporter also publishes post-merge appliance images: it streams and sha256-hashes a
 * 340-450 MiB qcow2 from S3 and copies it twice, so it gets minutes, not seconds, and the memory
 * (1769 MB = one full vCPU) that buys Lambda's network throughput.
 */
export const REPORTER_TIMEOUT = Duration.minutes(15);
export const REPORTER_MEMORY_MB = 1769;
/**
 * Default visibility of a report message, at least the reporter's timeout (SQS event sources
 * require it: a message must not reappear while its invocation may still run); the reporter
 * shortens or lengthens it per retry.
 */
export const REPORT_VISIBILITY = REPORTER_TIMEOUT;
/** 20 receives: the reporter's 14 attempts, with room for early duplicates; 300 minutes if it never changes visibility. */
export const REPORT_MAX_RECEIVES = 20;
/**
 * A schedule message is retried (it reappears after its visibility) while Gerrit cannot be asked
 * for the change; dead-lettering it strands the buildset in `pending` with no report, so the
 * retries must outlast a multi-hour Gerrit outage.
 */
export const SCHEDULE_RETRY_WINDOW = Duration.hours(4);
/** Six times the scheduler's timeout, as Lambda recommends for SQS sources. */
export const SCHEDULE_VISIBILITY = Duration.minutes(12);
/** 25 receives x 12 minutes = 5 hours of retries before the dead-letter queue. */
export const SCHEDULE_MAX_RECEIVES = 25;
/** Reserved concurrency of ec2-events (a handful of short DynamoDB lookups per event). */
export const EC2_EVENTS_CONCURRENCY = 5;
/**
 * The instance states ec2-events acts on (a node that goes away before claiming its build:
 * lambda/handlers/ec2-events.ts); the rule matches only these, so `pending` and `running` of every
 * instance in the account never invoke it.
 */
export const NODE_GONE_STATES = ['shutting-down', 'terminated', 'stopping', 'stopped'] as const;
/** Key prefix of everything nodes upload (docs/design.md, Log layout). */
export const LOGS_PREFIX = 'logs/*';

export interface ControlPlaneStackProps extends StackProps {
  readonly config: Config;
  readonly table: dynamodb.ITable;
  /** Physical bucket names (artifactBucketNames): policies name them without cross-stack exports. */
  readonly imagesBucketName: string;
  readonly logsBucketName: string;
  readonly distribution: cloudfront.IDistribution;
  /** `https://<distribution domain>` without a trailing slash. */
  readonly publicBaseUrl: string;
  readonly fleet: FleetStack;
}

/**
 * The stateless control plane: the six handlers of docs/design.md, their queues and schedules,
 * the two public endpoints (Gerrit webhook, node callbacks), secrets, alarms and dashboard.
 */
export class ControlPlaneStack extends Stack {
  readonly functions: Readonly<Record<HandlerName, lambda.IFunction>>;
  readonly scheduleQueue: WorkQueue;
  readonly reportQueue: WorkQueue;
  readonly asyncFailures: sqs.Queue;
  readonly webhookTokenSecret: secretsmanager.Secret;
  readonly gerritPasswordSecret: secretsmanager.Secret;
  readonly alarms: CiAlarms;

  constructor(scope: Construct, id: string, props: ControlPlaneStackProps) {
    super(scope, id, props);
    const { config, fleet } = props;
    const imagesBucket = s3.Bucket.fromBucketName(this, 'ImagesBucket', props.imagesBucketName);
    const logsBucket = s3.Bucket.fromBucketName(this, 'LogsBucket', props.logsBucketName);

    this.scheduleQueue = new WorkQueue(this, 'Schedule', {
      visibilityTimeout: SCHEDULE_VISIBILITY,
      maxReceiveCount: SCHEDULE_MAX_RECEIVES,
    });
    this.reportQueue = new WorkQueue(this, 'Report', {
      visibilityTimeout: REPORT_VISIBILITY,
      maxReceiveCount: REPORT_MAX_RECEIVES,
    });
    this.asyncFailures = new sqs.Queue(this, 'AsyncFailures', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.asyncFailures).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter destination of the Lambda functions and EventBridge targets; it has an alarm.',
    });

    this.webhookTokenSecret = new secretsmanager.Secret(this, 'WebhookToken', {
      description: 'akanda-ci: the token in the Gerrit webhook URL path (/webhook/<token>)',
      generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.gerritPasswordSecret = new secretsmanager.Secret(this, 'GerritPassword', {
      description: `akanda-ci: HTTP password of the Gerrit account ${config.gerrit.username} (set it after the first deploy)`,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const secret of [this.webhookTokenSecret, this.gerritPasswordSecret]) {
      Validations.of(secret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'Gerrit issues the HTTP password and holds the webhook URL: neither can be rotated by a Lambda without changing Gerrit; rotate by hand (docs/infrastructure.md).',
      });
    }

    const common: Record<string, string> = {
      TABLE_NAME: props.table.tableName,
      SCHEDULE_QUEUE_URL: this.scheduleQueue.queue.queueUrl,
      REPORT_QUEUE_URL: this.reportQueue.queue.queueUrl,
      LOGS_BUCKET: props.logsBucketName,
      IMAGES_BUCKET: props.imagesBucketName,
      PUBLIC_BASE_URL: props.publicBaseUrl,
      GERRIT_PASSWORD_SECRET_ARN: this.gerritPasswordSecret.secretArn,
      WEBHOOK_TOKEN_SECRET_ARN: this.webhookTokenSecret.secretArn,
      LAUNCH_TEMPLATES: fleet.launchTemplatesEnvironment(),
      SUBNET_IDS: Fn.join(
        ',',
        fleet.vpc.publicSubnets.map((subnet) => subnet.subnetId),
      ),
      DISTRIBUTION_ID: props.distribution.distributionId,
    };
    const make = (
      handlerName: HandlerName,
      options: { timeout: Duration; reserved?: number; memorySize?: number; nodeApiUrl?: string },
    ) =>
      new ControlPlaneFunction(this, pascal(handlerName), {
        handlerName,
        config,
        environment: options.nodeApiUrl ? { ...common, NODE_API_URL: options.nodeApiUrl } : common,
        deadLetterQueue: this.asyncFailures,
        timeout: options.timeout,
        memorySize: options.memorySize,
        reservedConcurrentExecutions: options.reserved,
      }).function;

    // The node API comes first: every other handler needs its URL (the scheduler tags nodes with it).
    const nodeApi = make('node-api', {
      timeout: Duration.seconds(30),
      reserved: Math.min(100, Math.max(10, config.limits.maxConcurrentNodes * 2)),
    });
    const nodeApiUrl = nodeApi.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    // `https://<id>.lambda-url.<region>.on.aws` without the trailing slash the attribute carries.
    const nodeApiBase = Fn.join('', ['https://', Fn.select(2, Fn.split('/', nodeApiUrl.url))]);

    const ingest = make('ingest', { timeout: Duration.seconds(30), reserved: 10, nodeApiUrl: nodeApiBase });
    const ingestUrl = ingest.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    const scheduler = make('scheduler', { timeout: Duration.minutes(2), reserved: 2, nodeApiUrl: nodeApiBase });
    // Its state-change rule sees every instance in the account, not only CI nodes (EventBridge
    // cannot match on tags): the cap keeps another workload's churn from running up invocations;
    // throttled events wait in Lambda's asynchronous queue and are retried.
    const ec2Events = make('ec2-events', {
      timeout: Duration.minutes(1),
      reserved: EC2_EVENTS_CONCURRENCY,
      nodeApiUrl: nodeApiBase,
    });
    const reaper = make('reaper', { timeout: Duration.minutes(2), reserved: 1, nodeApiUrl: nodeApiBase });
    const reporter = make('reporter', {
      timeout: REPORTER_TIMEOUT,
      memorySize: REPORTER_MEMORY_MB,
      reserved: 2,
      nodeApiUrl: nodeApiBase,
    });
    this.functions = {
      ingest,
      scheduler,
      'node-api': nodeApi,
      'ec2-events': ec2Events,
      reaper,
      reporter,
    };

    // Data and messages.
    const tableAccess = new iam.PolicyStatement({
      sid: 'BuildTable',
      actions: [
        'dynamodb:GetItem',
        'dynamodb:BatchGetItem',
        'dynamodb:Query',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        'dynamodb:BatchWriteItem',
        'dynamodb:ConditionCheckItem',
      ],
      resources: [props.table.tableArn, `${props.table.tableArn}/index/${TABLE_KEYS.stateIndex}`],
    });
    for (const fn of Object.values(this.functions)) fn.addToRolePolicy(tableAccess);
    this.webhookTokenSecret.grantRead(ingest);
    for (const fn of [scheduler, reporter]) this.gerritPasswordSecret.grantRead(fn);
    for (const fn of [ingest, scheduler, nodeApi, ec2Events, reaper]) this.scheduleQueue.queue.grantSendMessages(fn);
    for (const fn of [scheduler, nodeApi, ec2Events, reaper]) this.reportQueue.queue.grantSendMessages(fn);
    scheduler.addEventSource(
      new sources.SqsEventSource(this.scheduleQueue.queue, {
        batchSize: 10,
        maxBatchingWindow: Duration.seconds(1),
        maxConcurrency: 2,
        reportBatchItemFailures: true,
      }),
    );
    reporter.addEventSource(
      new sources.SqsEventSource(this.reportQueue.queue, {
        batchSize: 5,
        maxConcurrency: 2,
        reportBatchItemFailures: true,
      }),
    );

    // Logs: nodes upload through presigned POSTs signed by the node API (its only S3 right: the
    // Function URL is public, so it gets nothing it does not use). Promoting a published image
    // (read the build's artifacts, copy them to the images bucket, invalidate) is the reporter's alone.
    nodeApi.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'SignLogUploads',
        actions: ['s3:PutObject'],
        resources: [logsBucket.arnForObjects(LOGS_PREFIX)],
      }),
    );
    const latest = config.appliance.latestImageName;
    reporter.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadBuildArtifacts',
        actions: ['s3:GetObject'],
        resources: [logsBucket.arnForObjects(LOGS_PREFIX)],
      }),
    );
    reporter.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'PublishImages',
        actions: ['s3:PutObject'],
        resources: [
          imagesBucket.arnForObjects('images/*'),
          imagesBucket.arnForObjects('latest.json'),
          imagesBucket.arnForObjects(latest),
          imagesBucket.arnForObjects(`${latest}.sha256`),
        ],
      }),
    );
    // A rolling image is replaced only by a newer merge, so its latest.json is read first; listing
    // makes a missing one a 404 rather than a 403 (the keys are public through the CDN anyway).
    reporter.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadRollingImageRecords',
        actions: ['s3:GetObject'],
        resources: [imagesBucket.arnForObjects('images/*/latest.json'), imagesBucket.arnForObjects('latest.json')],
      }),
    );
    reporter.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ListImages',
        actions: ['s3:ListBucket'],
        resources: [imagesBucket.bucketArn],
      }),
    );
    reporter.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'InvalidateLatestImage',
        actions: ['cloudfront:CreateInvalidation'],
        resources: [
          this.formatArn({
            service: 'cloudfront',
            region: '',
            resource: 'distribution',
            resourceName: props.distribution.distributionId,
          }),
        ],
      }),
    );

    // EC2: only the scheduler launches; whoever applies a `terminate` command may terminate.
    const fleetAccess = new FleetAccess(this, 'FleetAccess', {
      launchTemplates: Object.values(fleet.labels).flatMap(({ template, metalTemplate }) =>
        metalTemplate ? [template, metalTemplate] : [template],
      ),
      subnets: fleet.vpc.publicSubnets,
      securityGroup: fleet.securityGroup,
      nodeRole: fleet.nodeRole,
    });
    fleetAccess.grantLaunch(scheduler);
    for (const fn of [scheduler, nodeApi, ec2Events, reaper]) fleetAccess.grantTerminate(fn);
    for (const fn of [scheduler, reaper]) fleetAccess.grantDescribe(fn);

    // EC2 events and the reaper's clock.
    const eventTarget = (fn: lambda.IFunction) =>
      new targets.LambdaFunction(fn, {
        deadLetterQueue: this.asyncFailures,
        retryAttempts: 4,
        maxEventAge: Duration.hours(1),
      });
    new events.Rule(this, 'SpotInterruptions', {
      description: 'akanda-ci: spot interruption warnings (2 minutes notice)',
      eventPattern: { source: ['aws.ec2'], detailType: ['EC2 Spot Instance Interruption Warning'] },
      targets: [eventTarget(ec2Events)],
    });
    new events.Rule(this, 'InstanceStateChanges', {
      description: 'akanda-ci: instance state changes (nodes that stop or vanish)',
      eventPattern: {
        source: ['aws.ec2'],
        detailType: ['EC2 Instance State-change Notification'],
        detail: { state: [...NODE_GONE_STATES] },
      },
      targets: [eventTarget(ec2Events)],
    });
    new events.Rule(this, 'ReaperSchedule', {
      description: 'akanda-ci: reaper (overdue builds, orphaned nodes)',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [eventTarget(reaper)],
    });

    this.alarms = new CiAlarms(this, 'Alarms', {
      deadLetterQueues: {
        Schedule: this.scheduleQueue.deadLetterQueue,
        Report: this.reportQueue.deadLetterQueue,
        AsyncFailures: this.asyncFailures,
      },
      reportQueue: this.reportQueue.queue,
      reporter,
      maxConcurrentNodes: config.limits.maxConcurrentNodes,
      alarmEmail: config.deploy.alarmEmail,
    });
    new CiDashboard(this, 'Dashboard', {
      dashboardName: `${config.deploy.stackPrefix}-ci`,
      queues: {
        schedule: this.scheduleQueue.queue,
        report: this.reportQueue.queue,
        'schedule DLQ': this.scheduleQueue.deadLetterQueue,
        'report DLQ': this.reportQueue.deadLetterQueue,
        'async DLQ': this.asyncFailures,
      },
      functions: this.functions,
      nodeLabels: Object.keys(config.nodes),
      maxConcurrentNodes: config.limits.maxConcurrentNodes,
    });

    acknowledgeWildcards(this, [
      ...FLEET_WILDCARD_REASONS,
      {
        finding: nagFinding('Resource::arn:{partition}:s3:::{name}-logs-{account}-{region}/logs/*'),
        reason:
          'Log keys are per build (logs/<NN>/<change>/...); the node API signs uploads only under one build prefix, and the reporter reads published artifacts from there.',
      },
      {
        finding: nagFinding('Resource::arn:{partition}:s3:::{name}-images-{account}-{region}/images/*/latest.json'),
        reason:
          "The reporter reads each branch's latest.json (images/<branch dir>/latest.json) before replacing that branch's rolling image.",
      },
      {
        finding: nagFinding('Resource::arn:{partition}:s3:::{name}-images-{account}-{region}/images/*'),
        reason:
          'Each published image gets a new images/<version>/ key; only that prefix and the latest-image keys are writable.',
      },
    ]);

    new CfnOutput(this, 'WebhookUrlPrefix', {
      description:
        'Gerrit webhook URL without its token: append the WebhookTokenSecret value (see docs/infrastructure.md)',
      value: Fn.join('', [ingestUrl.url, 'webhook/']),
    });
    new CfnOutput(this, 'WebhookTokenSecret', { value: this.webhookTokenSecret.secretArn });
    new CfnOutput(this, 'GerritPasswordSecret', { value: this.gerritPasswordSecret.secretArn });
    new CfnOutput(this, 'NodeApiUrl', { value: nodeApiBase });
    new CfnOutput(this, 'AlarmTopic', { value: this.alarms.topic.topicArn });
  }
}

function pascal(name: string): string {
  return name.replace(/(^|-)([a-z0-9])/g, (_, _dash: string, letter: string) => letter.toUpperCase());
}
