/**
 * Gerrit REST, as the control plane uses it: read changes, their files and Depends-On targets,
 * catch-up queries, and posting the one review per buildset.
 *
 * Every call is authenticated (`/a/` + HTTP basic auth with the CI account's HTTP password),
 * bounded in time (AbortSignal) and in response size, and strips Gerrit's `)]}'` XSSI prefix.
 * Everything that comes back is validated before anyone uses it: project and branch names, refs
 * and revisions from REST end up in git commands on nodes, so they get the same scrutiny as the
 * names in events. Errors name the method, the path and the HTTP status, never the password.
 */
import { z } from 'zod';
import type { ResolvedDependency } from '../core/planner';
import { isGerritNumber } from '../core/names';

export interface GerritClientOptions {
  /** REST base, e.g. `https://review.opendev.org` (a path prefix such as `/r` is kept). */
  baseUrl: string;
  username: string;
  /** The HTTP password, or a reader (e.g. a cached Secrets Manager lookup) called per request. */
  password: string | (() => Promise<string>);
  /** Per request, body included. Default 15 s. */
  timeoutMs?: number;
  /** Responses larger than this are refused. Default 8 MiB. */
  maxResponseBytes?: number;
}

export type ChangeStatus = 'NEW' | 'MERGED' | 'ABANDONED';

/** A change with its current patchset, checked and in our names. */
export interface GerritChange {
  number: number;
  /** The Change-Id, `I` + 40 hex. */
  changeId: string;
  project: string;
  branch: string;
  /** DRAFT (very old servers) is reported as NEW. */
  status: ChangeStatus;
  subject: string;
  currentPatchset: number;
  /** 40 hex. */
  currentRevision: string;
  /** `refs/changes/NN/<number>/<patchset>`. */
  ref: string;
  /** Present when the server returned the current commit (getChange asks for it). */
  commitMessage?: string;
  /** The current commit's parents (40 hex), present with `commitMessage`. */
  parents?: string[];
  workInProgress: boolean;
}

export type { ResolvedDependency };

/**
 * A parsed `Depends-On:` footer: exactly one of `change`, the number the core found in a URL on this
 * server (`parseDependsOn`, which also decides what counts as a change URL; callers drop footers on
 * other servers), or `changeId` (the deprecated `I<40 hex>` form).
 */
export interface DependsOnReference {
  change?: number;
  changeId?: string;
}

export interface DependencyResolution {
  /** Open changes to test together with the change, in a stable order (same branch first). */
  open: ResolvedDependency[];
  /** Changes that matched but are merged (already in the branch) or abandoned. */
  closed: { change: number; project: string; branch: string; status: Exclude<ChangeStatus, 'NEW'> }[];
}

/** Identifies a change unambiguously: Gerrit's `project~branch~Change-Id`. */
export interface ChangeTriplet {
  project: string;
  branch: string;
  changeId: string;
}

/** Gerrit's ReviewInput, the parts the CI sends. */
export interface ReviewInput {
  message?: string;
  labels?: Record<string, number>;
  tag?: string;
  notify?: 'NONE' | 'OWNER' | 'OWNER_REVIEWERS' | 'ALL';
  omit_duplicate_comments?: boolean;
}

export type ReviewOutcome =
  | { kind: 'posted' }
  /** 5xx, 429, 408, timeouts and network errors: try again later. */
  | { kind: 'retryable'; reason: string; retryAfterSeconds?: number }
  /** 409: the change was merged or abandoned meanwhile; log and drop. */
  | { kind: 'dropped'; reason: string }
  /** Anything else (403 label not permitted, 400 unknown label, 401, 404): retrying will not help. */
  | { kind: 'failed'; reason: string };

/**
 * Review POST retries: attempts are numbered from 1 (the first POST). After attempt
 * REVIEW_MAX_ATTEMPTS fails, the reporter dead-letters the report (and the alarm fires).
 * The delays before attempts 2..REVIEW_MAX_ATTEMPTS add up to 2,010 s (33.5 minutes): a Gerrit
 * restart or an afternoon of 503s still gets its vote, and the first retries come within seconds.
 */
export const REVIEW_MAX_ATTEMPTS = 14;
const REVIEW_RETRY_CAP_SECONDS = 300;

/** Seconds to wait after failed attempt `attempt` (1-based): 2, 4, 8, ... 256, then 300 each. */
export function reviewRetryDelaySeconds(attempt: number): number {
  const n = Math.max(1, Math.floor(attempt));
  // 2^9 already exceeds the cap; stopping the exponent there keeps huge attempts finite.
  return Math.min(REVIEW_RETRY_CAP_SECONDS, 2 ** Math.min(n, 9));
}

