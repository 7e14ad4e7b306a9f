/**
 * The node side of the node API (docs/design.md "Node API"): claim, heartbeat, upload and result.
 * Tokens go in request bodies only, never in URLs or log lines.
 */
import { parseClaimResponse, uploadSchema, type ClaimedJob, type PresignedUpload } from './job-spec';
import { describeError, httpRequest, HttpStatusError, redactUrl, withRetries } from './http';

export type NodeResult = 'SUCCESS' | 'FAILURE' | 'ERROR' | 'INTERRUPTED';

export interface NodeApiOptions {
  apiUrl: string;
  timeoutMs: number;
  log: (line: string) => void;
}

/** The claim was answered and refused: retrying cannot help. */
export class ClaimRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ClaimRefusedError';
  }
}

function endpoint(apiUrl: string, path: string): string {
  return `${apiUrl.replace(/\/+$/, '')}${path}`;
}

async function postJson(options: NodeApiOptions, path: string, body: unknown): Promise<unknown> {
  const url = endpoint(options.apiUrl, path);
  const response = await httpRequest(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    timeoutMs: options.timeoutMs,
  });
  if (response.status < 200 || response.status > 299) {
    throw new HttpStatusError(response.status, `POST ${redactUrl(url)} answered ${response.status}`);
  }
  const text = response.body.toString('utf8');
  if (text.trim() === '') {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`POST ${redactUrl(url)} answered ${response.status} with a body that is not JSON`);
  }
}

const CLAIM_REFUSALS: Record<number, string> = {
  401: 'wrong claim token',
  403: 'forbidden',
  404: 'unknown build',
  409: 'build already claimed or not claimable',
};

/** `POST /node/claim`; retries while the API is unreachable or failing, up to `budgetMs`. */
export async function claimJob(
  options: NodeApiOptions,
  buildId: string,
  claimToken: string,
  budgetMs: number,
  signal?: AbortSignal,
): Promise<ClaimedJob> {
  try {
    const body = await withRetries(() => postJson(options, '/node/claim', { buildId, claimToken }), {
      budgetMs,
      signal,
      onRetry: (error, delay) => options.log(`claim failed (${describeError(error)}); retrying in ${delay} ms`),
    });
    return parseClaimResponse(body);
  } catch (error) {
    if (error instanceof HttpStatusError && error.status >= 400 && error.status < 500) {
      const why = CLAIM_REFUSALS[error.status] ?? 'refused';
      throw new ClaimRefusedError(error.status, `claim refused (${error.status}): ${why}`);
    }
    throw error;
  }
}

/** `POST /node/result`; idempotent on the server, so retrying after a lost answer is safe. */
export async function reportResult(
  options: NodeApiOptions,
  report: { buildId: string; resultToken: string; result: NodeResult; elapsedSeconds: number; summary?: string },
  budgetMs: number,
): Promise<void> {
  await withRetries(() => postJson(options, '/node/result', report), {
    budgetMs,
    onRetry: (error, delay) => options.log(`result report failed (${describeError(error)}); retrying in ${delay} ms`),
  });
}

/**
 * `POST /node/upload`: a fresh presigned POST for the logs, asked for right before publishing them
 * (the claim-time one may have expired during a long job). Retries transient failures within
 * `budgetMs`; a refusal (401, 409) or an answer that is not an upload throws at once.
 */
export async function requestUpload(
  options: NodeApiOptions,
  request: { buildId: string; resultToken: string },
  budgetMs: number,
): Promise<PresignedUpload> {
  const body = await withRetries(() => postJson(options, '/node/upload', request), {
    budgetMs,
    onRetry: (error, delay) => options.log(`upload request failed (${describeError(error)}); retrying in ${delay} ms`),
  });
  const parsed = uploadSchema.safeParse((body as { upload?: unknown } | undefined)?.upload);
  if (!parsed.success) {
    // Field paths only: the fields of a presigned POST are credentials.
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'upload'}: ${issue.message}`);
    throw new Error(`invalid upload response: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/**
 * `POST /node/heartbeat` every `intervalMs` until stopped; failures are logged, never fatal.
 * The answer carries the build's state, so the agent learns when its build was ended elsewhere.
 */
export function startHeartbeat(
  options: NodeApiOptions,
  buildId: string,
  resultToken: string,
  intervalMs: number,
  onState: (state: string) => void = () => undefined,
): { stop(): void } {
  let stopped = false;
  let failing = false;
  let timer: NodeJS.Timeout | undefined;
  const beat = async (): Promise<void> => {
    try {
      const answer = await postJson(options, '/node/heartbeat', { buildId, resultToken });
      const state = (answer as { state?: unknown } | undefined)?.state;
      if (typeof state === 'string' && !stopped) {
        onState(state);
      }
      if (failing) {
        options.log('heartbeat delivered again');
      }
      failing = false;
    } catch (error) {
      // One line when heartbeats start failing, not one per beat.
      if (!failing) {
        options.log(`heartbeat failed (${describeError(error)})`);
      }
      failing = true;
    }
    if (!stopped) {
      timer = setTimeout(() => void beat(), intervalMs);
    }
  };
  timer = setTimeout(() => void beat(), intervalMs);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
