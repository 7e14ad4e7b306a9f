import {
  CreateFleetCommand,
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  TerminateInstancesCommand,
  type CreateFleetCommandInput,
  type CreateFleetCommandOutput,
  type DescribeInstancesCommandInput,
  type DescribeInstancesCommandOutput,
  type TerminateInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CAPACITY_ERROR_CODES,
  Ec2Fleet,
  ec2FleetFromEnvironment,
  parseLaunchTemplates,
  parseSubnetIds,
  type LabelLaunch,
} from '../../lambda/adapters/ec2-fleet';
import { launchEvent, type LaunchRequest } from '../../lambda/adapters/fleet';

const ec2 = mockClient(EC2Client);
const client = new EC2Client({
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' },
});

const NODE_API_URL = 'https://abc123.lambda-url.us-east-1.on.aws/';
const SUBNETS = ['subnet-0aaa1111', 'subnet-0bbb2222'];
const DEVSTACK: LabelLaunch = {
  launchTemplateId: 'lt-0devstack0000001',
  instanceTypes: ['c8i.2xlarge', 'm8i.2xlarge'],
  metalLaunchTemplateId: 'lt-0metal000000001',
  metalFallbackTypes: ['c5.metal'],
  onDemandFallback: true,
};
const SMALL: LabelLaunch = {
  launchTemplateId: 'lt-0small000000001',
  instanceTypes: ['c8i.large'],
  metalFallbackTypes: [],
  onDemandFallback: false,
};

const CLAIM = 'Zm9vYmFyYmF6cXV4LWNsYWltLXRva2Vu';
const REQUEST: LaunchRequest = { buildId: 'b-7f3a9c', launchSeq: 1, nodeLabel: 'devstack', claimToken: CLAIM };

function fleet(): Ec2Fleet {
  return new Ec2Fleet({
    client,
    launchTemplates: { devstack: DEVSTACK, small: SMALL },
    subnetIds: SUBNETS,
    nodeApiUrl: NODE_API_URL,
  });
}

function fleetInputs(): CreateFleetCommandInput[] {
  return ec2.commandCalls(CreateFleetCommand).map((call) => call.args[0].input);
}

function launchedOutput(instanceId: string, lifecycle: 'spot' | 'on-demand' = 'spot'): CreateFleetCommandOutput {
  return {
    $metadata: {},
    FleetId: 'fleet-1',
    Instances: [{ InstanceIds: [instanceId], InstanceType: 'c8i.2xlarge', Lifecycle: lifecycle }],
    Errors: [],
  };
}

function capacityOutput(code: string, message = 'There is no Spot capacity available that matches your request.') {
  return {
    $metadata: {},
    FleetId: 'fleet-2',
    Instances: [],
    Errors: SUBNETS.map((subnet) => ({
      ErrorCode: code,
      ErrorMessage: message,
      Lifecycle: 'spot' as const,
      LaunchTemplateAndOverrides: { Overrides: { InstanceType: 'c8i.2xlarge' as const, SubnetId: subnet } },
    })),
  };
}

function awsError(name: string, httpStatusCode: number, message = `${name} happened`): EC2ServiceException {
  return new EC2ServiceException({
    name,
    message,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode },
  });
}

/** Which stage a CreateFleet input belongs to, read from the input itself. */
function stageOf(input: CreateFleetCommandInput): string {
  const template = input.LaunchTemplateConfigs?.[0]?.LaunchTemplateSpecification?.LaunchTemplateId;
  const capacity = input.TargetCapacitySpecification?.DefaultTargetCapacityType;
  return `${capacity}:${template}`;
}

beforeEach(() => ec2.reset());