/** The wait before the next attempt, honouring a server's Retry-After up to SQS's 900 s delay limit. */
export function reviewRetryDelayFor(attempt: number, retryAfterSeconds?: number): number {
  return Math.min(900, Math.max(reviewRetryDelaySeconds(attempt), retryAfterSeconds ?? 0));
}

export type GerritErrorKind = 'http' | 'timeout' | 'network' | 'too-large' | 'invalid-response';

/** A failed Gerrit call. The message names method, path (no query) and status; never credentials. */
export class GerritError extends Error {
  override readonly name = 'GerritError';
  constructor(
    readonly kind: GerritErrorKind,
    readonly method: string,
    readonly path: string,
    message: string,
    readonly status?: number,
    readonly retryAfterSeconds?: number,
  ) {
    super(`Gerrit ${method} ${path}: ${message}`);
  }
}

/** A Depends-On footer that cannot be resolved (bad form, another server, unknown change). */
export class DependencyError extends Error {
  override readonly name = 'DependencyError';
}

const XSSI_PREFIX = ")]}'";
const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Catch-up queries stop here: a CI that missed more open changes than this needs an operator anyway. */
const MAX_QUERY_RESULTS = 2_000;
const QUERY_PAGE_SIZE = 500;

const CHANGE_ID = /^I[0-9a-f]{40}$/;
const REVISION = /^[0-9a-f]{40}$/;

/** Gerrit project names as they may reach a git URL and a workspace path: no `..`, no empty segments. */
export function isSafeProjectName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/.test(name) &&
    !name.split('/').some((segment) => segment.endsWith('.git') || segment.endsWith('.lock')) &&
    !name.includes('..')
  );
}

/** Branch names (without refs/heads/) that are valid git refs and harmless in a shell word. */
export function isSafeBranchName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    /^[A-Za-z0-9_][A-Za-z0-9._+-]*(\/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$/.test(name) &&
    !name.includes('..') &&
    !name.split('/').some((segment) => segment.endsWith('.lock') || segment.endsWith('.'))
  );
}

export function changeRef(change: number, patchset: number): string {
  return `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/${patchset}`;
}

/**
 * `project~branch~Change-Id` for a URL path: each part percent-encoded on its own, so the
 * project's and branch's slashes become %2F and Gerrit splits on the literal `~`. Gerrit splits at
 * the last two `~`, so only the branch and Change-Id must be free of `~` (names we accept are).
 */
export function encodeChangeTriplet(triplet: ChangeTriplet): string {
  if (!isSafeProjectName(triplet.project)) throw new Error(`unsafe project name ${JSON.stringify(triplet.project)}`);
  if (!isSafeBranchName(triplet.branch)) throw new Error(`unsafe branch name ${JSON.stringify(triplet.branch)}`);
  if (!CHANGE_ID.test(triplet.changeId)) throw new Error(`not a Change-Id: ${JSON.stringify(triplet.changeId)}`);
  return `${encodeURIComponent(triplet.project)}~${encodeURIComponent(triplet.branch)}~${triplet.changeId}`;
}

/** A change as a path segment: a number, a Change-Id, or a triplet. */
export type ChangeLocator = number | string | ChangeTriplet;

function encodeChangeLocator(change: ChangeLocator): string {
  if (typeof change === 'number') {
    if (!Number.isSafeInteger(change) || change < 1) throw new Error(`not a change number: ${change}`);
    return String(change);
  }
  if (typeof change === 'string') {
    if (/^[1-9][0-9]{0,9}$/.test(change) || CHANGE_ID.test(change)) return change;
    throw new Error(`not a change number or Change-Id: ${JSON.stringify(change.slice(0, 80))}`);
  }
  return encodeChangeTriplet(change);
}

function encodeRevision(revision: string | number): string {
  if (typeof revision === 'number' && Number.isSafeInteger(revision) && revision > 0) return String(revision);
  if (typeof revision === 'string' && (REVISION.test(revision) || revision === 'current')) return revision;
  throw new Error(`not a revision: ${JSON.stringify(String(revision).slice(0, 80))}`);
}

// ---- response schemas: only the fields we read; Gerrit adds fields over time ----

const numberish = z.union([z.number().int(), z.string().regex(/^\d+$/).transform(Number)]);

const revisionInfoSchema = z.object({
  _number: numberish,
  ref: z.string(),
  commit: z
    .object({
      message: z.string().optional(),
      subject: z.string().optional(),
      parents: z.array(z.object({ commit: z.string() })).optional(),
    })
    .optional(),
});

