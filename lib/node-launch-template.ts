import { Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** The tag every CI-launched instance and volume carries; IAM conditions on it. */
export const MANAGED_TAG_KEY = 'akanda-ci:managed';
export const MANAGED_TAG_VALUE = 'true';

export interface NodeLaunchTemplateProps {
  /** Public SSM parameter with the AMI id; resolved by CloudFormation at deploy time, never looked up at synth. */
  readonly amiSsmParameter: string;
  readonly rootVolumeGiB: number;
  /** Sets CpuOptions.NestedVirtualization=enabled (virtual C8i/M8i/R8i only; metal types must not set it). */
  readonly nestedVirtualization: boolean;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly userData: ec2.UserData;
  /** Only for the SSM Session Manager opt-in. @default no instance profile: nodes have no AWS identity */
  readonly instanceProfile?: iam.IInstanceProfile;
}

/**
 * One launch template of a node label. It fixes everything security-relevant (AMI, IMDSv2 with
 * hop limit 1, metadata tags, encrypted root volume, no ingress, terminate on shutdown) and
 * leaves only the instance type and subnet to CreateFleet's overrides.
 */
export class NodeLaunchTemplate extends Construct {
  readonly launchTemplate: ec2.LaunchTemplate;

  constructor(scope: Construct, id: string, props: NodeLaunchTemplateProps) {
    super(scope, id);
    this.launchTemplate = new ec2.LaunchTemplate(this, 'Template', {
      machineImage: ec2.MachineImage.fromSsmParameter(props.amiSsmParameter, { userData: props.userData }),
      userData: props.userData,
      securityGroup: props.securityGroup,
      instanceProfile: props.instanceProfile,
      requireImdsv2: true,
      httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
      httpPutResponseHopLimit: 1,
      httpEndpoint: true,
      // The agent reads its build id, claim token and API URL from IMDS tags (docs/design.md, Nodes).
      instanceMetadataTags: true,
      instanceInitiatedShutdownBehavior: ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
      ebsOptimized: true,
      cpuOptions: props.nestedVirtualization ? { nestedVirtualization: true } : undefined,
      blockDevices: [
        {
          // Ubuntu's root device.
          deviceName: '/dev/sda1',
          volume: ec2.BlockDeviceVolume.ebs(props.rootVolumeGiB, {
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            encrypted: true,
            deleteOnTermination: true,
          }),
        },
      ],
    });
    Tags.of(this.launchTemplate).add(MANAGED_TAG_KEY, MANAGED_TAG_VALUE);
  }
}
