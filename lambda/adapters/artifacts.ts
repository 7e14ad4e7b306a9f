/**
 * The log store: where a build's logs live (docs/design.md "Log layout"), the upload right a node
 * gets for them, and the public URL they are read from.
 *
 * A node is untrusted: all it gets is a presigned POST whose policy only accepts keys under its
 * own build's prefix, up to a size limit, for a short time. It never holds AWS credentials.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';

export interface S3ClientOptions {
  region?: string;
  /** e.g. `http://127.0.0.1:4569` for s3rver; implies path-style addressing. */
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Only for local emulators; in AWS the Lambda role's credentials are used. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export function createS3Client(options: S3ClientOptions = {}): S3Client {
  return new S3Client({
    region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });
}

export type LogLocation =
  | { pipeline: 'check' | 'gate'; change: number; patchset: number; job: string; buildId: string }
  | { pipeline: 'post'; project: string; revision: string; job: string; buildId: string };

/** Characters of the build id used in the log path (Zuul uses 7 of the build uuid). */
export const BUILD_ID_PREFIX_LENGTH = 7;

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const PROJECT_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const BUILD_ID = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const REVISION = /^[0-9a-f]{40}$/;

/** Bad input to the log layout: the message says which part. */
export class LogLocationError extends Error {
  override readonly name = 'LogLocationError';
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new LogLocationError(`${what} must be a positive integer`);
  return value;
}

/**
 * The S3 key prefix (and URL path) of one build's logs, ending in `/`:
 * `logs/<NN>/<change>/<patchset>/<pipeline>/<job>/<build>/` for changes (NN = last two digits of
 * the change, OpenStack's convention) and `logs/post/<project>/<revision>/<job>/<build>/` for post.
 * Every part is validated, so a prefix never holds `..`, an empty segment or a leading slash.
 */
export function logKeyPrefix(location: LogLocation): string {
  if (!JOB_NAME.test(location.job) || location.job.includes('..')) {
    throw new LogLocationError(`unsafe job name ${JSON.stringify(location.job.slice(0, 80))}`);
  }
  if (!BUILD_ID.test(location.buildId) || location.buildId.length < BUILD_ID_PREFIX_LENGTH) {
    throw new LogLocationError(`build id must be at least ${BUILD_ID_PREFIX_LENGTH} letters, digits or "-"`);
  }
  const build = location.buildId.slice(0, BUILD_ID_PREFIX_LENGTH);
  if (location.pipeline === 'post') {
    const segments = location.project.split('/');
    if (location.project.length > 255 || !segments.every((s) => PROJECT_SEGMENT.test(s) && !s.includes('..'))) {
      throw new LogLocationError(`unsafe project name ${JSON.stringify(location.project.slice(0, 80))}`);
    }
    if (!REVISION.test(location.revision)) throw new LogLocationError('revision must be 40 lowercase hex digits');
    return `logs/post/${location.project}/${location.revision}/${location.job}/${build}/`;
  }
  if (location.pipeline !== 'check' && location.pipeline !== 'gate') {
    throw new LogLocationError(`unknown pipeline ${JSON.stringify(String(location.pipeline).slice(0, 20))}`);
  }
  const change = positiveInteger(location.change, 'change');
  const patchset = positiveInteger(location.patchset, 'patchset');
  const nn = String(change % 100).padStart(2, '0');
  return `logs/${nn}/${change}/${patchset}/${location.pipeline}/${location.job}/${build}/`;
}

/**
 * The public URL of a key (or key prefix) under `PUBLIC_BASE_URL` (CloudFront in AWS,
 * `http://127.0.0.1:<port>` locally). Each segment is percent-encoded; slashes are kept.
 */
export function publicLogUrl(publicBaseUrl: string, key: string): string {
  if (key.startsWith('/') || key.split('/').some((segment) => segment === '..' || segment === '.')) {
    throw new LogLocationError('key must be relative and must not contain "." or ".." segments');
  }
  const base = publicBaseUrl.replace(/\/+$/, '');
  return `${base}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

export interface LogUploadRequest {
  bucket: string;
  /** From logKeyPrefix; must end in `/`. */
  keyPrefix: string;
  expiresSeconds: number;
  /** Per file: S3 applies a POST policy's content-length-range to each upload. */
  maxBytes: number;
}

export interface LogUploadPost {
  /**
   * POST a multipart form here: `fields`, then `key` (must start with keyPrefix), `Content-Type`,
   * `Content-Encoding` (`gzip` or empty; always present: S3 fails a condition whose field is missing), then `file`.
   */
  url: string;
  fields: Record<string, string>;
  keyPrefix: string;
}

/**
 * A presigned POST that lets a node upload any number of files, each under `keyPrefix`, each at
 * most `maxBytes`, until it expires. The node sets `key` per file (the `${filename}` default
 * would land every file at the prefix), any `Content-Type` (so browsers render text and HTML) and
 * `Content-Encoding` (`gzip` for `stack.sh.txt.gz`, so browsers inflate and show it). S3 has no
 * condition for "gzip or nothing", so any value passes; it can mislabel only the node's own files,
 * as a wrong Content-Type already could.
 */
export async function createLogUploadPost(client: S3Client, request: LogUploadRequest): Promise<LogUploadPost> {
  const { bucket, keyPrefix, expiresSeconds, maxBytes } = request;
  if (!keyPrefix.endsWith('/') || keyPrefix.startsWith('/') || keyPrefix.split('/').includes('..')) {
    throw new LogLocationError('key prefix must end in "/", must not start with "/" and must not contain ".."');
  }
  if (!Number.isSafeInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > 7 * 24 * 3600) {
    throw new LogLocationError('expiresSeconds must be between 1 s and 7 days (the SigV4 limit)');
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new LogLocationError('maxBytes must be positive');
  const post = await createPresignedPost(client, {
    Bucket: bucket,
    Key: `${keyPrefix}\${filename}`,
    Conditions: [
      ['starts-with', '$key', keyPrefix],
      ['content-length-range', 0, maxBytes],
      ['starts-with', '$Content-Type', ''],
      ['starts-with', '$Content-Encoding', ''],
    ],
    Expires: expiresSeconds,
  });
  return { url: post.url, fields: post.fields, keyPrefix };
}

export interface LogArtifactsOptions {
  client: S3Client;
  bucket: string;
  /** `PUBLIC_BASE_URL` (CloudFront) in AWS, the local server's `http://127.0.0.1:<port>` locally. */
  publicBaseUrl: string;
  /** Per uploaded file. Default 2 GiB: a qcow2 appliance image is published through the same upload. */
  maxBytes?: number;
}

export const DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024 * 1024 * 1024;

/** The control plane's view of the log store (ArtifactsPort in lambda/control/ports.ts). */
export function createLogArtifacts(options: LogArtifactsOptions) {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  return {
    async logUpload(keyPrefix: string, expiresSeconds: number) {
      const post = await createLogUploadPost(options.client, {
        bucket: options.bucket,
        keyPrefix,
        expiresSeconds,
        maxBytes,
      });
      return { ...post, publicUrl: publicLogUrl(options.publicBaseUrl, keyPrefix) };
    },
    publicUrl(keyPrefix: string): string {
      return publicLogUrl(options.publicBaseUrl, keyPrefix);
    },
  };
}