const changeInfoSchema = z.object({
  project: z.string(),
  branch: z.string(),
  change_id: z.string(),
  _number: numberish,
  status: z.enum(['NEW', 'MERGED', 'ABANDONED', 'DRAFT']),
  subject: z.string().default(''),
  current_revision: z.string().optional(),
  revisions: z.record(z.string(), revisionInfoSchema).optional(),
  work_in_progress: z.boolean().optional(),
  _more_changes: z.boolean().optional(),
});
type ChangeInfo = z.infer<typeof changeInfoSchema>;

const changeMessageSchema = z.object({
  message: z.string().default(''),
  tag: z.string().optional(),
  _revision_number: numberish.optional(),
});

const fileMapSchema = z.record(z.string(), z.unknown());

/** Turns a ChangeInfo into a GerritChange, or explains in one line why it cannot be trusted. */
function toGerritChange(info: ChangeInfo): GerritChange | string {
  const number = info._number;
  if (!Number.isSafeInteger(number) || number < 1) return `bad change number ${number}`;
  if (!isSafeProjectName(info.project)) return `change ${number}: unsafe project name`;
  const branch = info.branch.replace(/^refs\/heads\//, '');
  if (!isSafeBranchName(branch)) return `change ${number}: unsafe branch name`;
  if (!CHANGE_ID.test(info.change_id)) return `change ${number}: bad Change-Id`;
  const revision = info.current_revision;
  if (!revision || !REVISION.test(revision))
    return `change ${number}: no current revision (ask with o=CURRENT_REVISION)`;
  const revisionInfo = info.revisions?.[revision];
  if (!revisionInfo) return `change ${number}: current revision missing from revisions`;
  const patchset = revisionInfo._number;
  if (!Number.isSafeInteger(patchset) || patchset < 1) return `change ${number}: bad patchset number`;
  const ref = changeRef(number, patchset);
  if (revisionInfo.ref !== ref) return `change ${number}: ref ${JSON.stringify(revisionInfo.ref)} is not ${ref}`;
  return {
    number,
    changeId: info.change_id,
    project: info.project,
    branch,
    status: info.status === 'DRAFT' ? 'NEW' : info.status,
    subject: info.subject,
    currentPatchset: patchset,
    currentRevision: revision,
    ref,
    ...(revisionInfo.commit?.message !== undefined ? { commitMessage: revisionInfo.commit.message } : {}),
    ...(revisionInfo.commit?.parents !== undefined
      ? { parents: revisionInfo.commit.parents.map((p) => p.commit).filter((sha) => REVISION.test(sha)) }
      : {}),
    workInProgress: info.work_in_progress ?? false,
  };
}

/** A change as the planner takes a Depends-On dependency: its current patchset. */
export function resolvedDependency(change: GerritChange): ResolvedDependency {
  return {
    project: change.project,
    branch: change.branch,
    change: change.number,
    patchset: change.currentPatchset,
    ref: change.ref,
    revision: change.currentRevision,
  };
}

function oneLine(text: string, max = 200): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

function parseRetryAfter(header: string | null, nowMs: number): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed), 3600);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.min(Math.max(0, Math.ceil((date - nowMs) / 1000)), 3600);
}

interface RawResponse {
  status: number;
  text: string;
  retryAfterSeconds?: number;
}

