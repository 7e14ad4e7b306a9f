/**
 * The S3 side of publishing the appliance image: read a build's artifacts from the logs bucket,
 * copy them into the images bucket, invalidate the CDN's cached latest image. The same code runs on
 * S3 (with CloudFront) and on s3rver (no CDN locally).
 */
import { CloudFrontClient, CreateInvalidationCommand } from '@aws-sdk/client-cloudfront';
import { CopyObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

/** What was hashed: the digest and the ETag of that very object version (from the same GetObject). */
export interface HashedObject {
  sha256: string;
  etag: string;
}

/** The node may still hold an upload right for its prefix: the copy must be of the object that was hashed. */
export class SourceChangedError extends Error {
  constructor(readonly key: string) {
    super(`${key} changed after it was hashed`);
    this.name = 'SourceChangedError';
  }
}

export interface ImagePublisher {
  /** A small text object from the logs bucket (the .sha256 file), refused above `maxBytes`. */
  readLogText(key: string, maxBytes: number): Promise<string>;
  /** sha256 (hex) of a logs-bucket object, streamed (an image is hundreds of MiB), with its ETag. */
  hashLogObject(key: string): Promise<HashedObject>;
  /**
   * Copies a logs-bucket object into the images bucket; with `sourceEtag`, only if the source still
   * has that ETag (S3's CopySourceIfMatch), else throws SourceChangedError.
   */
  copyToImages(sourceKey: string, targetKey: string, contentType: string, sourceEtag?: string): Promise<void>;
  /** A small text object from the images bucket (a `latest.json`); undefined when there is none. */
  readImageText(key: string, maxBytes: number): Promise<string | undefined>;
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

function isPreconditionFailed(error: unknown): boolean {
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'PreconditionFailed' || $metadata?.httpStatusCode === 412;
}

export function s3ImagePublisher(options: S3ImagePublisherOptions): ImagePublisher {
  const { s3, logsBucket, imagesBucket } = options;
  async function readText(bucket: string, key: string, maxBytes: number): Promise<string> {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if ((object.ContentLength ?? 0) > maxBytes) throw new Error(`${key} is larger than ${maxBytes} bytes`);
    return (await object.Body?.transformToString('utf8')) ?? '';
  }
  return {
    readLogText: (key, maxBytes) => readText(logsBucket, key, maxBytes),
    async hashLogObject(key) {
      const object = await s3.send(new GetObjectCommand({ Bucket: logsBucket, Key: key }));
      if (!object.ETag) throw new Error(`${key} was served without an ETag`);
      const hash = createHash('sha256');
      for await (const chunk of object.Body as Readable) hash.update(chunk as Buffer);
      return { sha256: hash.digest('hex'), etag: object.ETag };
    },
    async copyToImages(sourceKey, targetKey, contentType, sourceEtag) {
      try {
        await s3.send(
          new CopyObjectCommand({
            Bucket: imagesBucket,
            Key: targetKey,
            CopySource: `${logsBucket}/${sourceKey.split('/').map(encodeURIComponent).join('/')}`,
            ...(sourceEtag === undefined ? {} : { CopySourceIfMatch: sourceEtag }),
            MetadataDirective: 'REPLACE',
            ContentType: contentType,
          }),
        );
      } catch (error) {
        if (sourceEtag !== undefined && isPreconditionFailed(error)) throw new SourceChangedError(sourceKey);
        throw error;
      }
    },
    async readImageText(key, maxBytes) {
      try {
        return await readText(imagesBucket, key, maxBytes);
      } catch (error) {
        if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
        throw error;
      }
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
