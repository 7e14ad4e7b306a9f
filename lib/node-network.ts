import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NodeNetworkProps {
  /** @default '10.42.0.0/16' */
  readonly cidr?: string;
  /** Days rejected-traffic flow logs are kept. @default 30 */
  readonly flowLogRetention?: logs.RetentionDays;
}

/**
 * Where CI nodes run: public subnets in every AZ of the stack, no NAT gateway (nodes reach git,
 * pip and apt directly, and a NAT gateway would cost money at idle), and one security group
 * with no ingress rule at all. Nodes call out; nothing calls in.
 */
export class NodeNetwork extends Construct {
  readonly vpc: ec2.Vpc;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NodeNetworkProps = {}) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr ?? '10.42.0.0/16'),
      maxAzs: 99,
      natGateways: 0,
      subnetConfiguration: [
        { name: 'nodes', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 20, mapPublicIpOnLaunch: true },
      ],
    });
    // Rejected flows only: the signal that something probed a node, at a fraction of full flow-log cost.
    const flowLogGroup = new logs.LogGroup(this, 'RejectedFlows', {
      retention: props.flowLogRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc.addFlowLog('RejectedFlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
      trafficType: ec2.FlowLogTrafficType.REJECT,
      maxAggregationInterval: ec2.FlowLogMaxAggregationInterval.TEN_MINUTES,
    });
    this.securityGroup = new ec2.SecurityGroup(this, 'Nodes', {
      vpc: this.vpc,
      description: 'akanda-ci nodes: no inbound traffic; outbound for git, pip, apt and the CI endpoints',
      allowAllOutbound: true,
    });
  }
}
