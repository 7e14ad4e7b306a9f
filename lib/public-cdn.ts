import { Duration } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface PublicCdnProps {
  /** Holds the latest image and its manifest at the root, `images/<version>/...` and `agent/`. */
  readonly imagesBucket: s3.IBucket;
  /** Holds `logs/...` (the key layout is the URL layout). */
  readonly logsBucket: s3.IBucket;
  /** Where CloudFront writes its standard access logs. */
  readonly accessLogsBucket: s3.IBucket;
  /**
   * How long an edge may serve the rolling image and `latest.json` after a publish; the publisher
   * also invalidates them. @default 60 seconds
   */
  readonly latestTtl?: Duration;
  /** @default 5 minutes */
  readonly logsTtl?: Duration;
}

/**
 * One CloudFront distribution in front of both buckets, through Origin Access Control (the
 * buckets stay private), HTTPS only. Paths:
 * - `/<latestImageName>`, its `.sha256`, `/latest.json`: short TTL, so a publish shows up fast;
 * - `/images/<version>/...`: immutable, cached long;
 * - `/agent/...`: never cached, so nodes always get the archive whose hash their user data holds;
 * - `/logs/.../`: browsable; a directory URL serves its `index.html`.
 */
export class PublicCdn extends Construct {
  readonly distribution: cloudfront.Distribution;
  /** `https://<distribution domain>` without a trailing slash. */
  readonly baseUrl: string;

  constructor(scope: Construct, id: string, props: PublicCdnProps) {
    super(scope, id);
    const imagesOrigin = origins.S3BucketOrigin.withOriginAccessControl(props.imagesBucket);
    const logsOrigin = origins.S3BucketOrigin.withOriginAccessControl(props.logsBucket);
    const latestTtl = props.latestTtl ?? Duration.seconds(60);
    const latestPolicy = new cloudfront.CachePolicy(this, 'LatestCache', {
      comment: 'akanda-ci: rolling image and manifest, short TTL so publishes show up fast',
      defaultTtl: latestTtl,
      maxTtl: latestTtl,
      minTtl: Duration.seconds(0),
      enableAcceptEncodingGzip: true,
      enableAcceptEncodingBrotli: true,
    });
    const logsTtl = props.logsTtl ?? Duration.minutes(5);
    const logsPolicy = new cloudfront.CachePolicy(this, 'LogsCache', {
      comment: 'akanda-ci: CI logs, short TTL because index pages are rewritten as builds finish',
      defaultTtl: logsTtl,
      maxTtl: logsTtl,
      minTtl: Duration.seconds(0),
      enableAcceptEncodingGzip: true,
      enableAcceptEncodingBrotli: true,
    });
    const directoryIndex = new cloudfront.Function(this, 'DirectoryIndex', {
      comment: 'akanda-ci: serve index.html for log directory URLs',
      runtime: cloudfront.FunctionRuntime.JS_2_0,
      code: cloudfront.FunctionCode.fromInline(
        [
          'function handler(event) {',
          '  var request = event.request;',
          "  if (request.uri.endsWith('/')) request.uri += 'index.html';",
          '  return request;',
          '}',
        ].join('\n'),
      ),
    });
    const common = {
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
      compress: true,
      responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
    };
    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'akanda-ci images and logs',
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      enableLogging: true,
      logBucket: props.accessLogsBucket,
      logFilePrefix: 'cloudfront/',
      defaultBehavior: { origin: imagesOrigin, cachePolicy: latestPolicy, ...common },
      additionalBehaviors: {
        '/images/*': { origin: imagesOrigin, cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED, ...common },
        '/agent/*': { origin: imagesOrigin, cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED, ...common },
        '/logs/*': {
          origin: logsOrigin,
          cachePolicy: logsPolicy,
          functionAssociations: [{ function: directoryIndex, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
          ...common,
        },
      },
    });
    this.baseUrl = `https://${this.distribution.distributionDomainName}`;
  }
}
