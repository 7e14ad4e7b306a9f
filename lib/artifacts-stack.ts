import { Aws, CfnOutput, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import type * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { BuildTable } from './build-table';
import { PrivateBucket } from './private-bucket';
import { PublicCdn } from './public-cdn';

/**
 * The buckets' physical names, unique per account and region. The other stacks import the buckets
 * by these names, so their policies name plain ARNs instead of cross-stack exports (which would
 * pin the stateful stack to every consumer).
 */
export function artifactBucketNames(stackPrefix: string): { images: string; logs: string } {
  const base = stackPrefix.toLowerCase();
  return {
    images: `${base}-images-${Aws.ACCOUNT_ID}-${Aws.REGION}`,
    logs: `${base}-logs-${Aws.ACCOUNT_ID}-${Aws.REGION}`,
  };
}

export interface ArtifactsStackProps extends StackProps {
  /** config deploy.stackPrefix: names the buckets. */
  readonly stackPrefix: string;
  /** Days CI logs are kept (config deploy.logRetentionDays). */
  readonly logRetentionDays: number;
  /** File name of the rolling image at the root of the images bucket (config appliance.latestImageName). */
  readonly latestImageName: string;
  /** Days a replaced or deleted image version stays recoverable. @default 90 */
  readonly imageVersionRetentionDays?: number;
  /** Days S3 and CloudFront access logs are kept. @default 90 */
  readonly accessLogRetentionDays?: number;
}

/**
 * Everything that holds data: the images and logs buckets, the CDN in front of them, and the
 * build table. Nothing here changes when the control plane or the fleet is redeployed.
 */
export class ArtifactsStack extends Stack {
  readonly imagesBucket: s3.Bucket;
  readonly logsBucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;
  readonly table: dynamodb.Table;
  /** `https://<distribution domain>` without a trailing slash. */
  readonly publicBaseUrl: string;
  /** Physical bucket names, for other stacks to import without cross-stack references. */
  readonly bucketNames: { readonly images: string; readonly logs: string };

  constructor(scope: Construct, id: string, props: ArtifactsStackProps) {
    super(scope, id, props);
    const accessLogs = new PrivateBucket(this, 'AccessLogs', {
      expireAfterDays: props.accessLogRetentionDays ?? 90,
      // CloudFront standard logging writes through ACLs.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
    }).bucket;
    Validations.of(accessLogs).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log destination of the other buckets; logging it into itself would loop.',
    });
    const names = artifactBucketNames(props.stackPrefix);
    this.bucketNames = names;
    this.imagesBucket = new PrivateBucket(this, 'Images', {
      bucketName: names.images,
      versioned: true,
      noncurrentVersionExpirationDays: props.imageVersionRetentionDays ?? 90,
      serverAccessLogsBucket: accessLogs,
    }).bucket;
    this.logsBucket = new PrivateBucket(this, 'Logs', {
      bucketName: names.logs,
      expireAfterDays: props.logRetentionDays,
      serverAccessLogsBucket: accessLogs,
    }).bucket;
    this.table = new BuildTable(this, 'Builds').table;

    const cdn = new PublicCdn(this, 'Cdn', {
      imagesBucket: this.imagesBucket,
      logsBucket: this.logsBucket,
      accessLogsBucket: accessLogs,
      latestImageName: props.latestImageName,
    });
    this.distribution = cdn.distribution;
    this.publicBaseUrl = cdn.baseUrl;
    Validations.of(this.distribution).acknowledge(
      {
        id: 'AwsSolutions-CFR1',
        reason: 'OpenStack CI logs and the appliance image are public by policy and must reach every country.',
      },
      {
        id: 'AwsSolutions-CFR2',
        reason:
          'Read-only public content from private buckets behind OAC; a WAF web ACL would add a fixed monthly cost to an otherwise idle-free CI.',
      },
      {
        id: 'AwsSolutions-CFR4',
        reason:
          'Uses the default *.cloudfront.net certificate, whose minimum protocol CloudFront fixes; viewers are HTTPS only.',
      },
    );

    new CfnOutput(this, 'LatestImageUrl', {
      description: 'Public URL of the rolling appliance image',
      value: `${this.publicBaseUrl}/${props.latestImageName}`,
    });
    new CfnOutput(this, 'LogsBaseUrl', {
      description: 'Base URL of the public CI logs',
      value: `${this.publicBaseUrl}/logs/`,
    });
  }
}
