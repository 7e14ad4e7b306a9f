/**
 * Small HTTP client on node:http(s): the agent must run on the Ubuntu nodejs (18) without the
 * experimental fetch, bound every request by a timeout, and never hang on a dead peer.
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  method: string;
  headers?: Record<string, string | number>;
  body?: string | Buffer;
  timeoutMs: number;
  /** Response bodies beyond this are cut off (the agent never needs large responses). */
  maxBodyBytes?: number;
}

/** A reply with a status the caller did not want. */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpStatusError';
  }
}

export function httpRequest(url: string, options: RequestOptions): Promise<HttpResponse> {
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? https : http;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  return new Promise((resolve, reject) => {
    const req = transport.request(target, { method: options.method, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size < maxBodyBytes) {
          chunks.push(chunk.subarray(0, maxBodyBytes - size));
        }
        size += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Retry network failures, throttling and server errors; anything else is an answer. */
export function isTransient(error: unknown): boolean {
  if (error instanceof HttpStatusError) {
    return error.status >= 500 || error.status === 429 || error.status === 408;
  }
  return true;
}

export interface RetryOptions {
  /** Give up once this much time has passed since the first attempt. */
  budgetMs: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Stop early (the agent is shutting down). */
  signal?: AbortSignal;
  onRetry?: (error: unknown, delayMs: number) => void;
}

/** Runs `attempt` until it succeeds, fails permanently, or the time budget is spent. */
export async function withRetries<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const started = Date.now();
  let delay = options.initialDelayMs ?? 500;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      const remaining = options.budgetMs - (Date.now() - started);
      if (!isTransient(error) || remaining <= 0 || options.signal?.aborted) {
        throw error;
      }
      const wait = Math.min(delay, remaining);
      options.onRetry?.(error, wait);
      await sleep(wait, options.signal);
      delay = Math.min(delay * 2, options.maxDelayMs ?? 30_000);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A URL fit for a log line: user info, query and fragment removed (they may carry credentials). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    parsed.search = '';
    parsed.hash = '';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** One line describing a failed request, without its body (which could echo what was sent). */
export function describeError(error: unknown): string {
  if (error instanceof HttpStatusError) {
    return error.message;
  }
  // Duck-typed: errors from another realm (a vm context) fail `instanceof Error`.
  if (typeof error === 'object' && error !== null && typeof (error as Error).message === 'string') {
    const { code, message } = error as NodeJS.ErrnoException;
    return typeof code === 'string' ? `${code}: ${message}` : message;
  }
  return String(error);
}
