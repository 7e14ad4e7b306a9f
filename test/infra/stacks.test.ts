/**
 * The security properties of issue 3, asserted on the synthesized templates of the default config
 * (bundled handlers and cdk-nag, exactly as `cdk synth` runs).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { REVIEW_MAX_ATTEMPTS, reviewRetryDelaySeconds } from '../../lambda/adapters/gerrit-client';
import {
  EC2_EVENTS_CONCURRENCY,
  NODE_GONE_STATES,
  REPORT_MAX_RECEIVES,
  REPORT_RETRY_WINDOW,
  REPORT_VISIBILITY,
  REPORTER_MEMORY_MB,
  REPORTER_TIMEOUT,
  SCHEDULE_MAX_RECEIVES,
  SCHEDULE_RETRY_WINDOW,
  SCHEDULE_VISIBILITY,
} from '../../lib/control-plane-stack';
import { dashboardWidgets, defaultConfigText, removeTempDirs, synthesize, type Synthesized } from './synth';

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown>; DeletionPolicy?: string }>;

function resourcesOf(template: Template, type: string): Resources {
  return template.findResources(type) as Resources;
}

let synth: Synthesized;

beforeAll(() => {
  synth = synthesize(defaultConfigText(), { bundle: true });
});

afterAll(removeTempDirs);

describe('offline synth', () => {
  test('needs no lookup (no missing context), so no credentials', () => {
    expect(synth.assembly.manifest.missing ?? []).toEqual([]);
  });

  test('the AMI comes from the public SSM parameter at deploy time', () => {
    synth.fleet.hasParameter('*', {
      Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>',
      Default: '/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id',
    });
  });
});

describe('artifacts stack', () => {
  test('every bucket is private, encrypted, TLS-only and retained', () => {
    const buckets = resourcesOf(synth.artifacts, 'AWS::S3::Bucket');
    expect(Object.keys(buckets)).toHaveLength(3);
    for (const bucket of Object.values(buckets)) {
      expect(bucket.DeletionPolicy).toBe('Retain');
      expect(bucket.Properties?.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(bucket.Properties?.BucketEncryption).toEqual({
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      });
    }
    const policies = Object.values(resourcesOf(synth.artifacts, 'AWS::S3::BucketPolicy'));
    expect(policies).toHaveLength(3);
    for (const policy of policies) {
      const statements = (policy.Properties?.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
      expect(statements).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: 's3:*',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
      // Nothing is granted to everyone: reads come from CloudFront (OAC) only.
      for (const statement of statements.filter((s) => s.Effect === 'Allow')) {
        expect(statement.Principal).not.toEqual({ AWS: '*' });
        expect(statement.Principal).not.toBe('*');
      }
    }
  });

  test('the images bucket is versioned; the logs bucket expires logs after the configured 45 days', () => {
    synth.artifacts.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketName: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith(['akandaci-images-'])] }),
    });
    synth.artifacts.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith(['akandaci-logs-'])] }),
      LifecycleConfiguration: {
        Rules: Match.arrayWith([Match.objectLike({ ExpirationInDays: 45, Status: 'Enabled' })]),
      },
    });
  });

  test('CloudFront reaches both buckets through Origin Access Control, HTTPS only', () => {
    synth.artifacts.resourceCountIs('AWS::CloudFront::OriginAccessControl', 2);
    synth.artifacts.resourceCountIs('AWS::CloudFront::CloudFrontOriginAccessIdentity', 0);
    const distribution = Object.values(resourcesOf(synth.artifacts, 'AWS::CloudFront::Distribution'))[0];
    const config = distribution?.Properties?.DistributionConfig as {
      Origins: { OriginAccessControlId?: unknown; S3OriginConfig?: { OriginAccessIdentity: string } }[];
      DefaultCacheBehavior: { ViewerProtocolPolicy: string };
      CacheBehaviors: { PathPattern: string; ViewerProtocolPolicy: string }[];
    };
    expect(config.Origins).toHaveLength(2);
    for (const origin of config.Origins) {
      expect(origin.OriginAccessControlId).toBeDefined();
      expect(origin.S3OriginConfig?.OriginAccessIdentity).toBe('');
    }
    const behaviours = [config.DefaultCacheBehavior, ...config.CacheBehaviors];
    expect(behaviours.map((b) => b.ViewerProtocolPolicy)).toEqual(behaviours.map(() => 'https-only'));
    expect(config.CacheBehaviors.map((b) => b.PathPattern).sort()).toEqual([
      '/agent/*',
      '/images/*',
      '/images/*/akanda-appliance-latest.qcow2*',
      '/images/*/latest.json',
      '/logs/*',
    ]);
    for (const policy of Object.values(resourcesOf(synth.artifacts, 'AWS::S3::BucketPolicy'))) {
      const statements = (policy.Properties?.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
      for (const statement of statements.filter((s) => s.Effect === 'Allow' && s.Action === 's3:GetObject')) {
        expect(statement.Principal).toEqual({ Service: 'cloudfront.amazonaws.com' });
        expect(statement.Condition).toEqual({ StringEquals: { 'AWS:SourceArn': expect.anything() } });
      }
    }
  });

  test('the latest image path is cached for at most a minute; log directories serve index.html', () => {
    synth.artifacts.hasResourceProperties('AWS::CloudFront::CachePolicy', {
      CachePolicyConfig: Match.objectLike({ Comment: Match.stringLikeRegexp('rolling image'), MaxTTL: 60 }),
    });
    synth.artifacts.hasResourceProperties('AWS::CloudFront::Function', {
      FunctionCode: Match.stringLikeRegexp('index\\.html'),
    });
  });

  test('the table follows docs/design.md: keys, GSI byState, TTL, on-demand, PITR, retained', () => {
    synth.artifacts.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
        GlobalSecondaryIndexes: [
          {
            IndexName: 'byState',
            KeySchema: [
              { AttributeName: 'gsi1pk', KeyType: 'HASH' },
              { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      }),
    });
  });

  test('outputs the public URL of the latest image and the logs base URL', () => {
    const outputs = synth.artifacts.findOutputs('*');
    expect(JSON.stringify(outputs.LatestImageUrl?.Value)).toContain('/akanda-appliance-latest.qcow2');
    expect(JSON.stringify(outputs.LogsBaseUrl?.Value)).toContain('/logs/');
  });
});