describe('launch', () => {
  it('asks for one spot instance over every type x subnet, tagged for the node and IAM', async () => {
    ec2.on(CreateFleetCommand).resolves(launchedOutput('i-0123456789abcdef0'));

    const outcome = await fleet().launch(REQUEST);

    expect(outcome).toEqual({
      status: 'launched',
      instanceId: 'i-0123456789abcdef0',
      instanceType: 'c8i.2xlarge',
      lifecycle: 'spot',
    });
    const inputs = fleetInputs();
    expect(inputs).toHaveLength(1);
    const expected: CreateFleetCommandInput = {
      Type: 'instant',
      ClientToken: expect.stringMatching(/^[0-9a-f]{64}$/),
      TargetCapacitySpecification: { TotalTargetCapacity: 1, DefaultTargetCapacityType: 'spot' },
      SpotOptions: { AllocationStrategy: 'price-capacity-optimized', InstanceInterruptionBehavior: 'terminate' },
      LaunchTemplateConfigs: [
        {
          LaunchTemplateSpecification: { LaunchTemplateId: 'lt-0devstack0000001', Version: '$Latest' },
          Overrides: [
            { InstanceType: 'c8i.2xlarge', SubnetId: 'subnet-0aaa1111' },
            { InstanceType: 'c8i.2xlarge', SubnetId: 'subnet-0bbb2222' },
            { InstanceType: 'm8i.2xlarge', SubnetId: 'subnet-0aaa1111' },
            { InstanceType: 'm8i.2xlarge', SubnetId: 'subnet-0bbb2222' },
          ],
        },
      ],
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: [
            { Key: 'akanda-ci:managed', Value: 'true' },
            { Key: 'akanda-ci:build', Value: 'b-7f3a9c' },
            { Key: 'akanda-ci:claim', Value: CLAIM },
            { Key: 'akanda-ci:api', Value: NODE_API_URL },
            { Key: 'akanda-ci:launch', Value: '1' },
            { Key: 'Name', Value: 'akanda-ci devstack b-7f3a9c' },
          ],
        },
        {
          ResourceType: 'fleet',
          Tags: [
            { Key: 'akanda-ci:managed', Value: 'true' },
            { Key: 'akanda-ci:build', Value: 'b-7f3a9c' },
          ],
        },
      ],
    };
    expect(inputs[0]).toEqual(expected);
    expect(launchEvent(outcome, 1)).toEqual({ type: 'launched', launchSeq: 1, instanceId: 'i-0123456789abcdef0' });
  });

  // The capacity codes CreateFleet reports per pool (or throws), from the EC2 error reference.
  const capacityCodes = [
    'InsufficientInstanceCapacity',
    'InsufficientCapacity',
    'InsufficientHostCapacity',
    'UnfulfillableCapacity',
    'MaxSpotInstanceCountExceeded',
    'SpotMaxPriceTooLow',
    'VcpuLimitExceeded',
    'InstanceLimitExceeded',
    'Unsupported',
    'InvalidFleetConfiguration',
  ];

  it('treats exactly these codes as capacity', () => {
    expect([...CAPACITY_ERROR_CODES].sort()).toEqual([...capacityCodes].sort());
  });

  it.each(capacityCodes)('falls back on %s: spot, then metal spot, then on-demand', async (code) => {
    ec2.on(CreateFleetCommand).callsFake((input: CreateFleetCommandInput) => {
      if (stageOf(input) === 'on-demand:lt-0devstack0000001') return launchedOutput('i-0aaaaaaaaaaaaaaa1', 'on-demand');
      return capacityOutput(code);
    });

    const outcome = await fleet().launch(REQUEST);

    expect(outcome).toEqual({
      status: 'launched',
      instanceId: 'i-0aaaaaaaaaaaaaaa1',
      instanceType: 'c8i.2xlarge',
      lifecycle: 'on-demand',
    });
    const inputs = fleetInputs();
    expect(inputs.map(stageOf)).toEqual([
      'spot:lt-0devstack0000001',
      'spot:lt-0metal000000001',
      'on-demand:lt-0devstack0000001',
    ]);
    expect(inputs[1]?.LaunchTemplateConfigs?.[0]?.Overrides).toEqual([
      { InstanceType: 'c5.metal', SubnetId: 'subnet-0aaa1111' },
      { InstanceType: 'c5.metal', SubnetId: 'subnet-0bbb2222' },
    ]);
    const onDemand = inputs[2];
    expect(onDemand?.OnDemandOptions).toEqual({ AllocationStrategy: 'lowest-price' });
    expect(onDemand).not.toHaveProperty('SpotOptions');
    expect(onDemand?.LaunchTemplateConfigs?.[0]?.Overrides).toEqual(inputs[0]?.LaunchTemplateConfigs?.[0]?.Overrides);
    // Each stage is its own idempotent request: reusing one token across stages is IdempotentParameterMismatch.
    expect(new Set(inputs.map((input) => input.ClientToken)).size).toBe(3);
  });

  it('falls back when the capacity error is thrown rather than listed', async () => {
    ec2
      .on(CreateFleetCommand)
      .rejectsOnce(awsError('InsufficientInstanceCapacity', 500))
      .rejectsOnce(awsError('MaxSpotInstanceCountExceeded', 400))
      .resolves(launchedOutput('i-0bbbbbbbbbbbbbbb2', 'on-demand'));
    await expect(fleet().launch(REQUEST)).resolves.toMatchObject({ status: 'launched', lifecycle: 'on-demand' });
    expect(fleetInputs().map(stageOf)).toEqual([
      'spot:lt-0devstack0000001',
      'spot:lt-0metal000000001',
      'on-demand:lt-0devstack0000001',
    ]);
  });

  it('waits and retries when no pool the label allows has capacity', async () => {
    ec2.on(CreateFleetCommand).resolves(capacityOutput('InsufficientInstanceCapacity'));
    const outcome = await fleet().launch({ ...REQUEST, nodeLabel: 'small' });
    expect(outcome).toEqual({
      status: 'no_capacity',
      reason: 'spot: InsufficientInstanceCapacity: There is no Spot capacity available that matches your request.',
    });
    // No metal types and no on-demand for this label: one request only.
    expect(fleetInputs().map(stageOf)).toEqual(['spot:lt-0small000000001']);
    expect(launchEvent(outcome, 4)).toEqual({
      type: 'launch_failed',
      launchSeq: 4,
      reason: expect.stringContaining('InsufficientInstanceCapacity'),
      retryable: true,
    });
  });

  it('tries every stage before waiting, and says why each failed', async () => {
    ec2
      .on(CreateFleetCommand)
      .resolvesOnce(capacityOutput('InsufficientInstanceCapacity'))
      .resolvesOnce(capacityOutput('SpotMaxPriceTooLow', 'Your Spot request price is lower than the minimum'))
      .resolvesOnce(capacityOutput('InsufficientInstanceCapacity', 'We currently do not have sufficient capacity'));
    const outcome = await fleet().launch(REQUEST);
    expect(outcome.status).toBe('no_capacity');
    expect(outcome.status === 'no_capacity' && outcome.reason.split('; ').map((part) => part.split(':')[0])).toEqual([
      'spot',
      'spot-metal',
      'on-demand',
    ]);
    expect(fleetInputs()).toHaveLength(3);
  });

  it.each([
    ['UnauthorizedOperation', 403],
    ['InvalidLaunchTemplateId.NotFound', 400],
    ['InvalidParameterValue', 400],
  ])('does not retry %s', async (code, status) => {
    ec2.on(CreateFleetCommand).rejects(awsError(code, status));
    const outcome = await fleet().launch(REQUEST);
    expect(outcome).toEqual({ status: 'failed', reason: `spot: ${code}: ${code} happened` });
    expect(fleetInputs()).toHaveLength(1);
    expect(launchEvent(outcome, 1)).toMatchObject({ type: 'launch_failed', retryable: false });
  });

  it('fails when every pool reports the same hopeless error, but not when only some pools misfit', async () => {
    ec2.on(CreateFleetCommand).resolves(capacityOutput('InvalidLaunchTemplateId.VersionNotFound'));
    await expect(fleet().launch(REQUEST)).resolves.toMatchObject({ status: 'failed' });
    expect(fleetInputs()).toHaveLength(1);

    ec2.reset();
    const mixed = capacityOutput('InsufficientInstanceCapacity');
    mixed.Errors[1] = { ...mixed.Errors[0]!, ErrorCode: 'InvalidParameterCombination' };
    ec2.on(CreateFleetCommand).resolvesOnce(mixed).resolves(launchedOutput('i-0ccccccccccccccc3'));
    await expect(fleet().launch(REQUEST)).resolves.toMatchObject({ status: 'launched' });
    expect(fleetInputs()).toHaveLength(2);
  });

  it.each([
    ['throttling', awsError('RequestLimitExceeded', 503)],
    ['an EC2 server error', awsError('InternalError', 500)],
    ['any 5xx answer', awsError('SomeNewServerFault', 503)],
    ['a network error', Object.assign(new Error('socket hang up'), { name: 'ECONNRESET' })],
  ])('retries later on %s without trying further pools', async (_what, error) => {
    ec2.on(CreateFleetCommand).rejects(error);
    await expect(fleet().launch(REQUEST)).resolves.toMatchObject({ status: 'no_capacity' });
    expect(fleetInputs()).toHaveLength(1);
  });

  it('keeps an instance it got even when other pools reported errors', async () => {
    ec2.on(CreateFleetCommand).resolves({
      ...capacityOutput('InsufficientInstanceCapacity'),
      ...launchedOutput('i-0ddddddddddddddd4'),
      Errors: capacityOutput('InsufficientInstanceCapacity').Errors,
    });
    await expect(fleet().launch(REQUEST)).resolves.toMatchObject({
      status: 'launched',
      instanceId: 'i-0ddddddddddddddd4',
    });
    expect(fleetInputs()).toHaveLength(1);
  });

  it('terminates any instance beyond the one it asked for', async () => {
    ec2.on(CreateFleetCommand).resolves({
      $metadata: {},
      Instances: [{ InstanceIds: ['i-0eeeeeeeeeeeeeee5', 'i-0fffffffffffffff6'], Lifecycle: 'spot' }],
    });
    ec2.on(TerminateInstancesCommand).resolves({});
    await expect(fleet().launch(REQUEST)).resolves.toMatchObject({ instanceId: 'i-0eeeeeeeeeeeeeee5' });
    const terminated: TerminateInstancesCommandInput[] = ec2
      .commandCalls(TerminateInstancesCommand)
      .map((call) => call.args[0].input);
    expect(terminated).toEqual([{ InstanceIds: ['i-0fffffffffffffff6'] }]);
  });

  it('still reports the kept instance when terminating the extra one fails', async () => {
    ec2.on(CreateFleetCommand).resolves({
      $metadata: {},
      Instances: [{ InstanceIds: ['i-0eeeeeeeeeeeeeee5', 'i-0fffffffffffffff6'], Lifecycle: 'spot' }],
    });
    ec2.on(TerminateInstancesCommand).rejects(awsError('InternalError', 500));
    await expect(fleet().launch(REQUEST)).resolves.toMatchObject({
      status: 'launched',
      instanceId: 'i-0eeeeeeeeeeeeeee5',
    });
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(1);
  });

  it('sends the same client token for a retried launch and a new one for the next launch', async () => {
    ec2.on(CreateFleetCommand).resolves(launchedOutput('i-0123456789abcdef0'));
    await fleet().launch(REQUEST);
    await fleet().launch(REQUEST);
    await fleet().launch({ ...REQUEST, launchSeq: 2 });
    const tokens = fleetInputs().map((input) => input.ClientToken);
    expect(tokens[0]).toBe(tokens[1]);
    expect(tokens[2]).not.toBe(tokens[0]);
    expect(tokens.every((token) => !token?.includes(CLAIM))).toBe(true);
  });

  it('never puts the claim token in a failure reason', async () => {
    ec2.on(CreateFleetCommand).rejects(awsError('InvalidParameterValue', 400, `Tag value ${CLAIM} is invalid`));
    const outcome = await fleet().launch(REQUEST);
    expect(outcome).toEqual({ status: 'failed', reason: 'spot: InvalidParameterValue: Tag value *** is invalid' });
  });

  it.each([
    [{ nodeLabel: 'gpu' }, 'no launch template for node label "gpu"'],
    [{ nodeLabel: 'toString' }, 'no launch template for node label "toString"'],
    [{ buildId: 'b 1; rm -rf /' }, 'build id is not usable as a tag value'],
    [{ claimToken: 'short' }, 'claim token must be 16-128 base64url characters'],
    [{ launchSeq: 0 }, 'launchSeq must be a positive integer'],
  ])('rejects %j before calling EC2', async (change, reason) => {
    await expect(fleet().launch({ ...REQUEST, ...change })).resolves.toEqual({ status: 'failed', reason });
    expect(fleetInputs()).toHaveLength(0);
  });
});

