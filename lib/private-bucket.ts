import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface PrivateBucketProps {
  /** Physical name; other stacks derive ARNs from it without cross-stack references. @default generated */
  readonly bucketName?: string;
  /** Keep every overwritten or deleted object as a noncurrent version. @default false */
  readonly versioned?: boolean;
  /** Delete objects this many days after upload. @default never */
  readonly expireAfterDays?: number;
  /** Delete noncurrent versions this many days after they were replaced. @default never */
  readonly noncurrentVersionExpirationDays?: number;
  /** Where S3 writes server access logs. @default none (only for the access-log bucket itself) */
  readonly serverAccessLogsBucket?: s3.IBucket;
  /** @default the bucket's construct id, lower-cased, plus "/" */
  readonly serverAccessLogsPrefix?: string;
  /** ACLs stay enabled only where CloudFront standard logging must write. @default BUCKET_OWNER_ENFORCED */
  readonly objectOwnership?: s3.ObjectOwnership;
}

/**
 * A bucket nobody reaches directly: Block Public Access on, SSE-S3 encryption, a bucket policy
 * that denies plain HTTP, and RETAIN on delete so removing a stack never removes its data.
 * Public reads go through CloudFront's Origin Access Control only.
 */
export class PrivateBucket extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: PrivateBucketProps = {}) {
    super(scope, id);
    const lifecycleRules: s3.LifecycleRule[] = [
      { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
    ];
    if (props.expireAfterDays !== undefined) {
      lifecycleRules.push({ id: 'expire', expiration: Duration.days(props.expireAfterDays) });
    }
    if (props.noncurrentVersionExpirationDays !== undefined) {
      lifecycleRules.push({
        id: 'expire-noncurrent-versions',
        noncurrentVersionExpiration: Duration.days(props.noncurrentVersionExpirationDays),
      });
    }
    this.bucket = new s3.Bucket(this, 'Bucket', {
      bucketName: props.bucketName,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      versioned: props.versioned ?? false,
      objectOwnership: props.objectOwnership ?? s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules,
      serverAccessLogsBucket: props.serverAccessLogsBucket,
      serverAccessLogsPrefix: props.serverAccessLogsBucket
        ? (props.serverAccessLogsPrefix ?? `${id.toLowerCase()}/`)
        : undefined,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
