/**
 * Uploads the log directory through the S3 presigned POST the claim returned: one
 * multipart/form-data request per file, the policy fields first, then `key`, `Content-Type`,
 * `Content-Encoding` and the file, streamed from disk with an exact Content-Length (S3 needs it;
 * images are large).
 *
 * The policy limits keys to `keyPrefix`, so every key is `keyPrefix` + the file's path below the
 * log directory. Text logs get `text/plain; charset=utf-8` so browsers show them instead of
 * downloading them; so do gzipped ones (`stack.sh.txt.gz`), stored with `Content-Encoding: gzip`
 * so that the browser inflates them (docs/design.md "Log layout").
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { describeError, HttpStatusError, withRetries } from './http';
import type { PresignedUpload } from './job-spec';

const CONTENT_TYPES: Record<string, string> = {
  '.txt': 'text/plain; charset=utf-8',
  '.log': 'text/plain; charset=utf-8',
  '.conf': 'text/plain; charset=utf-8',
  '.cfg': 'text/plain; charset=utf-8',
  '.ini': 'text/plain; charset=utf-8',
  '.yaml': 'text/plain; charset=utf-8',
  '.yml': 'text/plain; charset=utf-8',
  '.sh': 'text/plain; charset=utf-8',
  '.py': 'text/plain; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.gz': 'application/gzip',
  '.qcow2': 'application/octet-stream',
};

const CONSOLE_LOG = 'job-output.txt';

export function contentTypeFor(fileName: string): string {
  return CONTENT_TYPES[path.extname(fileName).toLowerCase()] ?? 'application/octet-stream';
}

/** The headers S3 stores with a file and serves it with. */
export interface StoredAs {
  contentType: string;
  /** `gzip` for a gzipped text log, else empty: no encoding (see postFile for why it is always sent). */
  contentEncoding: '' | 'gzip';
}

/** Types a browser shows rather than downloads; only these are worth inflating in the browser. */
function isBrowsable(contentType: string): boolean {
  return contentType.startsWith('text/') || contentType === 'application/json' || contentType === 'application/xml';
}

/**
 * `<name>.<text extension>.gz` whose content starts like gzip is stored as the text it holds,
 * gzip-encoded. Everything else keeps the type of its own name: archives (`x.tar.gz`), images
 * (`x.qcow2.gz`), a twice-gzipped file (one encoding would leave gzip bytes on screen) and a
 * `.gz` that is not gzip at all (the browser would fail to inflate it) stay downloads.
 */
export function storedAs(fileName: string, looksGzipped: boolean): StoredAs {
  if (looksGzipped && fileName.toLowerCase().endsWith('.gz')) {
    const inner = contentTypeFor(fileName.slice(0, -'.gz'.length));
    if (isBrowsable(inner)) return { contentType: inner, contentEncoding: 'gzip' };
  }
  return { contentType: contentTypeFor(fileName), contentEncoding: '' };
}

/** Whether the file begins with gzip's magic bytes (RFC 1952); read only for `*.gz` names. */
async function startsLikeGzip(filePath: string): Promise<boolean> {
  const handle = await open(filePath, 'r').catch(() => undefined);
  if (handle === undefined) return false;
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await handle.read(magic, 0, 2, 0);
    return bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } catch {
    return false;
  } finally {
    await handle.close();
  }
}

export interface UploadOptions {
  log: (line: string) => void;
  /** Total time spent retrying one file. */
  retryBudgetMs?: number;
  initialRetryDelayMs?: number;
  /** Per request without progress. */
  timeoutMs?: number;
  concurrency?: number;
  /** Once this many files failed despite retries, the rest are not attempted. */
  giveUpAfterFailures?: number;
}

export interface UploadSummary {
  uploaded: number;
  bytes: number;
  /** Keys that could not be uploaded, with why. */
  failed: { key: string; error: string }[];
}

