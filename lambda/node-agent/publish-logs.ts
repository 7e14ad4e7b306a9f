/**
 * Publishing the log directory: choosing the upload right (a fresh one from `/node/upload`, else,
 * when the API could not answer, the claim's while it lasts), then `index.html` in every directory,
 * then every file through the presigned POST. Resolves to why publishing failed, or undefined when every file is up.
 */
import { describeError, HttpStatusError, isTransient } from './http';
import { writeIndexPages } from './index-html';
import type { PresignedUpload } from './job-spec';
import { uploadDirectory } from './uploader';

export interface PublishOptions {
  log: (line: string) => void;
  retryBudgetMs: number;
  timeoutMs: number;
}

export async function publishLogs(
  logDir: string,
  upload: PresignedUpload,
  options: PublishOptions,
): Promise<string | undefined> {
  try {
    await writeIndexPages(logDir, upload.keyPrefix);
    const summary = await uploadDirectory(logDir, upload, options);
    options.log(`uploaded ${summary.uploaded} files (${summary.bytes} bytes) to ${upload.publicUrl}`);
    if (summary.failed.length > 0) {
      return `${summary.failed.length} of ${summary.failed.length + summary.uploaded} log files could not be uploaded`;
    }
    return undefined;
  } catch (error) {
    return `publishing the logs failed: ${describeError(error)}`;
  }
}

export type UploadChoice = { upload: PresignedUpload; fresh: boolean } | { error: string };

/**
 * The upload to publish with. The claim-time POST was signed with the control plane's temporary
 * credentials and may be dead after a long job, so a fresh one is asked for first. Only when the
 * node API could not answer (network error, timeout, 408/429/5xx after the retries) is the claim's
 * used, and only while its policy has not expired. A refusal (401, 409 or any other 4xx) means the
 * attempt is over: after a requeue the next attempt's logs take the same key prefix, so nothing is
 * uploaded. A fresh POST for another key prefix is not used: the index pages and the report's URL
 * name the claim's.
 */
export async function chooseUpload(
  claimed: PresignedUpload,
  fetchFresh: () => Promise<PresignedUpload>,
  log: (line: string) => void,
  now: number = Date.now(),
): Promise<UploadChoice> {
  let why: string;
  try {
    const fresh = await fetchFresh();
    if (fresh.keyPrefix === claimed.keyPrefix) return { upload: fresh, fresh: true };
    why = 'the fresh upload is for another key prefix';
  } catch (error) {
    if (error instanceof HttpStatusError && !isTransient(error)) {
      return {
        error:
          `not uploading the logs: the node API refused the upload (${error.status}); ` +
          'this attempt is over and its log prefix may belong to the next attempt',
      };
    }
    why = describeError(error);
  }
  const expiresAt = policyExpiresAt(claimed);
  if (expiresAt !== undefined && expiresAt <= now) {
    return {
      error: `no upload right: no fresh one (${why}) and the claim's expired at ${new Date(expiresAt).toISOString()}`,
    };
  }
  log(`no fresh upload (${why}); using the one from the claim`);
  return { upload: claimed, fresh: false };
}

/**
 * When an S3 presigned POST stops working: the `expiration` of its base64 JSON policy (epoch ms);
 * undefined when there is no readable policy (then only trying tells).
 */
export function policyExpiresAt(upload: PresignedUpload): number | undefined {
  const policy = upload.fields.Policy ?? upload.fields.policy;
  if (policy === undefined) return undefined;
  try {
    const expiration = (JSON.parse(Buffer.from(policy, 'base64').toString('utf8')) as { expiration?: unknown })
      .expiration;
    const at = typeof expiration === 'string' ? Date.parse(expiration) : NaN;
    return Number.isFinite(at) ? at : undefined;
  } catch {
    return undefined;
  }
}
