/**
 * The S3 side of publishing the appliance image: read a build's artifacts from the logs bucket,
 * copy them into the images bucket, invalidate the CDN's cached latest image. The same code runs on
 * S3 (with CloudFront) and on s3rver (no CDN locally).
 */
import { CloudFrontClient, CreateInvalidationCommand } from '@aws-sdk/client-cloudfront';
import { CopyObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

export interface ImagePublisher {
  /** A small text object from the logs bucket (the .sha256 file), refused above `maxBytes`. */
  readLogText(key: string, maxBytes: number): Promise<string>;
  /** sha256 (hex) of a logs-bucket object, streamed: an image is hundreds of MiB. */
  hashLogObject(key: string): Promise<string>;
  copyToImages(sourceKey: string, targetKey: string, contentType: string): Promise<void>;
  putImageText(key: string, text: string, contentType: string): Promise<void>;
  /** Paths of the public site whose cached copies must go (no-op without a CDN). */
  invalidate(paths: readonly string[]): Promise<void>;
}

export interface S3ImagePublisherOptions {
  s3: S3Client;
  logsBucket: string;
  imagesBucket: string;
  cloudFront?: { client: CloudFrontClient; distributionId: string };
}

export function s3ImagePublisher(options: S3ImagePublisherOptions): ImagePublisher {
  const { s3, logsBucket, imagesBucket } = options;
  return {
    async readLogText(key, maxBytes) {
      const object = await s3.send(new GetObjectCommand({ Bucket: logsBucket, Key: key }));
      if ((object.ContentLength ?? 0) > maxBytes) throw new Error(`${key} is larger than ${maxBytes} bytes`);
      return (await object.Body?.transformToString('utf8')) ?? '';
    },
    async hashLogObject(key) {
      const object = await s3.send(new GetObjectCommand({ Bucket: logsBucket, Key: key }));
      const hash = createHash('sha256');
      for await (const chunk of object.Body as Readable) hash.update(chunk as Buffer);
      return hash.digest('hex');
    },
    async copyToImages(sourceKey, targetKey, contentType) {
      await s3.send(
        new CopyObjectCommand({
          Bucket: imagesBucket,
          Key: targetKey,
          CopySource: `${logsBucket}/${sourceKey.split('/').map(encodeURIComponent).join('/')}`,
          MetadataDirective: 'REPLACE',
          ContentType: contentType,
        }),
      );
    },
    async putImageText(key, text, contentType) {
      await s3.send(new PutObjectCommand({ Bucket: imagesBucket, Key: key, Body: text, ContentType: contentType }));
    },
    async invalidate(paths) {
      if (!options.cloudFront || paths.length === 0) return;
      await options.cloudFront.client.send(
        new CreateInvalidationCommand({
          DistributionId: options.cloudFront.distributionId,
          InvalidationBatch: {
            CallerReference: `akanda-ci-${Date.now()}`,
            Paths: { Quantity: paths.length, Items: [...paths] },
          },
        }),
      );
    },
  };
}