describe('terminateInstances', () => {
  it('terminates in one call and skips the call for nothing', async () => {
    ec2.on(TerminateInstancesCommand).resolves({});
    await fleet().terminateInstances([]);
    await fleet().terminateInstances(['i-0123456789abcdef0', 'i-0aaaaaaaaaaaaaaa1']);
    const inputs: TerminateInstancesCommandInput[] = ec2
      .commandCalls(TerminateInstancesCommand)
      .map((c) => c.args[0].input);
    expect(inputs).toEqual([{ InstanceIds: ['i-0123456789abcdef0', 'i-0aaaaaaaaaaaaaaa1'] }]);
  });

  it('treats already-gone instances as terminated and still terminates the others', async () => {
    ec2.on(TerminateInstancesCommand).callsFake((input: TerminateInstancesCommandInput) => {
      if (input.InstanceIds?.includes('i-0000000000000dead')) throw awsError('InvalidInstanceID.NotFound', 400);
      return {};
    });
    await fleet().terminateInstances(['i-0000000000000dead', 'i-0123456789abcdef0']);
    const inputs = ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds);
    expect(inputs).toEqual([
      ['i-0000000000000dead', 'i-0123456789abcdef0'],
      ['i-0000000000000dead'],
      ['i-0123456789abcdef0'],
    ]);
  });

  it('passes other errors on and refuses what is not an instance id', async () => {
    ec2.on(TerminateInstancesCommand).rejects(awsError('UnauthorizedOperation', 403));
    await expect(fleet().terminateInstances(['i-0123456789abcdef0'])).rejects.toThrow('UnauthorizedOperation happened');
    await expect(fleet().terminateInstances(['i-0123; reboot'])).rejects.toThrow('not an instance id');
  });
});

