import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Aws, Validations } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as imagebuilder from 'aws-cdk-lib/aws-imagebuilder';
import { Construct } from 'constructs';

/** The Image Builder component the job scripts define (docs/jobs.md, "The node image"). */
export const NODE_IMAGE_COMPONENT_PATH = join(__dirname, '..', 'scripts', 'node-image', 'component.yaml');

/** Tag on every node AMI, which the lifecycle policy selects by. */
export const NODE_IMAGE_TAG = 'akanda-ci:node-image';

export interface NodeImagePipelineProps {
  /** Names the Image Builder resources, e.g. `AkandaCi-node`. */
  readonly namePrefix: string;
  /** `https://<distribution>/agent/node-agent.tar.gz`: the component fetches scripts/ from it. */
  readonly agentUrl: string;
  readonly agentSha256: string;
  /**
   * The appliance image the bake pre-caches. @default none: a URL that does not exist yet (before the
   * first publish) would fail every bake, and jobs fetch the image through CloudFront anyway
   */
  readonly applianceImageUrl?: string;
  readonly subnet: ec2.ISubnet;
  readonly securityGroup: ec2.ISecurityGroup;
  /** SSM parameter the pipeline writes each new AMI id to; point `nodes.<label>.amiSsmParameter` at it. */
  readonly amiParameterName: string;
  /** @default Ubuntu 24.04 LTS amd64 (Canonical's public SSM parameter) */
  readonly parentImageSsmParameter?: string;
  /** Branches whose packages and wheels the bake caches. @default 'master' */
  readonly branches?: string;
  /** @default c8i.2xlarge and m8i.2xlarge (on-demand, as Image Builder launches) */
  readonly instanceTypes?: readonly string[];
  /** @default 120 */
  readonly rootVolumeGiB?: number;
  /** @default daily at 03:00 UTC */
  readonly scheduleExpression?: string;
  /** Images (and their snapshots) kept; older ones are deleted. @default 3 */
  readonly keepImages?: number;
}

/**
 * The opt-in EC2 Image Builder pipeline that bakes the node image (devstack packages, wheels, git
 * mirrors) from `scripts/node-image/component.yaml`, publishes each AMI id to an SSM parameter,
 * and deletes all but the newest few images so snapshots do not pile up.
 *
 * Component and recipe versions are derived from their content: Image Builder versions are
 * immutable, so a changed component or agent archive must come with a new version.
 */
export class NodeImagePipeline extends Construct {
  readonly pipeline: imagebuilder.CfnImagePipeline;

