/**
 * Build nodes on EC2: one CreateFleet `instant` request per launch stage, spot first.
 *
 * CreateFleet already spreads one request over every pool we give it (each instance type of the label
 * in each subnet/AZ, chosen by `price-capacity-optimized`), so "other pools" here means the pools a
 * single request cannot hold: the label's bare-metal fallback types, which need their own launch
 * template (no NestedVirtualization CPU option). The stages, in order:
 *   1. spot      - the label's instance types x every subnet, the label's launch template
 *   2. spot-metal- the label's metalFallbackTypes x every subnet, the metal launch template (if any)
 *   3. on-demand - the label's instance types x every subnet (if onDemandFallback)
 * A stage that launches nothing because of capacity (or pool availability, or a spot/vCPU quota)
 * moves on to the next; after the last one the launch is `no_capacity` (the lifecycle waits and
 * retries). Throttling and EC2 server errors are `no_capacity` at once (retry later, same stages).
 * Anything else (permissions, a missing launch template, bad parameters) is `failed`: it would fail
 * the same way on every retry.
 *
 * Tags: the instance carries every node tag of docs/design.md (the agent reads them through IMDS);
 * the fleet record carries managed + build. CreateFleet `instant` only accepts `fleet` and `instance`
 * tag specifications, so volumes get `akanda-ci:managed=true` from the launch template instead.
 */
import { createHash } from 'node:crypto';
import {
  CreateFleetCommand,
  paginateDescribeInstances,
  TerminateInstancesCommand,
  type _InstanceType,
  type CreateFleetCommandInput,
  type CreateFleetCommandOutput,
  type EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';
import { z } from 'zod';
import type { Fleet, LaunchOutcome, LaunchRequest, ManagedInstance } from './fleet';

export const MANAGED_TAG = 'akanda-ci:managed';
export const BUILD_TAG = 'akanda-ci:build';
export const CLAIM_TAG = 'akanda-ci:claim';
export const API_TAG = 'akanda-ci:api';
/** The lifecycle's launchSeq: tells a leftover of an earlier launch from the build's current node. */
export const LAUNCH_TAG = 'akanda-ci:launch';

/** Not enough capacity in the pools of this request: another pool or on-demand may still work. */
export const CAPACITY_ERROR_CODES: ReadonlySet<string> = new Set([
  'InsufficientInstanceCapacity',
  'InsufficientCapacity',
  'InsufficientHostCapacity',
  'UnfulfillableCapacity',
  'MaxSpotInstanceCountExceeded',
  'SpotMaxPriceTooLow',
  // Account quotas: the spot vCPU quota is separate from the on-demand one.
  'VcpuLimitExceeded',
  'InstanceLimitExceeded',
  // The instance type is not offered in that subnet's AZ: a missing pool, not a broken request.
  'Unsupported',
  'InvalidFleetConfiguration',
]);

/** EC2 itself is busy or failing: retry later, do not give up on the build. */
export const TRANSIENT_ERROR_CODES: ReadonlySet<string> = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'InternalError',
  'InternalFailure',
  'ServiceUnavailable',
  'Unavailable',
]);

const launchTemplateId = z.string().regex(/^lt-[0-9a-z]+$/, { message: 'expected a launch template id (lt-...)' });
const instanceType = z.string().regex(/^[a-z0-9-]+\.[a-z0-9-]+$/, { message: 'expected an instance type' });

const labelLaunchSchema = z.strictObject({
  launchTemplateId,
  instanceTypes: z.array(instanceType).min(1),
  metalLaunchTemplateId: launchTemplateId.optional(),
  metalFallbackTypes: z.array(instanceType).default([]),
  onDemandFallback: z.boolean().default(true),
});

/** One node label of the `LAUNCH_TEMPLATES` environment variable. */
export type LabelLaunch = z.output<typeof labelLaunchSchema>;