describe('listManagedInstances', () => {
  it('pages through every live instance with the managed tag', async () => {
    const launchTime = new Date('2026-11-25T08:00:00Z');
    const pages: DescribeInstancesCommandOutput[] = [
      {
        $metadata: {},
        NextToken: 'page-2',
        Reservations: [
          {
            Instances: [
              {
                InstanceId: 'i-0123456789abcdef0',
                State: { Name: 'running' },
                LaunchTime: launchTime,
                Tags: [
                  { Key: 'akanda-ci:managed', Value: 'true' },
                  { Key: 'akanda-ci:build', Value: 'b-1' },
                  { Key: 'akanda-ci:launch', Value: '2' },
                ],
              },
            ],
          },
        ],
      },
      {
        $metadata: {},
        Reservations: [
          {
            Instances: [
              {
                InstanceId: 'i-0aaaaaaaaaaaaaaa1',
                State: { Name: 'pending' },
                Tags: [{ Key: 'akanda-ci:managed', Value: 'true' }],
              },
            ],
          },
        ],
      },
    ];
    // The SDK paginator reuses one input object, so keep a copy of what each call asked for.
    const inputs: DescribeInstancesCommandInput[] = [];
    ec2.on(DescribeInstancesCommand).callsFake((input: DescribeInstancesCommandInput) => {
      inputs.push({ ...input });
      return pages[inputs.length - 1];
    });

    const instances = await fleet().listManagedInstances();

    expect(instances).toEqual([
      {
        instanceId: 'i-0123456789abcdef0',
        buildId: 'b-1',
        launchSeq: 2,
        state: 'running',
        launchedAt: launchTime.getTime() / 1000,
      },
      { instanceId: 'i-0aaaaaaaaaaaaaaa1', state: 'pending' },
    ]);
    const filters: DescribeInstancesCommandInput['Filters'] = [
      { Name: 'tag:akanda-ci:managed', Values: ['true'] },
      { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
    ];
    expect(inputs).toEqual([
      { Filters: filters, MaxResults: 1000 },
      { Filters: filters, MaxResults: 1000, NextToken: 'page-2' },
    ]);
  });
});

describe('configuration', () => {
  it('parses LAUNCH_TEMPLATES with defaults', () => {
    expect(parseLaunchTemplates('{"small":{"launchTemplateId":"lt-0abc","instanceTypes":["c8i.large"]}}')).toEqual({
      small: {
        launchTemplateId: 'lt-0abc',
        instanceTypes: ['c8i.large'],
        metalFallbackTypes: [],
        onDemandFallback: true,
      },
    });
  });

  it.each([
    ['not json', 'LAUNCH_TEMPLATES: not valid JSON'],
    [
      '{"small":{"launchTemplateId":"x","instanceTypes":["c8i.large"]}}',
      'LAUNCH_TEMPLATES: small.launchTemplateId: expected a launch template id (lt-...)',
    ],
    ['{"small":{"launchTemplateId":"lt-1","instanceTypes":[]}}', 'LAUNCH_TEMPLATES: small.instanceTypes:'],
  ])('rejects LAUNCH_TEMPLATES %s', (json, message) => {
    expect(() => parseLaunchTemplates(json)).toThrow(message);
  });

  it('parses SUBNET_IDS and rejects junk', () => {
    expect(parseSubnetIds(' subnet-0a, subnet-0b ,')).toEqual(['subnet-0a', 'subnet-0b']);
    expect(() => parseSubnetIds('')).toThrow('SUBNET_IDS');
    expect(() => parseSubnetIds('subnet-1,$(id)')).toThrow('SUBNET_IDS');
  });

  it('builds the fleet from the environment of the stacks and names what is missing', async () => {
    const env = {
      LAUNCH_TEMPLATES: JSON.stringify({ small: SMALL }),
      SUBNET_IDS: SUBNETS.join(','),
      NODE_API_URL,
    };
    ec2.on(CreateFleetCommand).resolves(launchedOutput('i-0123456789abcdef0'));
    await ec2FleetFromEnvironment(client, env).launch({ ...REQUEST, nodeLabel: 'small' });
    expect(fleetInputs()[0]?.LaunchTemplateConfigs?.[0]?.LaunchTemplateSpecification?.LaunchTemplateId).toBe(
      'lt-0small000000001',
    );
    expect(() => ec2FleetFromEnvironment(client, { SUBNET_IDS: 'subnet-1' })).toThrow(
      'Ec2Fleet: missing environment LAUNCH_TEMPLATES, NODE_API_URL',
    );
  });

  it('refuses a node API URL that cannot be a tag value', () => {
    expect(
      () => new Ec2Fleet({ client, launchTemplates: {}, subnetIds: SUBNETS, nodeApiUrl: 'https://x/?a=1&b=2' }),
    ).toThrow('NODE_API_URL');
  });
});