describe('fleet stack', () => {
  test('public subnets in three AZs, no NAT gateway, no ingress anywhere', () => {
    synth.fleet.resourceCountIs('AWS::EC2::NatGateway', 0);
    synth.fleet.resourceCountIs('AWS::EC2::Subnet', 3);
    synth.fleet.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    for (const group of Object.values(resourcesOf(synth.fleet, 'AWS::EC2::SecurityGroup'))) {
      expect(group.Properties?.SecurityGroupIngress).toBeUndefined();
    }
    synth.fleet.resourceCountIs('Custom::VpcRestrictDefaultSG', 1);
  });

  test('one launch template per node label plus one for metal fallback; nested virtualization only on devstack', () => {
    const templates = Object.values(resourcesOf(synth.fleet, 'AWS::EC2::LaunchTemplate')).map(
      (t) => t.Properties?.LaunchTemplateData as Record<string, unknown>,
    );
    expect(templates).toHaveLength(3);
    const nested = templates.filter((t) => t.CpuOptions !== undefined);
    expect(nested).toEqual([expect.objectContaining({ CpuOptions: { NestedVirtualization: 'enabled' } })]);
    expect(nested[0]?.BlockDeviceMappings).toEqual([
      {
        DeviceName: '/dev/sda1',
        Ebs: { DeleteOnTermination: true, Encrypted: true, VolumeSize: 120, VolumeType: 'gp3' },
      },
    ]);
  });

  test('every node: IMDSv2 only, hop limit 1, metadata tags, encrypted gp3 root, terminate on shutdown, no identity', () => {
    const templates = Object.values(resourcesOf(synth.fleet, 'AWS::EC2::LaunchTemplate'));
    for (const template of templates) {
      const data = template.Properties?.LaunchTemplateData as Record<string, unknown>;
      expect(data.MetadataOptions).toEqual({
        HttpEndpoint: 'enabled',
        HttpPutResponseHopLimit: 1,
        HttpTokens: 'required',
        InstanceMetadataTags: 'enabled',
      });
      expect(data.InstanceInitiatedShutdownBehavior).toBe('terminate');
      expect(data.IamInstanceProfile).toBeUndefined();
      expect(data.KeyName).toBeUndefined();
      const [root] = data.BlockDeviceMappings as { Ebs: { Encrypted: boolean; VolumeType: string } }[];
      expect(root?.Ebs).toMatchObject({ Encrypted: true, VolumeType: 'gp3' });
      expect(data.TagSpecifications).toEqual(
        expect.arrayContaining(
          ['instance', 'volume'].map((type) =>
            expect.objectContaining({
              ResourceType: type,
              Tags: expect.arrayContaining([{ Key: 'akanda-ci:managed', Value: 'true' }]),
            }),
          ),
        ),
      );
    }
    synth.fleet.resourceCountIs('AWS::IAM::InstanceProfile', 0);
    // The node image pipeline is opt-in (context nodeImagePipeline).
    synth.fleet.resourceCountIs('AWS::ImageBuilder::ImagePipeline', 0);
  });

  test('user data downloads the published agent through CloudFront and checks the sha256 computed at synth', () => {
    const archive = readFileSync(synth.agentBundle.archivePath);
    const sha256 = createHash('sha256').update(archive).digest('hex');
    expect(sha256).toBe(synth.agentBundle.sha256);
    const userData = JSON.stringify(
      Object.values(resourcesOf(synth.fleet, 'AWS::EC2::LaunchTemplate'))[0]?.Properties?.LaunchTemplateData,
    );
    expect(userData).toContain(`${sha256}  /opt/akanda-ci/node-agent.tar.gz' | sha256sum --check --strict`);
    expect(userData).toContain('/agent/node-agent.tar.gz');
    expect(userData).toContain('node /opt/akanda-ci/node-agent.js --ec2');
    // limits.buildTimeLimit 4h + timeoutGrace 10m + 30m margin.
    expect(userData).toContain('shutdown -h +280 ');
    synth.fleet.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketKeyPrefix: 'agent/',
      DistributionPaths: ['/agent/*'],
      Prune: true,
    });
  });
});