  constructor(scope: Construct, id: string, props: NodeImagePipelineProps) {
    super(scope, id);
    const componentData = readFileSync(NODE_IMAGE_COMPONENT_PATH, 'utf8');
    const component = new imagebuilder.CfnComponent(this, 'Component', {
      name: `${props.namePrefix}-component`,
      platform: 'Linux',
      version: contentVersion(componentData),
      data: componentData,
      description: 'akanda-ci node image: scripts/node-image/bake.sh',
    });

    const parent =
      props.parentImageSsmParameter ??
      '/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id';
    const parameters: Record<string, string> = {
      AgentBundleUrl: props.agentUrl,
      AgentBundleSha256: props.agentSha256,
      Branches: props.branches ?? 'master',
      ApplianceImageUrl: props.applianceImageUrl ?? '',
    };
    const rootVolumeGiB = props.rootVolumeGiB ?? 120;
    const recipe = new imagebuilder.CfnImageRecipe(this, 'Recipe', {
      name: `${props.namePrefix}-recipe`,
      // The URL holds deploy-time tokens; the sha256 and the rest change the version when they change.
      version: contentVersion(
        JSON.stringify([component.version, parent, props.agentSha256, parameters, rootVolumeGiB]),
      ),
      parentImage: `ssm:${parent}`,
      components: [
        {
          componentArn: component.attrArn,
          parameters: Object.entries(parameters).map(([name, value]) => ({ name, value: [value] })),
        },
      ],
      blockDeviceMappings: [
        {
          deviceName: '/dev/sda1',
          ebs: { volumeSize: rootVolumeGiB, volumeType: 'gp3', encrypted: true, deleteOnTermination: true },
        },
      ],
    });

    const role = new iam.Role(this, 'BuildRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'akanda-ci node image builds (EC2 Image Builder)',
      managedPolicies: ['EC2InstanceProfileForImageBuilder', 'AmazonSSMManagedInstanceCore'].map((name) =>
        iam.ManagedPolicy.fromAwsManagedPolicyName(name),
      ),
    });
    for (const name of ['EC2InstanceProfileForImageBuilder', 'AmazonSSMManagedInstanceCore']) {
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/${name}]`,
        reason: `Image Builder build instances need ${name}: it is how Image Builder drives the build through SSM.`,
      });
    }
    const profile = new iam.InstanceProfile(this, 'BuildProfile', { role });
    const infrastructure = new imagebuilder.CfnInfrastructureConfiguration(this, 'Infrastructure', {
      name: `${props.namePrefix}-infrastructure`,
      instanceProfileName: profile.instanceProfileName,
      instanceTypes: [...(props.instanceTypes ?? ['c8i.2xlarge', 'm8i.2xlarge'])],
      subnetId: props.subnet.subnetId,
      securityGroupIds: [props.securityGroup.securityGroupId],
      terminateInstanceOnFailure: true,
      instanceMetadataOptions: { httpTokens: 'required', httpPutResponseHopLimit: 1 },
    });

    const distribution = new imagebuilder.CfnDistributionConfiguration(this, 'Distribution', {
      name: `${props.namePrefix}-distribution`,
      distributions: [
        {
          region: Aws.REGION,
          // Typed as free-form JSON in the L1, so the CloudFormation property names are spelled out.
          amiDistributionConfiguration: {
            Name: `${props.namePrefix}-{{ imagebuilder:buildDate }}`,
            AmiTags: { [NODE_IMAGE_TAG]: props.namePrefix },
          },
          ssmParameterConfigurations: [{ parameterName: props.amiParameterName, dataType: 'aws:ec2:image' }],
        },
      ],
    });

    this.pipeline = new imagebuilder.CfnImagePipeline(this, 'Pipeline', {
      name: `${props.namePrefix}-pipeline`,
      description: 'akanda-ci node image, rebuilt on a schedule',
      imageRecipeArn: recipe.attrArn,
      infrastructureConfigurationArn: infrastructure.attrArn,
      distributionConfigurationArn: distribution.attrArn,
      schedule: {
        scheduleExpression: props.scheduleExpression ?? 'cron(0 3 * * ? *)',
        pipelineExecutionStartCondition: 'EXPRESSION_MATCH_ONLY',
      },
      imageTestsConfiguration: { imageTestsEnabled: true },
      status: 'ENABLED',
    });

    const lifecycleRole = new iam.Role(this, 'LifecycleRole', {
      assumedBy: new iam.ServicePrincipal('imagebuilder.amazonaws.com'),
      description: 'akanda-ci: deletes old node images and their snapshots',
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/EC2ImageBuilderLifecycleExecutionPolicy'),
      ],
    });
    Validations.of(lifecycleRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/EC2ImageBuilderLifecycleExecutionPolicy]',
      reason:
        'The AWS policy Image Builder lifecycle policies are designed for; it only deregisters images they select.',
    });
    new imagebuilder.CfnLifecyclePolicy(this, 'KeepNewest', {
      name: `${props.namePrefix}-keep-newest`,
      description: 'akanda-ci: keep the newest node images, delete older AMIs and snapshots',
      executionRole: lifecycleRole.roleArn,
      resourceType: 'AMI_IMAGE',
      policyDetails: [
        {
          action: { type: 'DELETE', includeResources: { amis: true, snapshots: true } },
          filter: { type: 'COUNT', value: props.keepImages ?? 3 },
        },
      ],
      // Every image this pipeline produced, whichever recipe version built it.
      resourceSelection: { tagMap: { [NODE_IMAGE_TAG]: props.namePrefix } },
    });
  }
}

/** `1.0.<n>`, n from the content's hash (Image Builder versions are at most 2^30 - 1 per part). */
export function contentVersion(content: string): string {
  const hash = createHash('sha256').update(content).digest('hex');
  return `1.0.${parseInt(hash.slice(0, 7), 16)}`;
}
