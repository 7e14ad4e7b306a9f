import { Duration } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Served on every log: no script, no same-origin access, whatever the uploaded Content-Type. */
export const LOGS_CONTENT_SECURITY_POLICY = 'sandbox';

export interface PublicCdnProps {
  /**
   * Holds the latest image and its manifest at the root, `images/<branch>/<revision>/...`, each
   * branch's rolling image at `images/<branch>/<latestImageName>` (+ `.sha256`, `latest.json`), and `agent/`.
   */
  readonly imagesBucket: s3.IBucket;
  /** Holds `logs/...` (the key layout is the URL layout). */
  readonly logsBucket: s3.IBucket;
  /** Where CloudFront writes its standard access logs. */
  readonly accessLogsBucket: s3.IBucket;
  /** File name of the rolling image (config appliance.latestImageName). @default akanda-appliance-latest.qcow2 */
  readonly latestImageName?: string;
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
 * - `/<latestImageName>`, its `.sha256`, `/latest.json`, and the same three under `/images/<branch>/`:
 *   short TTL, so a publish shows up fast (the publisher also invalidates them);
 * - `/images/<branch>/<revision>/...`: immutable, cached long;
 * - `/agent/...`: never cached, so nodes always get the archive whose hash their user data holds;
 * - `/logs/.../`: browsable; a directory URL serves its `index.html`. A patch under test chooses its
 *   logs' Content-Type, so they are served with `Content-Security-Policy: sandbox` and `nosniff`:
 *   an uploaded HTML page runs no script and reads nothing of this origin (the images, the agent).
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
    // The managed SECURITY_HEADERS policy's headers, plus the sandbox: one policy per behaviour.
    const logsHeaders = new cloudfront.ResponseHeadersPolicy(this, 'LogsHeaders', {
      comment: 'akanda-ci: CI logs are untrusted content, sandboxed',
      securityHeadersBehavior: {
        contentSecurityPolicy: { contentSecurityPolicy: LOGS_CONTENT_SECURITY_POLICY, override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.SAMEORIGIN, override: true },
        referrerPolicy: {
          referrerPolicy: cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
          override: true,
        },
        strictTransportSecurity: { accessControlMaxAge: Duration.days(365), override: true },
        xssProtection: { protection: true, modeBlock: true, override: true },
      },
    });
    const latestName = props.latestImageName ?? 'akanda-appliance-latest.qcow2';
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
      // Order matters: CloudFront takes the first matching pattern, and `*` also matches `/`.
      additionalBehaviors: {
        [`/images/*/${latestName}*`]: { origin: imagesOrigin, cachePolicy: latestPolicy, ...common },
        '/images/*/latest.json': { origin: imagesOrigin, cachePolicy: latestPolicy, ...common },
        '/images/*': { origin: imagesOrigin, cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED, ...common },
        '/agent/*': { origin: imagesOrigin, cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED, ...common },
        '/logs/*': {
          origin: logsOrigin,
          cachePolicy: logsPolicy,
          functionAssociations: [{ function: directoryIndex, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
          ...common,
          responseHeadersPolicy: logsHeaders,
        },
      },
    });
    this.baseUrl = `https://${this.distribution.distributionDomainName}`;
  }
}