describe('control plane stack', () => {
  const handlers = ['ingest', 'scheduler', 'node-api', 'ec2-events', 'reaper', 'reporter'];

  function functions(): Resources {
    return resourcesOf(synth.controlPlane, 'AWS::Lambda::Function');
  }

  function handlerFunction(name: string): { id: string; properties: Record<string, unknown> } {
    const entry = Object.entries(functions()).find(([, fn]) => fn.Properties?.Description === `akanda-ci ${name}`);
    if (!entry) throw new Error(`no function for ${name}`);
    return { id: entry[0], properties: entry[1].Properties ?? {} };
  }

  test('six handlers: arm64, Node.js 22 or newer, JSON logs with retention, a dead-letter queue each', () => {
    expect(Object.keys(functions())).toHaveLength(6);
    for (const name of handlers) {
      const { properties } = handlerFunction(name);
      expect(properties.Architectures).toEqual(['arm64']);
      expect(properties.Runtime).toMatch(/^nodejs(2[2-9]|[3-9]\d)\.x$/);
      expect(properties.LoggingConfig).toMatchObject({ LogFormat: 'JSON' });
      expect(properties.DeadLetterConfig).toEqual({ TargetArn: expect.anything() });
    }
    for (const group of Object.values(resourcesOf(synth.controlPlane, 'AWS::Logs::LogGroup'))) {
      expect(group.Properties?.RetentionInDays).toBe(30);
    }
    synth.controlPlane.resourceCountIs('AWS::Logs::LogGroup', 6);
  });

  test('handlers are bundled by esbuild: minified, SDK inside, config inlined', () => {
    for (const name of handlers) {
      const { properties } = handlerFunction(name);
      const assetHash = (properties.Code as { S3Key: string }).S3Key.replace(/\.zip$/, '');
      const bundle = join(synth.assembly.directory, `asset.${assetHash}`, 'index.js');
      expect(existsSync(bundle)).toBe(true);
      const code = readFileSync(bundle, 'utf8');
      // Minified: long lines (readable code averages well under 100 characters a line).
      expect(code.length / code.split('\n').length).toBeGreaterThan(300);
      // The AWS SDK is inside the bundle, not taken from the runtime (the CRT signer is an optional
      // dependency the SDK loads in a try block; it is not needed).
      const sdkRequires = code.match(/require\("@aws-sdk\/[^"]+"\)/g) ?? [];
      expect(sdkRequires.filter((r) => !r.includes('signature-v4-crt'))).toEqual([]);
      expect(code).toContain('DynamoDBClient');
      // The config is inlined (docs/design.md, Config), not read from the environment.
      expect(code).not.toContain('process.env.AKANDA_CI_CONFIG_JSON');
      expect(code).toContain('review.opendev.org');
      expect(code).toContain('dsvm-tempest-akanda');
    }
  });

  test('every handler gets the environment of docs/design.md', () => {
    const names = [
      'TABLE_NAME',
      'SCHEDULE_QUEUE_URL',
      'REPORT_QUEUE_URL',
      'LOGS_BUCKET',
      'IMAGES_BUCKET',
      'PUBLIC_BASE_URL',
      'GERRIT_PASSWORD_SECRET_ARN',
      'WEBHOOK_TOKEN_SECRET_ARN',
      'LAUNCH_TEMPLATES',
      'SUBNET_IDS',
      'DISTRIBUTION_ID',
    ];
    for (const name of handlers) {
      const variables = (handlerFunction(name).properties.Environment as { Variables: Record<string, unknown> })
        .Variables;
      const expected = name === 'node-api' ? names : [...names, 'NODE_API_URL'];
      expect(Object.keys(variables).sort()).toEqual([...expected].sort());
    }
    const launchTemplates = JSON.stringify(
      (handlerFunction('scheduler').properties.Environment as { Variables: Record<string, unknown> }).Variables
        .LAUNCH_TEMPLATES,
    );
    for (const key of [
      'launchTemplateId',
      'metalLaunchTemplateId',
      'metalFallbackTypes',
      'onDemandFallback',
      'c8i.2xlarge',
    ]) {
      expect(launchTemplates).toContain(key);
    }
  });

  test('the webhook and node endpoints are Function URLs (token checked by the handler, not IAM)', () => {
    synth.controlPlane.resourceCountIs('AWS::Lambda::Url', 2);
    for (const name of ['ingest', 'node-api']) {
      synth.controlPlane.hasResourceProperties('AWS::Lambda::Url', {
        AuthType: 'NONE',
        TargetFunctionArn: { 'Fn::GetAtt': [handlerFunction(name).id, 'Arn'] },
      });
    }
  });

  test('queues have dead-letter queues, TLS-only policies and encryption', () => {
    const queues = resourcesOf(synth.controlPlane, 'AWS::SQS::Queue');
    const withRedrive = Object.values(queues).filter((q) => q.Properties?.RedrivePolicy);
    expect(withRedrive).toHaveLength(2);
    for (const queue of Object.values(queues)) expect(queue.Properties?.SqsManagedSseEnabled).toBe(true);
    for (const policy of Object.values(resourcesOf(synth.controlPlane, 'AWS::SQS::QueuePolicy'))) {
      expect(JSON.stringify(policy.Properties?.PolicyDocument)).toContain('"aws:SecureTransport":"false"');
    }
    synth.controlPlane.resourceCountIs('AWS::SQS::QueuePolicy', 5);
  });

  test('the report queue keeps retrying for at least 30 minutes before its dead-letter queue', () => {
    expect(REPORT_MAX_RECEIVES * REPORT_VISIBILITY.toSeconds()).toBeGreaterThanOrEqual(REPORT_RETRY_WINDOW.toSeconds());
    // The reporter's own schedule (one receive per attempt) must fit in the receives the queue allows,
    // and its delays must span the window before it gives up.
    expect(REVIEW_MAX_ATTEMPTS).toBeLessThanOrEqual(REPORT_MAX_RECEIVES);
    let waited = 0;
    for (let attempt = 1; attempt < REVIEW_MAX_ATTEMPTS; attempt++) waited += reviewRetryDelaySeconds(attempt);
    expect(waited).toBeGreaterThanOrEqual(REPORT_RETRY_WINDOW.toSeconds());
    synth.controlPlane.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: REPORT_VISIBILITY.toSeconds(),
      RedrivePolicy: Match.objectLike({ maxReceiveCount: REPORT_MAX_RECEIVES }),
    });
    synth.controlPlane.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: handlerFunction('reporter').id },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  test('the schedule queue keeps retrying through a four-hour Gerrit outage before its dead-letter queue', () => {
    expect(SCHEDULE_RETRY_WINDOW.toSeconds()).toBeGreaterThanOrEqual(4 * 3600);
    expect(SCHEDULE_MAX_RECEIVES * SCHEDULE_VISIBILITY.toSeconds()).toBeGreaterThanOrEqual(
      SCHEDULE_RETRY_WINDOW.toSeconds(),
    );
    const scheduleMapping = Object.values(resourcesOf(synth.controlPlane, 'AWS::Lambda::EventSourceMapping')).find(
      (mapping) =>
        (mapping.Properties?.FunctionName as { Ref?: string } | undefined)?.Ref === handlerFunction('scheduler').id,
    );
    const queueId = (scheduleMapping?.Properties?.EventSourceArn as { 'Fn::GetAtt': [string, string] })[
      'Fn::GetAtt'
    ][0];
    const queue = resourcesOf(synth.controlPlane, 'AWS::SQS::Queue')[queueId];
    const redrive = queue?.Properties?.RedrivePolicy as { maxReceiveCount: number };
    const visibility = queue?.Properties?.VisibilityTimeout as number;
    expect(redrive.maxReceiveCount * visibility).toBeGreaterThanOrEqual(4 * 3600);
    expect(redrive.maxReceiveCount).toBe(SCHEDULE_MAX_RECEIVES);
    expect(visibility).toBe(SCHEDULE_VISIBILITY.toSeconds());
    // The messages outlive their retries.
    expect(queue?.Properties?.MessageRetentionPeriod as number).toBeGreaterThan(redrive.maxReceiveCount * visibility);
  });

  test('the reporter has the time and memory to hash and copy an appliance image, within its queue visibility', () => {
    const reporter = handlerFunction('reporter').properties;
    // Streaming and hashing 340-450 MiB plus two copies: minutes, and a full vCPU's network throughput.
    expect(reporter.Timeout).toBe(REPORTER_TIMEOUT.toSeconds());
    expect(reporter.Timeout).toBeGreaterThanOrEqual(10 * 60);
    expect(reporter.MemorySize).toBe(REPORTER_MEMORY_MB);
    expect(reporter.MemorySize).toBeGreaterThanOrEqual(1024);
    // A message must not reappear while the invocation that holds it may still run.
    const reportQueue = Object.values(resourcesOf(synth.controlPlane, 'AWS::SQS::Queue')).find(
      (queue) =>
        (queue.Properties?.RedrivePolicy as { maxReceiveCount?: number } | undefined)?.maxReceiveCount ===
        REPORT_MAX_RECEIVES,
    );
    expect(reportQueue?.Properties?.VisibilityTimeout).toBeGreaterThanOrEqual(reporter.Timeout as number);
    // Every queue a handler consumes: visibility at least the consumer's timeout.
    const mappings = Object.values(resourcesOf(synth.controlPlane, 'AWS::Lambda::EventSourceMapping'));
    expect(mappings).toHaveLength(2);
    const queues = resourcesOf(synth.controlPlane, 'AWS::SQS::Queue');
    const functionsById = functions();
    for (const mapping of mappings) {
      const functionId = (mapping.Properties?.FunctionName as { Ref: string }).Ref;
      const queueId = (mapping.Properties?.EventSourceArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      expect(queues[queueId]?.Properties?.VisibilityTimeout).toBeGreaterThanOrEqual(
        functionsById[functionId]?.Properties?.Timeout as number,
      );
    }
  });

  test('every dead-letter queue has an alarm to the SNS topic', () => {
    const alarms = Object.values(resourcesOf(synth.controlPlane, 'AWS::CloudWatch::Alarm'));
    const dlqAlarms = alarms.filter((a) => a.Properties?.MetricName === 'ApproximateNumberOfMessagesVisible');
    expect(dlqAlarms).toHaveLength(3);
    for (const alarm of alarms)
      expect(alarm.Properties?.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^AlarmsTopic/) }]);
    expect(alarms.map((a) => a.Properties?.MetricName)).toEqual(
      expect.arrayContaining([
        'Errors',
        'LaunchFailures',
        'RunningNodes',
        'ApproximateAgeOfOldestMessage',
        'ReportsDeadLettered',
      ]),
    );
    // One dead-lettered review (a 401/403 from Gerrit, or retries exhausted) raises its own alarm at once.
    synth.controlPlane.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AkandaCi',
      MetricName: 'ReportsDeadLettered',
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^AlarmsTopic') }],
    });
    // A review retried for 15 minutes (Gerrit failing) raises the reporter alarm.
    synth.controlPlane.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateAgeOfOldestMessage',
      Threshold: 900,
      Dimensions: [
        { Name: 'QueueName', Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ReportQueue'), 'QueueName'] } },
      ],
    });
    synth.controlPlane.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  test('the dashboard has queue depth, builds by result, nodes, time to vote and the spend proxy', () => {
    const widgets = dashboardWidgets(synth.controlPlane);
    expect(widgets.map((w) => w.properties.title)).toEqual([
      'Queue depth',
      'Builds by result',
      'Nodes',
      'Time to vote, reviews dead-lettered',
      'Spend proxy: node hours per label',
      'Handler errors',
      'Handler duration p90',
    ]);
    const results = widgets[1]?.properties.metrics[0]?.[0] as { expression: string };
    expect(results.expression).toBe(`SEARCH('{AkandaCi,Result} MetricName="BuildsFinished"', 'Sum', 300)`);
    const depth = widgets[0]?.properties.metrics.map((m) => m[1]);
    expect(depth).toEqual(['QueuedBuilds', ...Array(5).fill('ApproximateNumberOfMessagesVisible')]);
    expect(widgets[3]?.properties.metrics.map((m) => m[1])).toContain('ReportsDeadLettered');
  });

  test('EventBridge routes spot interruptions and state changes to ec2-events, and runs the reaper every minute', () => {
    synth.controlPlane.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.ec2'], 'detail-type': ['EC2 Spot Instance Interruption Warning'] },
      Targets: [Match.objectLike({ DeadLetterConfig: Match.anyValue() })],
    });
    // Only the states ec2-events acts on: not every instance's pending/running in the account.
    synth.controlPlane.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ec2'],
        'detail-type': ['EC2 Instance State-change Notification'],
        detail: { state: ['shutting-down', 'terminated', 'stopping', 'stopped'] },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [handlerFunction('ec2-events').id, 'Arn'] } })],
    });
    expect(NODE_GONE_STATES).not.toContain('running');
    synth.controlPlane.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [handlerFunction('reaper').id, 'Arn'] } })],
    });
  });

  test('reserved concurrency caps every handler', () => {
    expect(handlerFunction('ingest').properties.ReservedConcurrentExecutions).toBe(10);
    expect(handlerFunction('reaper').properties.ReservedConcurrentExecutions).toBe(1);
    expect(handlerFunction('reporter').properties.ReservedConcurrentExecutions).toBe(2);
    // Its rule sees every instance in the account, so it is capped too.
    expect(EC2_EVENTS_CONCURRENCY).toBe(5);
    expect(handlerFunction('ec2-events').properties.ReservedConcurrentExecutions).toBe(5);
    expect(handlerFunction('scheduler').properties.ReservedConcurrentExecutions).toBe(2);
    expect(handlerFunction('node-api').properties.ReservedConcurrentExecutions).toBe(20);
  });

  test('secrets for the Gerrit password and the webhook token', () => {
    synth.controlPlane.resourceCountIs('AWS::SecretsManager::Secret', 2);
    synth.controlPlane.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: Match.objectLike({ PasswordLength: 48, ExcludePunctuation: true }),
    });
  });
});

