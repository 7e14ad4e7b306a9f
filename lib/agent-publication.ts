import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { AGENT_ARCHIVE_NAME, type AgentBundle } from './agent-bundle';
import { acknowledgeWildcards, nagFinding } from './wildcard-acknowledgements';

export interface AgentPublicationProps {
  readonly bundle: AgentBundle;
  readonly imagesBucket: s3.IBucket;
  readonly distribution: cloudfront.IDistribution;
  /** `https://<distribution domain>` without a trailing slash. */
  readonly publicBaseUrl: string;
}

/** Key prefix of the agent archive in the images bucket, and its URL path. */
export const AGENT_PREFIX = 'agent/';

/**
 * Uploads the node-agent archive to `agent/` in the images bucket at deploy time (replacing the
 * previous one) and invalidates `/agent/*`, so nodes download exactly the bytes whose sha256 the
 * launch templates' user data checks.
 */
export class AgentPublication extends Construct {
  /** `https://<distribution>/agent/node-agent.tar.gz` */
  readonly agentUrl: string;

  constructor(scope: Construct, id: string, props: AgentPublicationProps) {
    super(scope, id);
    const deployment = new s3deploy.BucketDeployment(this, 'Deployment', {
      sources: [s3deploy.Source.asset(props.bundle.directory)],
      destinationBucket: props.imagesBucket,
      destinationKeyPrefix: AGENT_PREFIX,
      prune: true,
      distribution: props.distribution,
      distributionPaths: [`/${AGENT_PREFIX}*`],
      logGroup: new logs.LogGroup(this, 'DeploymentLogs', {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });
    this.agentUrl = `${props.publicBaseUrl}/${AGENT_PREFIX}${AGENT_ARCHIVE_NAME}`;

    // The deployment's handler is CDK's own singleton (Python, AWS CLI layer): its shape is not ours to change.
    const handler = deployment.handlerRole.node.scope;
    if (handler) {
      Validations.of(handler).acknowledge(
        {
          id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
          reason: 'CDK BucketDeployment handler: runs only during deploys and needs only to write its own logs.',
        },
        {
          id: 'AwsSolutions-L1',
          reason: 'CDK BucketDeployment pins the Python runtime its bundled AWS CLI layer supports.',
        },
      );
      acknowledgeWildcards(handler, [
        {
          finding: nagFinding(
            ...['GetObject', 'GetBucket', 'List', 'DeleteObject', 'Abort'].map((a) => `Action::s3:${a}*`),
          ),
          reason:
            'CDK BucketDeployment copies the archive from the CDK asset bucket into agent/ and prunes old files there; these are its grantRead/grantReadWrite actions.',
        },
        {
          finding: nagFinding('Resource::arn:{partition}:s3:::cdk-{name}-assets-{account}-{region}/*'),
          reason: 'The CDK bootstrap asset bucket, where cdk deploy uploaded the archive; read only.',
        },
        {
          finding: nagFinding('Resource::arn:{partition}:s3:::{name}-images-{account}-{region}/*'),
          reason:
            'CDK BucketDeployment writes and prunes the agent/ prefix of the images bucket (its grant covers the bucket).',
        },
        {
          finding: nagFinding('Resource::*'),
          reason:
            'cloudfront:CreateInvalidation/GetInvalidation as granted by CDK BucketDeployment to invalidate /agent/* after upload.',
        },
      ]);
    }
  }
}