export class GerritClient {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(private readonly options: GerritClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new Error('Gerrit base URL is not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('Gerrit base URL must be http(s)');
    // Credentials in the URL would end up in error messages and logs; they belong in the options.
    if (url.username || url.password) throw new Error('Gerrit base URL must not contain credentials');
    if (url.search || url.hash) throw new Error('Gerrit base URL must not have a query or fragment');
    this.base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /** A change with its current revision and commit message. */
  async getChange(change: number | string): Promise<GerritChange> {
    const path = `/a/changes/${encodeChangeLocator(change)}`;
    const info = await this.getJson(path, 'o=CURRENT_REVISION&o=CURRENT_COMMIT', changeInfoSchema);
    const result = toGerritChange(info);
    if (typeof result === 'string') throw new GerritError('invalid-response', 'GET', path, result);
    return result;
  }

  /** Paths changed by a revision, relative to its parent; includes Gerrit's magic `/COMMIT_MSG`. */
  async getChangedFiles(change: ChangeLocator, revision: string | number): Promise<string[]> {
    const path = `/a/changes/${encodeChangeLocator(change)}/revisions/${encodeRevision(revision)}/files`;
    const files = await this.getJson(path, '', fileMapSchema);
    return Object.keys(files);
  }

  /**
   * Open changes matching a Gerrit query (`status:open` is added), with their current revisions,
   * for catching up after missed events. Follows `_more_changes` up to MAX_QUERY_RESULTS.
   */
  async queryOpenChanges(query: string): Promise<GerritChange[]> {
    return this.query(`status:open ${query}`.trim());
  }

  /**
   * The changes a Depends-On footer names, with their current patchsets.
   *
   * URL form (`change`): the change the URL names (its current patchset, as Zuul does; a patchset in
   * the URL is ignored). Change-Id form (deprecated): a Change-Id is unique per project and branch
   * only, so `change:<id>` may find the same change cherry-picked to several branches. Like Zuul,
   * every one of them is a dependency; open ones on `dependentBranch` come first, then the rest
   * by project, branch and number, so the order is stable. Merged changes are already in their
   * branch and abandoned ones cannot be tested: both are reported in `closed`, not `open`.
   */
  async resolveDependency(footer: DependsOnReference, dependentBranch?: string): Promise<DependencyResolution> {
    let changes: GerritChange[];
    if (footer.change !== undefined && footer.changeId === undefined) {
      const number = footer.change;
      if (!isGerritNumber(number)) throw new DependencyError(`Depends-On change ${number} is not a change number`);
      try {
        changes = [await this.getChange(number)];
      } catch (error) {
        if (error instanceof GerritError && error.status === 404) {
          throw new DependencyError(`Depends-On change ${number} does not exist or is not visible`);
        }
        throw error;
      }
    } else if (footer.changeId !== undefined && footer.change === undefined) {
      if (!CHANGE_ID.test(footer.changeId)) {
        throw new DependencyError(`Depends-On ${JSON.stringify(oneLine(footer.changeId, 60))} is not a Change-Id`);
      }
      changes = await this.query(`change:${footer.changeId}`);
      if (changes.length === 0) throw new DependencyError(`Depends-On ${footer.changeId} matches no visible change`);
    } else {
      throw new DependencyError('a Depends-On reference needs exactly one of url and changeId');
    }
    const ordered = [...changes].sort(
      (a, b) =>
        Number(b.branch === dependentBranch) - Number(a.branch === dependentBranch) ||
        a.project.localeCompare(b.project) ||
        a.branch.localeCompare(b.branch) ||
        a.number - b.number,
    );
    const resolution: DependencyResolution = { open: [], closed: [] };
    for (const change of ordered) {
      if (change.status === 'NEW') resolution.open.push(resolvedDependency(change));
      else
        resolution.closed.push({
          change: change.number,
          project: change.project,
          branch: change.branch,
          status: change.status,
        });
    }
    return resolution;
  }

  /**
   * One review POST, classified. Never throws for HTTP or network trouble: the reporter decides
   * from the outcome whether to retry (with reviewRetryDelaySeconds), drop or dead-letter.
   * `revision` must be the 40-hex sha the buildset tested, so a vote never lands on a newer patchset.
   */
  async postReview(change: ChangeTriplet, revision: string, review: ReviewInput): Promise<ReviewOutcome> {
    if (!REVISION.test(revision)) return { kind: 'failed', reason: 'revision is not a 40-hex sha' };
    let path: string;
    try {
      path = `/a/changes/${encodeChangeTriplet(change)}/revisions/${revision}/review`;
    } catch (error) {
      return { kind: 'failed', reason: (error as Error).message };
    }
    let response: RawResponse;
    try {
      response = await this.request('POST', path, '', JSON.stringify(review));
    } catch (error) {
      // An oversized answer still has a status, and the status is what decides.
      if (error instanceof GerritError && error.kind === 'too-large' && error.status !== undefined) {
        response = { status: error.status, text: '' };
      } else if (error instanceof GerritError) {
        return { kind: 'retryable', reason: error.message };
      } else {
        return { kind: 'retryable', reason: `Gerrit POST ${path}: ${oneLine(String(error))}` };
      }
    }
    const { status } = response;
    if (status >= 200 && status < 300) return { kind: 'posted' };
    const reason = `Gerrit POST ${path}: HTTP ${status}${response.text ? `: ${oneLine(response.text)}` : ''}`;
    if (status >= 500 || status === 429 || status === 408) {
      return {
        kind: 'retryable',
        reason,
        ...(response.retryAfterSeconds !== undefined ? { retryAfterSeconds: response.retryAfterSeconds } : {}),
      };
    }
    if (status === 409) return { kind: 'dropped', reason };
    return { kind: 'failed', reason };
  }

  /**
   * Whether a review with `tag` whose message contains `contains` is already on patchset
   * `patchset`. A review POST that timed out or lost its connection may still have been saved;
   * the reporter asks this before each retry so a buildset never reports twice. `contains` should
   * be unique to the buildset (e.g. a build's log URL).
   */
  async hasReview(change: ChangeTriplet, patchset: number, match: { tag: string; contains: string }): Promise<boolean> {
    const path = `/a/changes/${encodeChangeTriplet(change)}/messages`;
    const messages = await this.getJson(path, '', z.array(changeMessageSchema));
    return messages.some(
      (m) => m.tag === match.tag && m._revision_number === patchset && m.message.includes(match.contains),
    );
  }

  private async query(q: string): Promise<GerritChange[]> {
    const path = '/a/changes/';
    const changes: GerritChange[] = [];
    for (let start = 0; start < MAX_QUERY_RESULTS; start += QUERY_PAGE_SIZE) {
      const search = `q=${encodeURIComponent(q)}&o=CURRENT_REVISION&n=${QUERY_PAGE_SIZE}${start ? `&S=${start}` : ''}`;
      const page = await this.getJson(path, search, z.array(changeInfoSchema));
      for (const info of page) {
        const change = toGerritChange(info);
        if (typeof change === 'string') throw new GerritError('invalid-response', 'GET', path, change);
        changes.push(change);
      }
      if (page.length === 0 || !page[page.length - 1]?._more_changes) break;
    }
    return changes;
  }

  private async getJson<T>(path: string, search: string, schema: z.ZodType<T>): Promise<T> {
    const response = await this.request('GET', path, search);
    if (response.status !== 200) {
      throw new GerritError(
        'http',
        'GET',
        path,
        `HTTP ${response.status}${response.text ? `: ${oneLine(response.text)}` : ''}`,
        response.status,
        response.retryAfterSeconds,
      );
    }
    const body = response.text.startsWith(XSSI_PREFIX) ? response.text.slice(XSSI_PREFIX.length) : response.text;
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new GerritError('invalid-response', 'GET', path, 'response is not JSON', response.status);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? issue.path.join('.') : '(root)';
      throw new GerritError('invalid-response', 'GET', path, `unexpected response at ${where}`, response.status);
    }
    return parsed.data;
  }

  private async request(method: 'GET' | 'POST', path: string, search: string, body?: string): Promise<RawResponse> {
    const password = typeof this.options.password === 'string' ? this.options.password : await this.options.password();
    const authorization = `Basic ${Buffer.from(`${this.options.username}:${password}`).toString('base64')}`;
    const headers: Record<string, string> = { Authorization: authorization, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json; charset=UTF-8';
    const signal = AbortSignal.timeout(this.timeoutMs);
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}${search ? `?${search}` : ''}`, {
        method,
        headers,
        body,
        signal,
        // A redirect could carry the Authorization header somewhere else; Gerrit's API never needs one.
        redirect: 'error',
      });
    } catch (error) {
      throw this.transportError(method, path, error, signal);
    }
    let text: string;
    try {
      text = await readLimited(response, this.maxResponseBytes);
    } catch (error) {
      if (error instanceof ResponseTooLarge) {
        throw new GerritError(
          'too-large',
          method,
          path,
          `response larger than ${this.maxResponseBytes} bytes`,
          response.status,
        );
      }
      throw this.transportError(method, path, error, signal);
    }
    const retryAfterSeconds = parseRetryAfter(response.headers.get('retry-after'), Date.now());
    return { status: response.status, text, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) };
  }

  private transportError(method: string, path: string, error: unknown, signal: AbortSignal): GerritError {
    if (signal.aborted) return new GerritError('timeout', method, path, `no answer within ${this.timeoutMs} ms`);
    return new GerritError('network', method, path, `network error: ${oneLine(networkDetail(error), 120)}`);
  }
}

/**
 * undici's `fetch failed` hides the useful part (ECONNREFUSED, ...) in `cause`. Read it by shape:
 * errors from another realm (jest's sandbox) fail `instanceof`. Neither part carries our headers.
 */
function networkDetail(error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  for (const candidate of [cause, (cause as { errors?: unknown[] } | undefined)?.errors?.[0], error]) {
    const code = (candidate as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string') return code;
  }
  const message = (cause as { message?: unknown } | undefined)?.message ?? (error as { message?: unknown })?.message;
  return typeof message === 'string' ? message : 'unknown';
}

class ResponseTooLarge extends Error {}

async function readLimited(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await response.body?.cancel();
    throw new ResponseTooLarge();
  }
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw new ResponseTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