describe('IAM', () => {
  type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Condition?: Record<string, unknown> };

  function statements(template: Template): Statement[] {
    return Object.values(resourcesOf(template, 'AWS::IAM::Policy')).flatMap(
      (policy) => (policy.Properties?.PolicyDocument as { Statement: Statement[] }).Statement,
    );
  }

  const actionsOf = (statement: Statement) => (Array.isArray(statement.Action) ? statement.Action : [statement.Action]);

  test('no statement anywhere grants the action "*"', () => {
    for (const template of [synth.artifacts, synth.fleet, synth.controlPlane]) {
      for (const statement of statements(template)) expect(actionsOf(statement)).not.toContain('*');
    }
  });

  test('launching requires the managed tag and the CI launch templates; terminating requires the tag', () => {
    const all = statements(synth.controlPlane);
    const launch = all.filter((s) => actionsOf(s).some((a) => a === 'ec2:RunInstances' || a === 'ec2:CreateFleet'));
    expect(launch.length).toBeGreaterThan(0);
    for (const statement of launch) {
      const resources = JSON.stringify(statement.Resource);
      if (resources.includes('instance/*') || resources.includes('volume/*')) {
        expect(statement.Condition).toBeDefined();
      }
    }
    // Every statement that lets a launch create instances (or volumes, interfaces, fleets) requires the
    // tag in the request; RunInstances on instances also requires a CI launch template.
    const creating = launch.filter((s) =>
      /:(instance|volume|network-interface|fleet)\/\*/.test(JSON.stringify(s.Resource)),
    );
    expect(creating.map((s) => s.Sid).sort()).toEqual([
      'CreateFleetOnlyTagged',
      'InstancesOnlyTaggedFromCiTemplates',
      'RunInstancesOnlyTagged',
    ]);
    for (const statement of creating) {
      expect(statement.Condition).toMatchObject({ StringEquals: { 'aws:RequestTag/akanda-ci:managed': 'true' } });
    }
    const instances = creating.find((s) => s.Sid === 'InstancesOnlyTaggedFromCiTemplates');
    expect(instances?.Resource).toEqual({ 'Fn::Join': ['', expect.arrayContaining([':instance/*'])] });
    expect(instances?.Condition).toMatchObject({ ArnLike: { 'ec2:LaunchTemplate': expect.any(Array) } });
    expect(
      creating.filter(
        (s) => actionsOf(s).includes('ec2:RunInstances') && JSON.stringify(s.Resource).includes(':instance/*'),
      ),
    ).toEqual([instances]);
    // Launch templates and network: only the CI's own.
    const templates = launch.find((s) => s.Sid === 'LaunchFromCiTemplates');
    expect(JSON.stringify(templates?.Resource)).not.toContain('*');
    const terminate = all.filter((s) => actionsOf(s).includes('ec2:TerminateInstances'));
    expect(terminate.length).toBeGreaterThan(0);
    for (const statement of terminate) {
      expect(statement.Condition).toEqual({ StringEquals: { 'ec2:ResourceTag/akanda-ci:managed': 'true' } });
    }
    const tagging = all.filter((s) => actionsOf(s).includes('ec2:CreateTags'));
    for (const statement of tagging) {
      expect(statement.Condition).toMatchObject({
        StringEquals: { 'ec2:CreateAction': ['CreateFleet', 'RunInstances'] },
      });
    }
  });

  test('only the scheduler may launch; service-linked role creation is limited to spot and EC2 Fleet', () => {
    const launchers = Object.entries(resourcesOf(synth.controlPlane, 'AWS::IAM::Policy')).filter(([, policy]) =>
      JSON.stringify(policy.Properties?.PolicyDocument).includes('ec2:CreateFleet'),
    );
    expect(launchers.map(([id]) => id)).toEqual([expect.stringMatching(/^SchedulerRole/)]);
    const slr = statements(synth.controlPlane).filter((s) => actionsOf(s).includes('iam:CreateServiceLinkedRole'));
    expect(slr).toEqual([
      expect.objectContaining({
        Condition: { StringEquals: { 'iam:AWSServiceName': ['spot.amazonaws.com', 'ec2fleet.amazonaws.com'] } },
      }),
    ]);
    expect(statements(synth.controlPlane).filter((s) => actionsOf(s).includes('iam:PassRole'))).toEqual([]);
  });

  test('only the reporter publishes images: the public node API may only sign log uploads', () => {
    const policiesOf = (rolePrefix: RegExp) =>
      Object.entries(resourcesOf(synth.controlPlane, 'AWS::IAM::Policy'))
        .filter(([id]) => rolePrefix.test(id))
        .flatMap(([, policy]) => (policy.Properties?.PolicyDocument as { Statement: Statement[] }).Statement);
    const grants = (statement: Statement, action: string) => actionsOf(statement).includes(action);
    const onImages = (statement: Statement) => JSON.stringify(statement.Resource).includes('-images-');

    const nodeApi = policiesOf(/^NodeApiRole/);
    expect(nodeApi.length).toBeGreaterThan(0);
    expect(nodeApi.filter((s) => grants(s, 's3:PutObject') && onImages(s))).toEqual([]);
    expect(nodeApi.filter((s) => grants(s, 'cloudfront:CreateInvalidation'))).toEqual([]);
    expect(nodeApi.filter((s) => grants(s, 's3:GetObject'))).toEqual([]);
    const s3Writes = nodeApi.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3Writes.map((s) => s.Sid)).toEqual(['SignLogUploads']);
    expect(JSON.stringify(s3Writes[0]?.Resource)).toContain('-logs-');

    const reporter = policiesOf(/^ReporterRole/);
    expect(reporter.filter((s) => grants(s, 's3:PutObject') && onImages(s)).map((s) => s.Sid)).toEqual([
      'PublishImages',
    ]);
    expect(reporter.filter((s) => grants(s, 'cloudfront:CreateInvalidation')).map((s) => s.Sid)).toEqual([
      'InvalidateLatestImage',
    ]);

    // It reads only the rolling images' latest.json from the images bucket (a newer merge's is kept).
    const imageReads = reporter.filter((s) => grants(s, 's3:GetObject') && onImages(s));
    expect(imageReads.map((s) => s.Sid)).toEqual(['ReadRollingImageRecords']);
    expect(JSON.stringify(imageReads[0]?.Resource)).toMatch(/-images-.*\/images\/\*\/latest\.json".*\/latest\.json"/);
    expect(reporter.filter((s) => grants(s, 's3:ListBucket')).map((s) => s.Sid)).toEqual(['ListImages']);

    // No other handler may write images or invalidate the CDN.
    const writers = Object.entries(resourcesOf(synth.controlPlane, 'AWS::IAM::Policy')).filter(([, policy]) => {
      const document = policy.Properties?.PolicyDocument as { Statement: Statement[] };
      return document.Statement.some(
        (s) => grants(s, 'cloudfront:CreateInvalidation') || (grants(s, 's3:PutObject') && onImages(s)),
      );
    });
    expect(writers.map(([id]) => id)).toEqual([expect.stringMatching(/^ReporterRole/)]);
  });

  test('handlers use their own roles, not AWSLambdaBasicExecutionRole', () => {
    for (const role of Object.values(resourcesOf(synth.controlPlane, 'AWS::IAM::Role'))) {
      expect(role.Properties?.ManagedPolicyArns).toBeUndefined();
    }
  });
});

describe('cdk-nag', () => {
  test('AwsSolutions ran and every acknowledgement has a specific reason', () => {
    const reasons: string[] = [];
    for (const stack of Object.values(synth.stacks)) {
      for (const construct of stack.node.findAll()) {
        for (const entry of construct.node.metadata) {
          if (entry.type !== 'aws:cdk:acknowledged-rules') continue;
          reasons.push(...Object.values(entry.data as Record<string, string>));
        }
      }
    }
    expect(reasons.length).toBeGreaterThan(10);
    for (const reason of reasons) expect(reason.length).toBeGreaterThanOrEqual(40);
  });
});