/** Form-data header text: quotes and line breaks in names would end the header early. */
function quoteHeaderValue(value: string): string {
  return value.replace(/[\r\n"\\]/g, (c) => encodeURIComponent(c));
}

function fieldPart(boundary: string, name: string, value: string): string {
  return `--${boundary}\r\nContent-Disposition: form-data; name="${quoteHeaderValue(name)}"\r\n\r\n${value}\r\n`;
}

/**
 * One POST of one file; resolves on 2xx, rejects with HttpStatusError (S3's error code) otherwise.
 * `Content-Encoding` goes into every form, empty when there is none: S3 fails a policy condition
 * whose field the form lacks, and the policy has one for it (lambda/adapters/artifacts.ts).
 */
export function postFile(
  upload: PresignedUpload,
  key: string,
  filePath: string,
  size: number,
  stored: StoredAs,
  timeoutMs: number,
): Promise<void> {
  const boundary = `----akanda-ci-${randomBytes(12).toString('hex')}`;
  const fields = Object.entries(upload.fields).filter(([name]) => name.toLowerCase() !== 'key');
  const head = Buffer.from(
    fields.map(([name, value]) => fieldPart(boundary, name, value)).join('') +
      fieldPart(boundary, 'key', key) +
      fieldPart(boundary, 'Content-Type', stored.contentType) +
      fieldPart(boundary, 'Content-Encoding', stored.contentEncoding) +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload"\r\n` +
      `Content-Type: ${stored.contentType}\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const target = new URL(upload.url);
  const transport = target.protocol === 'https:' ? https : http;

  return new Promise((resolve, reject) => {
    const req = transport.request(
      target,
      {
        method: 'POST',
        headers: {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': head.length + size + tail.length,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          if (chunks.length < 16) chunks.push(chunk);
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve();
            return;
          }
          const code = /<Code>([^<]{1,100})<\/Code>/.exec(Buffer.concat(chunks).toString('utf8'))?.[1];
          reject(new HttpStatusError(status, `upload answered ${status}${code ? ` ${code}` : ''}`));
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`upload made no progress within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.write(head);
    if (size === 0) {
      req.end(tail);
      return;
    }
    // Read exactly the size announced in Content-Length, even if the file grew since.
    const file = createReadStream(filePath, { start: 0, end: size - 1 });
    file.on('error', (error) => req.destroy(error));
    file.on('end', () => req.end(tail));
    file.pipe(req, { end: false });
  });
}

interface LocalFile {
  relative: string;
  absolute: string;
  size: number;
}

/** Regular files below `dir`; symbolic links are skipped (they could point anywhere on the node). */
async function listFiles(dir: string, prefix = ''): Promise<LocalFile[]> {
  const files: LocalFile[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const absolute = path.join(dir, name);
    // A name that is not valid UTF-8 reads back mangled and cannot be opened: it is left out.
    const stats = await lstat(absolute).catch(() => undefined);
    if (stats === undefined) {
      continue;
    }
    if (stats.isDirectory()) {
      files.push(...(await listFiles(absolute, `${prefix}${name}/`)));
    } else if (stats.isFile()) {
      files.push({ relative: `${prefix}${name}`, absolute, size: stats.size });
    }
  }
  return files;
}

/** Uploads every regular file below `dir` to `<keyPrefix><path>`, a few at a time, retrying transient failures. */
export async function uploadDirectory(
  dir: string,
  upload: PresignedUpload,
  options: UploadOptions,
): Promise<UploadSummary> {
  // The console log first: if the target fails part way, it is the one file worth having.
  const files = (await listFiles(dir)).sort(
    (a, b) => Number(b.relative === CONSOLE_LOG) - Number(a.relative === CONSOLE_LOG),
  );
  const summary: UploadSummary = { uploaded: 0, bytes: 0, failed: [] };
  const giveUpAfter = options.giveUpAfterFailures ?? 3;
  let next = 0;
  let gaveUp = false;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++];
      const key = `${upload.keyPrefix}${file.relative}`;
      // With the target failing file after file, retrying each one would keep the node up for hours.
      if (summary.failed.length >= giveUpAfter) {
        if (!gaveUp) {
          options.log(`${summary.failed.length} files failed to upload; not attempting the rest`);
          gaveUp = true;
        }
        summary.failed.push({ key, error: 'not attempted after repeated upload failures' });
        continue;
      }
      try {
        const gzipName = file.relative.toLowerCase().endsWith('.gz');
        const stored = storedAs(file.relative, gzipName && (await startsLikeGzip(file.absolute)));
        await withRetries(() => postFile(upload, key, file.absolute, file.size, stored, options.timeoutMs ?? 120_000), {
          budgetMs: options.retryBudgetMs ?? 120_000,
          initialDelayMs: options.initialRetryDelayMs ?? 1000,
          onRetry: (error, delay) =>
            options.log(
              `upload of ${JSON.stringify(file.relative)} failed (${describeError(error)}); retrying in ${delay} ms`,
            ),
        });
        summary.uploaded++;
        summary.bytes += file.size;
      } catch (error) {
        const why = describeError(error);
        options.log(`upload of ${JSON.stringify(file.relative)} failed: ${why}`);
        summary.failed.push({ key, error: why });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, () => worker()));
  return summary;
}
