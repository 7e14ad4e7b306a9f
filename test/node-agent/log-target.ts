/**
 * The upload target: s3rver on 127.0.0.1 with a logs bucket, and real presigned POSTs made by the
 * control plane's own createLogUploadPost against it (key prefix, size limit, any Content-Type and
 * Content-Encoding). s3rver does not enforce policies; the agent's keys and headers are asserted.
 */
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogUploadPost } from '../../lambda/adapters/artifacts';
import type { PresignedUpload } from '../../lambda/node-agent/job-spec';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

export const LOGS_BUCKET = 'akanda-ci-logs';

export interface StoredObject {
  body: Buffer;
  contentType: string | undefined;
  /** `gzip`, or empty when the upload said none. */
  contentEncoding: string;
}

export interface LogTarget {
  endpoint: string;
  presign(keyPrefix: string): Promise<PresignedUpload>;
  /** Every object under `prefix`, by key. */
  objects(prefix: string): Promise<Map<string, StoredObject>>;
  close(): Promise<void>;
}

export async function startLogTarget(): Promise<LogTarget> {
  // s3rver ships no types.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as S3rverClass;
  const directory = await mkdtemp(path.join(tmpdir(), 'akanda-ci-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: LOGS_BUCKET, configs: [] }],
  });
  const address = await server.run();
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  return {
    endpoint,
    async presign(keyPrefix) {
      const post = await createLogUploadPost(client, {
        bucket: LOGS_BUCKET,
        keyPrefix,
        expiresSeconds: 600,
        maxBytes: 1024 * 1024 * 1024,
      });
      return { url: post.url, fields: post.fields, keyPrefix, publicUrl: `http://127.0.0.1/${keyPrefix}` };
    },
    async objects(prefix) {
      const found = new Map<string, StoredObject>();
      const listed = await client.send(new ListObjectsV2Command({ Bucket: LOGS_BUCKET, Prefix: prefix }));
      for (const item of listed.Contents ?? []) {
        const key = item.Key as string;
        const object = await client.send(new GetObjectCommand({ Bucket: LOGS_BUCKET, Key: key }));
        const body = Buffer.from(
          await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
        );
        found.set(key, { body, contentType: object.ContentType, contentEncoding: object.ContentEncoding ?? '' });
      }
      return found;
    },
    async close() {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
