import { Fn, Stack, type StackProps } from 'aws-cdk-lib';
import type * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { Config, NodeLabelConfig } from '../lambda/core/config';
import { durationSeconds } from '../lambda/core/duration';
import type { AgentBundle } from './agent-bundle';
import { AgentPublication } from './agent-publication';
import { NodeImagePipeline } from './node-image-pipeline';
import { NodeLaunchTemplate } from './node-launch-template';
import { NodeNetwork } from './node-network';
import { nodeBootstrapCommands } from './node-user-data';
import { acknowledgeWildcards, nagFinding } from './wildcard-acknowledgements';

/** Minutes a node may need beyond its build's limit: boot, package install, log upload. */
export const NODE_LIFETIME_MARGIN_MINUTES = 30;

export interface FleetStackProps extends StackProps {
  readonly config: Config;
  readonly agentBundle: AgentBundle;
  /** The images bucket's physical name (artifactBucketNames). */
  readonly imagesBucketName: string;
  readonly distribution: cloudfront.IDistribution;
  readonly publicBaseUrl: string;
  /**
   * AZ names for the node subnets. Synth never looks them up (that would need credentials).
   * @default the first `availabilityZoneCount` AZs of the region, resolved by CloudFormation
   */
  readonly availabilityZones?: readonly string[];
  /** @default 3 (every commercial region has at least three AZs for new accounts) */
  readonly availabilityZoneCount?: number;
  /** Bake the node image with EC2 Image Builder (context `nodeImagePipeline`). @default false */
  readonly nodeImagePipeline?: boolean;
}

/** The SSM parameter the node image pipeline writes; `nodes.<label>.amiSsmParameter` may name it. */
export function nodeImageParameterName(stackPrefix: string): string {
  return `/akanda-ci/${stackPrefix}/node-image-ami-id`;
}

/** The launch templates of one node label, as the EC2 launcher sees them. */
export interface LabelTemplates {
  readonly node: NodeLabelConfig;
  readonly template: ec2.LaunchTemplate;
  /** Only when the label has metalFallbackTypes: the same node without CpuOptions. */
  readonly metalTemplate?: ec2.LaunchTemplate;
}

/**
 * The ephemeral node fleet: network, one launch template per node label (plus a metal one where
 * metal fallback is configured), and the published node agent. No instance runs until the
 * control plane calls CreateFleet.
 */
/**
 * The SSM agent's minimum for Session Manager: register the instance, open the control and data
 * channels. No run command, patching, inventory or parameter reads.
 */
export const SESSION_MANAGER_ACTIONS = [
  'ssm:UpdateInstanceInformation',
  'ssmmessages:CreateControlChannel',
  'ssmmessages:CreateDataChannel',
  'ssmmessages:OpenControlChannel',
  'ssmmessages:OpenDataChannel',
] as const;

export class FleetStack extends Stack {
  readonly vpc: ec2.Vpc;
  readonly securityGroup: ec2.SecurityGroup;
  readonly labels: Readonly<Record<string, LabelTemplates>>;
  /** The nodes' role, only with deploy.ssmSessionManager. */
  readonly nodeRole?: iam.Role;
  /** Where the node image pipeline publishes AMI ids, when it is enabled. */
  readonly nodeImageParameterName?: string;
  private readonly azNames: string[];

  constructor(scope: Construct, id: string, props: FleetStackProps) {
    super(scope, id, props);
    const count = props.availabilityZoneCount ?? 3;
    this.azNames = props.availabilityZones
      ? [...props.availabilityZones]
      : Array.from({ length: count }, (_, i) => Fn.select(i, Fn.getAzs()));

    const network = new NodeNetwork(this, 'Network');
    this.vpc = network.vpc;
    this.securityGroup = network.securityGroup;

    const agent = new AgentPublication(this, 'Agent', {
      bundle: props.agentBundle,
      imagesBucket: s3.Bucket.fromBucketName(this, 'ImagesBucket', props.imagesBucketName),
      distribution: props.distribution,
      publicBaseUrl: props.publicBaseUrl,
    });
    const limits = props.config.limits;
    const maxLifetimeMinutes =
      Math.ceil((durationSeconds(limits.buildTimeLimit) + durationSeconds(limits.timeoutGrace)) / 60) +
      NODE_LIFETIME_MARGIN_MINUTES;
    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      ...nodeBootstrapCommands({ agentUrl: agent.agentUrl, agentSha256: props.agentBundle.sha256, maxLifetimeMinutes }),
    );

    let instanceProfile: iam.InstanceProfile | undefined;
    if (props.config.deploy.ssmSessionManager) {
      this.nodeRole = new iam.Role(this, 'NodeRole', {
        assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
        description: 'akanda-ci nodes: SSM Session Manager only (deploy.ssmSessionManager opt-in)',
      });
      // Code under test holds this identity too, so it gets only what the SSM agent needs for a
      // session (AWS's custom Session Manager instance profile), not AmazonSSMManagedInstanceCore
      // (ssm:GetParameter(s), documents, associations, inventory on every resource).
      this.nodeRole.addToPolicy(new iam.PolicyStatement({ actions: [...SESSION_MANAGER_ACTIONS], resources: ['*'] }));
      acknowledgeWildcards(this.nodeRole, [
        {
          finding: nagFinding('Resource::*'),
          reason:
            'The ssmmessages channel actions have no resource types; ssm:UpdateInstanceInformation is the agent registering its own instance.',
        },
      ]);
      instanceProfile = new iam.InstanceProfile(this, 'NodeProfile', { role: this.nodeRole });
    }

    const labels: Record<string, LabelTemplates> = {};
    for (const [label, node] of Object.entries(props.config.nodes)) {
      const common = {
        amiSsmParameter: node.amiSsmParameter,
        rootVolumeGiB: node.rootVolumeGiB,
        securityGroup: this.securityGroup,
        userData,
        instanceProfile,
      };
      const template = new NodeLaunchTemplate(this, `Label-${label}`, {
        ...common,
        nestedVirtualization: node.nestedVirtualization,
      }).launchTemplate;
      const metalTemplate =
        node.metalFallbackTypes.length > 0
          ? new NodeLaunchTemplate(this, `Label-${label}-metal`, { ...common, nestedVirtualization: false })
              .launchTemplate
          : undefined;
      labels[label] = { node, template, metalTemplate };
    }
    this.labels = labels;

    if (props.nodeImagePipeline) {
      this.nodeImageParameterName = nodeImageParameterName(props.config.deploy.stackPrefix);
      new NodeImagePipeline(this, 'NodeImage', {
        namePrefix: `${props.config.deploy.stackPrefix}-node`,
        agentUrl: agent.agentUrl,
        agentSha256: props.agentBundle.sha256,
        subnet: this.vpc.publicSubnets[0] as ec2.ISubnet,
        securityGroup: this.securityGroup,
        amiParameterName: this.nodeImageParameterName,
      });
    }
  }

  override get availabilityZones(): string[] {
    return this.azNames;
  }

  /** `LAUNCH_TEMPLATES` as docs/design.md defines it, with deploy-time ids. */
  launchTemplatesEnvironment(): string {
    const value: Record<string, unknown> = {};
    for (const [label, { node, template, metalTemplate }] of Object.entries(this.labels)) {
      value[label] = {
        launchTemplateId: template.launchTemplateId,
        instanceTypes: node.instanceTypes,
        ...(metalTemplate ? { metalLaunchTemplateId: metalTemplate.launchTemplateId } : {}),
        metalFallbackTypes: node.metalFallbackTypes,
        onDemandFallback: node.onDemandFallback,
      };
    }
    return this.toJsonString(value);
  }
}