/** Parses `LAUNCH_TEMPLATES` (docs/design.md); throws an Error naming the bad key. */
export function parseLaunchTemplates(json: string): Record<string, LabelLaunch> {
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch {
    throw new Error('LAUNCH_TEMPLATES: not valid JSON');
  }
  const result = z.record(z.string(), labelLaunchSchema).safeParse(document);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new Error(`LAUNCH_TEMPLATES: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

/** Parses `SUBNET_IDS`: comma-separated subnet ids, one per AZ. */
export function parseSubnetIds(text: string): string[] {
  const ids = text
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  if (ids.length === 0 || !ids.every((id) => /^subnet-[0-9a-z]+$/.test(id))) {
    throw new Error('SUBNET_IDS: expected comma-separated subnet ids (subnet-...)');
  }
  return ids;
}

export interface Ec2FleetOptions {
  client: EC2Client;
  launchTemplates: Record<string, LabelLaunch>;
  subnetIds: readonly string[];
  /** `NODE_API_URL`, put in the `akanda-ci:api` tag. */
  nodeApiUrl: string;
}

/** The fleet the Lambdas use, from the environment the stacks set (docs/design.md). */
export function ec2FleetFromEnvironment(client: EC2Client, env: NodeJS.ProcessEnv = process.env): Ec2Fleet {
  const missing = ['LAUNCH_TEMPLATES', 'SUBNET_IDS', 'NODE_API_URL'].filter((name) => !env[name]);
  if (missing.length > 0) throw new Error(`Ec2Fleet: missing environment ${missing.join(', ')}`);
  return new Ec2Fleet({
    client,
    launchTemplates: parseLaunchTemplates(env.LAUNCH_TEMPLATES ?? ''),
    subnetIds: parseSubnetIds(env.SUBNET_IDS ?? ''),
    nodeApiUrl: env.NODE_API_URL ?? '',
  });
}

interface LaunchStage {
  name: 'spot' | 'spot-metal' | 'on-demand';
  capacity: 'spot' | 'on-demand';
  launchTemplateId: string;
  instanceTypes: readonly string[];
}

type Verdict = 'capacity' | 'transient' | 'fatal';

interface StageResult {
  instances: { instanceId: string; instanceType?: string; lifecycle: 'spot' | 'on-demand' }[];
  verdict: Verdict;
  reason: string;
}

const BUILD_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const CLAIM_TOKEN = /^[A-Za-z0-9_-]{16,128}$/;
/** Tag values allow letters, digits, spaces and `+ - = . _ : / @`. */
const TAG_SAFE_URL = /^https?:\/\/[A-Za-z0-9.-]+(:\d+)?(\/[A-Za-z0-9._~:/@+=-]*)?$/;
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const REASON_LIMIT = 500;

export class Ec2Fleet implements Fleet {
  private readonly client: EC2Client;
  private readonly launchTemplates: Record<string, LabelLaunch>;
  private readonly subnetIds: readonly string[];
  private readonly nodeApiUrl: string;

  constructor(options: Ec2FleetOptions) {
    if (options.subnetIds.length === 0) throw new Error('Ec2Fleet: at least one subnet is needed');
    if (!TAG_SAFE_URL.test(options.nodeApiUrl)) {
      throw new Error('Ec2Fleet: NODE_API_URL must be an http(s) URL usable as a tag value');
    }
    this.client = options.client;
    this.launchTemplates = options.launchTemplates;
    this.subnetIds = [...options.subnetIds];
    this.nodeApiUrl = options.nodeApiUrl;
  }

  async launch(request: LaunchRequest): Promise<LaunchOutcome> {
    const label = Object.hasOwn(this.launchTemplates, request.nodeLabel)
      ? this.launchTemplates[request.nodeLabel]
      : undefined;
    if (label === undefined) {
      return { status: 'failed', reason: `no launch template for node label "${safe(request.nodeLabel)}"` };
    }
    if (!BUILD_ID.test(request.buildId)) return { status: 'failed', reason: 'build id is not usable as a tag value' };
    if (!Number.isSafeInteger(request.launchSeq) || request.launchSeq < 1) {
      return { status: 'failed', reason: 'launchSeq must be a positive integer' };
    }
    if (!CLAIM_TOKEN.test(request.claimToken)) {
      return { status: 'failed', reason: 'claim token must be 16-128 base64url characters' };
    }

    const reasons: string[] = [];
    for (const stage of stagesFor(label)) {
      const result = await this.tryStage(stage, request);
      const [first, ...extra] = result.instances;
      if (first !== undefined) {
        // The node we keep must be reported even if cleaning up the extras fails (the reaper retries it).
        if (extra.length > 0) await this.terminateInstances(extra.map((i) => i.instanceId)).catch(() => undefined);
        return { status: 'launched', ...first };
      }
      reasons.push(`${stage.name}: ${scrub(result.reason, request.claimToken)}`);
      const reason = truncate(reasons.join('; '));
      if (result.verdict === 'fatal') return { status: 'failed', reason };
      if (result.verdict === 'transient') return { status: 'no_capacity', reason };
    }
    return { status: 'no_capacity', reason: truncate(reasons.join('; ')) };
  }

  async terminateInstances(instanceIds: readonly string[]): Promise<void> {
    const bad = instanceIds.find((id) => !INSTANCE_ID.test(id));
    if (bad !== undefined) throw new Error(`terminateInstances: not an instance id: ${JSON.stringify(safe(bad))}`);
    for (let i = 0; i < instanceIds.length; i += 1000) {
      const chunk = instanceIds.slice(i, i + 1000);
      try {
        await this.client.send(new TerminateInstancesCommand({ InstanceIds: chunk }));
      } catch (error) {
        // NotFound: already gone (or, seconds after launch, not visible yet: the reaper catches those).
        if (errorCode(error) !== 'InvalidInstanceID.NotFound') throw error;
        // One gone instance fails the whole call: terminate the others one by one.
        if (chunk.length > 1) await this.terminateOneByOne(chunk);
      }
    }
  }

  async listManagedInstances(): Promise<ManagedInstance[]> {
    const found: ManagedInstance[] = [];
    const pages = paginateDescribeInstances(
      { client: this.client },
      {
        Filters: [
          { Name: `tag:${MANAGED_TAG}`, Values: ['true'] },
          { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
        ],
        MaxResults: 1000,
      },
    );
    for await (const page of pages) {
      for (const reservation of page.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) {
          if (instance.InstanceId === undefined) continue;
          const buildId = instance.Tags?.find((tag) => tag.Key === BUILD_TAG)?.Value;
          const launchTag = instance.Tags?.find((tag) => tag.Key === LAUNCH_TAG)?.Value;
          const launchSeq = launchTag !== undefined && /^[1-9]\d{0,8}$/.test(launchTag) ? Number(launchTag) : undefined;
          found.push({
            instanceId: instance.InstanceId,
            ...(buildId === undefined ? {} : { buildId }),
            ...(launchSeq === undefined ? {} : { launchSeq }),
            state: instance.State?.Name ?? 'unknown',
            ...(instance.LaunchTime === undefined
              ? {}
              : { launchedAt: Math.floor(instance.LaunchTime.getTime() / 1000) }),
          });
        }
      }
    }
    return found;
  }

  private createFleetInput(stage: LaunchStage, request: LaunchRequest): CreateFleetCommandInput {
    const overrides = stage.instanceTypes.flatMap((type) =>
      this.subnetIds.map((subnetId) => ({ InstanceType: type as _InstanceType, SubnetId: subnetId })),
    );
    const instanceTags: Tag[] = [
      { Key: MANAGED_TAG, Value: 'true' },
      { Key: BUILD_TAG, Value: request.buildId },
      { Key: CLAIM_TAG, Value: request.claimToken },
      { Key: API_TAG, Value: this.nodeApiUrl },
      { Key: LAUNCH_TAG, Value: String(request.launchSeq) },
      { Key: 'Name', Value: `akanda-ci ${request.nodeLabel} ${request.buildId}` },
    ];
    return {
      Type: 'instant',
      // The same launch retried by a re-run handler gets the same instance back instead of a second one.
      ClientToken: clientToken(request, stage),
      TargetCapacitySpecification: { TotalTargetCapacity: 1, DefaultTargetCapacityType: stage.capacity },
      ...(stage.capacity === 'spot'
        ? { SpotOptions: { AllocationStrategy: 'price-capacity-optimized', InstanceInterruptionBehavior: 'terminate' } }
        : { OnDemandOptions: { AllocationStrategy: 'lowest-price' } }),
      LaunchTemplateConfigs: [
        {
          LaunchTemplateSpecification: { LaunchTemplateId: stage.launchTemplateId, Version: '$Latest' },
          Overrides: overrides,
        },
      ],
      TagSpecifications: [
        { ResourceType: 'instance', Tags: instanceTags },
        {
          ResourceType: 'fleet',
          Tags: [
            { Key: MANAGED_TAG, Value: 'true' },
            { Key: BUILD_TAG, Value: request.buildId },
          ],
        },
      ],
    };
  }

  private async tryStage(stage: LaunchStage, request: LaunchRequest): Promise<StageResult> {
    let output: CreateFleetCommandOutput;
    try {
      output = await this.client.send(new CreateFleetCommand(this.createFleetInput(stage, request)));
    } catch (error) {
      const code = errorCode(error);
      return { instances: [], verdict: classifyThrown(error), reason: `${code}: ${errorMessage(error)}` };
    }
    const instances = (output.Instances ?? []).flatMap((group) =>
      (group.InstanceIds ?? []).map((instanceId) => ({
        instanceId,
        ...(group.InstanceType === undefined ? {} : { instanceType: group.InstanceType }),
        lifecycle: group.Lifecycle === 'on-demand' ? ('on-demand' as const) : stage.capacity,
      })),
    );
    const errors = output.Errors ?? [];
    const verdicts = errors.map((e) => classifyCode(e.ErrorCode));
    // Fatal only when every pool failed the same hopeless way: one pool's misfit (a type that cannot take
    // the template) must not stop the others. No errors and no instance counts as a capacity miss.
    const verdict: Verdict =
      verdicts.length > 0 && verdicts.every((v) => v === 'fatal')
        ? 'fatal'
        : verdicts.includes('transient')
          ? 'transient'
          : 'capacity';
    const codes = [...new Set(errors.map((e) => e.ErrorCode ?? 'UnknownError'))];
    const firstMessage =
      errors.find((e) => classifyCode(e.ErrorCode) === verdict)?.ErrorMessage ?? errors[0]?.ErrorMessage ?? '';
    const reason = codes.length === 0 ? 'no instance and no error' : `${codes.join(', ')}: ${firstMessage}`;
    return { instances, verdict, reason };
  }

  private async terminateOneByOne(instanceIds: readonly string[]): Promise<void> {
    for (const id of instanceIds) {
      try {
        await this.client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
      } catch (error) {
        if (errorCode(error) !== 'InvalidInstanceID.NotFound') throw error;
      }
    }
  }
}

function stagesFor(label: LabelLaunch): LaunchStage[] {
  const stages: LaunchStage[] = [
    { name: 'spot', capacity: 'spot', launchTemplateId: label.launchTemplateId, instanceTypes: label.instanceTypes },
  ];
  if (label.metalFallbackTypes.length > 0) {
    stages.push({
      name: 'spot-metal',
      capacity: 'spot',
      launchTemplateId: label.metalLaunchTemplateId ?? label.launchTemplateId,
      instanceTypes: label.metalFallbackTypes,
    });
  }
  if (label.onDemandFallback) {
    stages.push({
      name: 'on-demand',
      capacity: 'on-demand',
      launchTemplateId: label.launchTemplateId,
      instanceTypes: label.instanceTypes,
    });
  }
  return stages;
}

function clientToken(request: LaunchRequest, stage: LaunchStage): string {
  return createHash('sha256')
    .update([request.buildId, String(request.launchSeq), stage.name, request.claimToken].join('\0'))
    .digest('hex');
}

function classifyCode(code: string | undefined): Verdict {
  if (code === undefined) return 'capacity';
  if (CAPACITY_ERROR_CODES.has(code)) return 'capacity';
  if (TRANSIENT_ERROR_CODES.has(code)) return 'transient';
  return 'fatal';
}

function classifyThrown(error: unknown): Verdict {
  const code = errorCode(error);
  if (CAPACITY_ERROR_CODES.has(code) || TRANSIENT_ERROR_CODES.has(code)) return classifyCode(code);
  const metadata = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  // No HTTP status: the request never got an answer (network, timeout). 5xx: EC2's fault.
  if (metadata?.httpStatusCode === undefined || metadata.httpStatusCode >= 500) return 'transient';
  return 'fatal';
}

function errorCode(error: unknown): string {
  if (error instanceof Error) return error.name;
  return 'UnknownError';
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function scrub(text: string, claimToken: string): string {
  return text.split(claimToken).join('***');
}

function truncate(text: string): string {
  return text.length <= REASON_LIMIT ? text : `${text.slice(0, REASON_LIMIT - 1)}…`;
}

function safe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 100);
}
