/**
 * Publishing the log directory: `index.html` in every directory, then every file through the
 * presigned POST. Resolves to why publishing failed, or undefined when every file is up.
 */
import { describeError } from './http';
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
