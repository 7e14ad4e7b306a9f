/**
 * Config changes reach the templates: a new node label, another log retention, the node limit,
 * the alarm email, the SSM opt-in. Handlers are not bundled here (only template wiring is tested).
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { nodeImageParameterName, SESSION_MANAGER_ACTIONS } from '../../lib/fleet-stack';
import { contentVersion, NODE_IMAGE_COMPONENT_PATH } from '../../lib/node-image-pipeline';
import { dashboardWidgets, defaultConfigText, removeTempDirs, synthesize, type Synthesized } from './synth';

function variantConfig(): string {
  const document = parseDocument(defaultConfigText());
  document.setIn(['nodes', 'tempest-large'], {
    instanceTypes: ['m8i.4xlarge', 'r8i.4xlarge'],
    nestedVirtualization: true,
    rootVolumeGiB: 200,
    onDemandFallback: false,
  });
  document.setIn(['deploy', 'logRetentionDays'], 90);
  document.setIn(['deploy', 'alarmEmail'], 'ci-ops@example.org');
  document.setIn(['deploy', 'ssmSessionManager'], true);
  document.setIn(['deploy', 'stackPrefix'], 'AkandaCiStaging');
  document.setIn(['limits', 'maxConcurrentNodes'], 25);
  document.setIn(['limits', 'buildTimeLimit'], '2h');
  return document.toString();
}

let synth: Synthesized;

beforeAll(() => {
  synth = synthesize(variantConfig(), { nodeImagePipeline: true });
});

afterAll(removeTempDirs);

function launchTemplates(template: Template): Record<string, unknown>[] {
  return Object.values(template.findResources('AWS::EC2::LaunchTemplate')).map(
    (t) => (t as { Properties: { LaunchTemplateData: Record<string, unknown> } }).Properties.LaunchTemplateData,
  );
}

test('stack names follow deploy.stackPrefix', () => {
  expect([synth.stacks.artifacts, synth.stacks.fleet, synth.stacks.controlPlane].map((s) => s.stackName)).toEqual([
    'AkandaCiStaging-Artifacts',
    'AkandaCiStaging-Fleet',
    'AkandaCiStaging-ControlPlane',
  ]);
});

test('a new node label creates a launch template with its size and nested virtualization', () => {
  const templates = launchTemplates(synth.fleet);
  expect(templates).toHaveLength(4);
  const large = templates.filter((t) => JSON.stringify(t.BlockDeviceMappings).includes('"VolumeSize":200'));
  expect(large).toEqual([expect.objectContaining({ CpuOptions: { NestedVirtualization: 'enabled' } })]);
  const scheduler = Object.values(synth.controlPlane.findResources('AWS::Lambda::Function')).find(
    (fn) => (fn as { Properties: { Description?: string } }).Properties.Description === 'akanda-ci scheduler',
  );
  const launchTemplatesEnv = JSON.stringify(scheduler);
  expect(launchTemplatesEnv).toContain('\\"tempest-large\\":{\\"launchTemplateId\\":');
  expect(launchTemplatesEnv).toContain('\\"instanceTypes\\":[\\"m8i.4xlarge\\",\\"r8i.4xlarge\\"]');
});

test('a different log retention shows up in the logs bucket lifecycle', () => {
  synth.artifacts.hasResourceProperties('AWS::S3::Bucket', {
    BucketName: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith(['akandacistaging-logs-'])] }),
    LifecycleConfiguration: { Rules: Match.arrayWith([Match.objectLike({ ExpirationInDays: 90 })]) },
  });
});

test('the node limit and the alarm email reach the alarms', () => {
  synth.controlPlane.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'RunningNodes', Threshold: 25 });
  synth.controlPlane.hasResourceProperties('AWS::SNS::Subscription', {
    Protocol: 'email',
    Endpoint: 'ci-ops@example.org',
  });
  synth.controlPlane.hasResourceProperties('AWS::Lambda::Function', {
    Description: 'akanda-ci node-api',
    ReservedConcurrentExecutions: 50,
  });
});

test('the dashboard shows node hours for every label, the new one included, and the node limit', () => {
  const widgets = dashboardWidgets(synth.controlPlane);
  const spend = widgets.find((w) => w.properties.title === 'Spend proxy: node hours per label');
  const labels = spend?.properties.metrics.filter((m) => m[1] === 'NodeSeconds').map((m) => m[3]);
  expect(labels).toEqual(['small', 'devstack', 'tempest-large']);
  const nodes = widgets.find((w) => w.properties.title === 'Nodes');
  expect(nodes?.properties.annotations?.horizontal).toEqual([
    expect.objectContaining({ value: 25, label: 'limits.maxConcurrentNodes' }),
  ]);
});

test('the build time limit bounds every node lifetime in the user data', () => {
  // 2h + 10m grace + 30m margin.
  expect(JSON.stringify(launchTemplates(synth.fleet)[0]?.UserData)).toContain('shutdown -h +160 ');
});

test('the SSM opt-in gives nodes an instance profile, and the launcher may pass only that role, only to EC2', () => {
  for (const template of launchTemplates(synth.fleet)) {
    expect(template.IamInstanceProfile).toEqual({
      Arn: { 'Fn::GetAtt': [expect.stringMatching(/^NodeProfile/), 'Arn'] },
    });
  }
  const passRole = Object.values(synth.controlPlane.findResources('AWS::IAM::Policy')).flatMap(
    (policy) =>
      (policy as { Properties: { PolicyDocument: { Statement: { Action: unknown; Condition?: unknown }[] } } })
        .Properties.PolicyDocument.Statement,
  );
  const statements = passRole.filter((s) => JSON.stringify(s.Action).includes('iam:PassRole'));
  expect(statements).toEqual([
    expect.objectContaining({
      Resource: expect.anything(),
      Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
    }),
  ]);
});

test('the SSM opt-in role allows only the Session Manager channel actions: no managed policy, no parameter reads', () => {
  // The nodes' role (the image builder's bake-time role is another, not held by code under test).
  const roles = Object.values(synth.fleet.findResources('AWS::IAM::Role')).filter((role) =>
    JSON.stringify(role).includes('akanda-ci nodes:'),
  ) as { Properties: { ManagedPolicyArns?: unknown; Policies?: unknown } }[];
  expect(roles).toHaveLength(1);
  expect(roles[0]?.Properties.ManagedPolicyArns).toBeUndefined();
  expect(roles[0]?.Properties.Policies).toBeUndefined();
  const statements = Object.values(synth.fleet.findResources('AWS::IAM::Policy'))
    .filter((policy) => JSON.stringify(policy).includes('NodeRole'))
    .flatMap(
      (policy) =>
        (policy as { Properties: { PolicyDocument: { Statement: unknown[] } } }).Properties.PolicyDocument.Statement,
    );
  expect(statements).toEqual([
    {
      Effect: 'Allow',
      Action: [
        'ssm:UpdateInstanceInformation',
        'ssmmessages:CreateControlChannel',
        'ssmmessages:CreateDataChannel',
        'ssmmessages:OpenControlChannel',
        'ssmmessages:OpenDataChannel',
      ],
      Resource: '*',
    },
  ]);
  expect(SESSION_MANAGER_ACTIONS).toHaveLength(5);
});

test('cdk-nag fails synth on an unacknowledged finding', () => {
  expect(() =>
    synthesize(defaultConfigText(), {
      modify: ({ artifacts }) => {
        // A bucket without TLS enforcement, access logs or public access block: AwsSolutions-S1/S10.
        new s3.Bucket(artifacts, 'Careless', { blockPublicAccess: s3.BlockPublicAccess.BLOCK_ACLS_ONLY });
      },
    }),
  ).toThrow(/AwsSolutions-S10/);
});

describe('node image pipeline (context nodeImagePipeline)', () => {
  test("bakes from the job scripts' component with the published agent, on the node network, IMDSv2 only", () => {
    synth.fleet.hasResourceProperties('AWS::ImageBuilder::Component', {
      Data: readFileSync(NODE_IMAGE_COMPONENT_PATH, 'utf8'),
      Platform: 'Linux',
    });
    synth.fleet.hasResourceProperties('AWS::ImageBuilder::ImageRecipe', {
      ParentImage: 'ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id',
      Components: [
        Match.objectLike({
          Parameters: Match.arrayWith([{ Name: 'AgentBundleSha256', Value: [synth.agentBundle.sha256] }]),
        }),
      ],
      BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true, VolumeType: 'gp3' }) })],
    });
    synth.fleet.hasResourceProperties('AWS::ImageBuilder::InfrastructureConfiguration', {
      InstanceMetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      SecurityGroupIds: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^NetworkNodes'), 'GroupId'] }],
      TerminateInstanceOnFailure: true,
    });
  });

  test('publishes each AMI id to an SSM parameter and keeps only the newest images', () => {
    synth.fleet.hasResourceProperties('AWS::ImageBuilder::DistributionConfiguration', {
      Distributions: [
        Match.objectLike({
          SsmParameterConfigurations: [
            { ParameterName: nodeImageParameterName('AkandaCiStaging'), DataType: 'aws:ec2:image' },
          ],
        }),
      ],
    });
    synth.fleet.hasResourceProperties('AWS::ImageBuilder::LifecyclePolicy', {
      ResourceType: 'AMI_IMAGE',
      PolicyDetails: [
        {
          Action: { Type: 'DELETE', IncludeResources: { Amis: true, Snapshots: true } },
          Filter: { Type: 'COUNT', Value: 3 },
        },
      ],
      ResourceSelection: { TagMap: { 'akanda-ci:node-image': 'AkandaCiStaging-node' } },
    });
    synth.fleet.hasResourceProperties('AWS::ImageBuilder::ImagePipeline', {
      Schedule: { ScheduleExpression: 'cron(0 3 * * ? *)', PipelineExecutionStartCondition: 'EXPRESSION_MATCH_ONLY' },
      Status: 'ENABLED',
    });
  });

  test('versions follow the content (Image Builder versions are immutable)', () => {
    expect(contentVersion('a')).toMatch(/^1\.0\.\d+$/);
    expect(contentVersion('a')).toBe(contentVersion('a'));
    expect(contentVersion('a')).not.toBe(contentVersion('b'));
  });
});
