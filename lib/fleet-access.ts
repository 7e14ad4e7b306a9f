import { Stack } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { MANAGED_TAG_KEY, MANAGED_TAG_VALUE } from './node-launch-template';
import { nagFinding, type WildcardReason } from './wildcard-acknowledgements';

export interface FleetAccessProps {
  /** Every launch template the control plane may launch from. */
  readonly launchTemplates: readonly ec2.ILaunchTemplate[];
  readonly subnets: readonly ec2.ISubnet[];
  readonly securityGroup: ec2.ISecurityGroup;
  /** The nodes' role when the SSM opt-in gave them one: the launcher must pass it. */
  readonly nodeRole?: iam.IRole;
}

/**
 * The EC2 rights of the control plane, scoped the way docs/design.md (Nodes) promises:
 * launching only from the CI's launch templates into its subnets and security group, only with
 * the `akanda-ci:managed=true` tag in the request; terminating only instances carrying that tag.
 */
export class FleetAccess extends Construct {
  private readonly props: FleetAccessProps;
  private readonly stack: Stack;

  constructor(scope: Construct, id: string, props: FleetAccessProps) {
    super(scope, id);
    this.props = props;
    this.stack = Stack.of(this);
  }

  private ec2Arn(resource: string, resourceName: string, account?: string): string {
    return this.stack.formatArn({ service: 'ec2', resource, resourceName, account });
  }

  /** Resources a launch creates; the request must tag them as the CI's own. */
  private createdResources(): string[] {
    return ['instance', 'volume', 'network-interface', 'fleet', 'spot-instances-request'].map((type) =>
      this.ec2Arn(type, '*'),
    );
  }

  /** CreateFleet / RunInstances, with the service-linked roles spot and EC2 Fleet need on first use. */
  grantLaunch(grantee: iam.IGrantable): void {
    const { launchTemplates, subnets, securityGroup, nodeRole } = this.props;
    const actions = ['ec2:CreateFleet', 'ec2:RunInstances'];
    const templateArns = launchTemplates.map((template) =>
      this.ec2Arn('launch-template', template.launchTemplateId ?? ''),
    );
    const statements = [
      new iam.PolicyStatement({ sid: 'LaunchFromCiTemplates', actions, resources: templateArns }),
      new iam.PolicyStatement({
        sid: 'LaunchIntoCiNetwork',
        actions,
        resources: [
          ...subnets.map((subnet) => this.ec2Arn('subnet', subnet.subnetId)),
          this.ec2Arn('security-group', securityGroup.securityGroupId),
        ],
      }),
      new iam.PolicyStatement({
        sid: 'LaunchPublicImages',
        actions,
        // AMIs and their snapshots are owned by Canonical (or whoever publishes the SSM parameter):
        // their ARNs have no account, and which AMI is used is fixed by the launch templates.
        resources: [this.ec2Arn('image', '*', ''), this.ec2Arn('snapshot', '*', '')],
      }),
      // Allow statements add up, so each condition must sit in the statement it restricts.
      // CreateFleet always launches from a launch template, and LaunchFromCiTemplates admits ours only.
      new iam.PolicyStatement({
        sid: 'CreateFleetOnlyTagged',
        actions: ['ec2:CreateFleet'],
        resources: this.createdResources(),
        conditions: { StringEquals: { [`aws:RequestTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE } },
      }),
      new iam.PolicyStatement({
        sid: 'RunInstancesOnlyTagged',
        actions: ['ec2:RunInstances'],
        resources: this.createdResources().filter((arn) => !arn.endsWith(':instance/*')),
        conditions: { StringEquals: { [`aws:RequestTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE } },
      }),
      // RunInstances could name an AMI directly; instances must come from a CI launch template.
      new iam.PolicyStatement({
        sid: 'InstancesOnlyTaggedFromCiTemplates',
        actions: ['ec2:RunInstances'],
        resources: [this.ec2Arn('instance', '*')],
        conditions: {
          StringEquals: { [`aws:RequestTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE },
          ArnLike: { 'ec2:LaunchTemplate': templateArns },
        },
      }),
      new iam.PolicyStatement({
        sid: 'TagOnlyWhileLaunching',
        actions: ['ec2:CreateTags'],
        resources: this.createdResources(),
        conditions: {
          StringEquals: {
            'ec2:CreateAction': ['CreateFleet', 'RunInstances'],
            [`aws:RequestTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE,
          },
        },
      }),
      new iam.PolicyStatement({
        sid: 'SpotAndFleetServiceLinkedRoles',
        actions: ['iam:CreateServiceLinkedRole'],
        resources: [
          this.stack.formatArn({
            service: 'iam',
            region: '',
            resource: 'role',
            resourceName: 'aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot',
          }),
          this.stack.formatArn({
            service: 'iam',
            region: '',
            resource: 'role',
            resourceName: 'aws-service-role/ec2fleet.amazonaws.com/AWSServiceRoleForEC2Fleet',
          }),
        ],
        conditions: { StringEquals: { 'iam:AWSServiceName': ['spot.amazonaws.com', 'ec2fleet.amazonaws.com'] } },
      }),
    ];
    if (nodeRole) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'PassNodeRoleToEc2Only',
          actions: ['iam:PassRole'],
          resources: [nodeRole.roleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
        }),
      );
    }
    for (const statement of statements) grantee.grantPrincipal.addToPrincipalPolicy(statement);
  }

  /** TerminateInstances on instances tagged `akanda-ci:managed=true` only. */
  grantTerminate(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'TerminateOnlyCiInstances',
        actions: ['ec2:TerminateInstances'],
        resources: [this.ec2Arn('instance', '*')],
        conditions: { StringEquals: { [`ec2:ResourceTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE } },
      }),
    );
  }

  /** DescribeInstances, which EC2 does not scope by resource: the reaper filters by the tag. */
  grantDescribe(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'DescribeInstances', actions: ['ec2:DescribeInstances'], resources: ['*'] }),
    );
  }
}

/** Why the EC2 statements above need wildcards (see acknowledgeWildcards). */
export const FLEET_WILDCARD_REASONS: readonly WildcardReason[] = [
  {
    finding: nagFinding(
      ...['instance', 'volume', 'network-interface', 'fleet', 'spot-instances-request'].map(
        (type) => `Resource::arn:{partition}:ec2:{region}:{account}:${type}/*`,
      ),
    ),
    reason:
      'Ids of instances, volumes, interfaces, fleets and spot requests do not exist before launch; every statement on them requires the akanda-ci:managed tag in the request or on the resource.',
  },
  {
    finding: nagFinding(
      'Resource::arn:{partition}:ec2:{region}::image/*',
      'Resource::arn:{partition}:ec2:{region}::snapshot/*',
    ),
    reason:
      'Public Canonical AMIs and their snapshots (no account in the ARN); which AMI a node boots is fixed by the CI launch templates, the only templates launches may use.',
  },
  {
    finding: nagFinding('Resource::*'),
    reason:
      'ec2:DescribeInstances supports no resource-level permissions; it only reads, and the caller filters by the akanda-ci:managed tag.',
  },
];
