/**
 * A Gerrit REST stand-in on 127.0.0.1: the part of Gerrit's REST API the control plane uses,
 * answered the way Gerrit answers it (`)]}'` prefix, HTTP basic auth under `/a/` only, 404 for
 * unknown changes, 409 for reviews on closed changes, 400/403 for bad labels), plus what tests need:
 * every review POST recorded, scripted failures (503, 429, 409, resets, hangs) for the next N
 * requests or for a while, and the webhook events Gerrit would send for the changes it holds.
 *
 * Usage:
 *   const gerrit = await GerritStandin.start();
 *   const change = gerrit.createChange({ project: 'stackforge/akanda-rug', revision: sha });
 *   await postWebhook(gerrit.patchsetCreatedEvent(change.number));
 *   const [review] = await gerrit.waitForReviews(1);
 *   await gerrit.close();
 *
 * Git itself is not served: tests keep real bare repositories on disk and use file:// URLs.
 */
import { randomBytes } from 'node:crypto';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo, Socket } from 'node:net';

export type StandinChangeStatus = 'NEW' | 'MERGED' | 'ABANDONED';

export interface StandinPatchset {
  number: number;
  revision: string;
  ref: string;
  commitMessage: string;
  /** Changed paths (without `/COMMIT_MSG`, which the files endpoint always adds). */
  files: string[];
  /** The commit's parent (40 hex); a commit already in the branch when not given. */
  parent?: string;
  /** Epoch seconds. */
  createdOn: number;
}

export interface StandinChange {
  number: number;
  changeId: string;
  project: string;
  branch: string;
  subject: string;
  status: StandinChangeStatus;
  workInProgress: boolean;
  patchsets: StandinPatchset[];
  messages: StandinMessage[];
}

export interface CreateChangeInput {
  project: string;
  branch?: string;
  /** Default: the next free number. */
  number?: number;
  changeId?: string;
  subject?: string;
  /** Default: subject, blank line, `Change-Id:` footer. */
  commitMessage?: string;
  /** Default: random 40 hex; pass the sha of a commit in a real repository for end-to-end runs. */
  revision?: string;
  files?: string[];
  /** The parent commit, e.g. another change's revision (stacked changes). */
  parent?: string;
  status?: StandinChangeStatus;
  workInProgress?: boolean;
}

export interface AddPatchsetInput {
  revision?: string;
  commitMessage?: string;
  files?: string[];
  parent?: string;
}

/** One review POST as received, whatever it was answered. */
export interface RecordedReview {
  changeNumber: number;
  patchset: number;
  revision: string;
  /** The change path segment as Gerrit decoded it, e.g. `stackforge/akanda-rug~master~I...`. */
  changeLocator: string;
  /** The parsed body (a ReviewInput if the client behaves). */
  input: Record<string, unknown>;
  /** What the stand-in answered. */
  status: number | 'hang' | 'reset';
  /** Whether the review is on the change (a scripted failure `afterApplying` accepts, then fails). */
  accepted: boolean;
}

/** A change message, as `GET /changes/{id}/messages` lists it. */
export interface StandinMessage {
  id: string;
  tag?: string;
  message: string;
  _revision_number: number;
  author: { _account_id: number; username: string };
  date: string;
}

export interface RecordedRequest {
  method: string;
  /** Path without the query, as sent (still percent-encoded). */
  path: string;
  query: string;
  status: number | 'hang' | 'reset';
  authenticated: boolean;
}

export interface FailureScript {
  /** An HTTP status to answer, `reset` to destroy the connection, or `hang` to never answer. */
  status: number | 'reset' | 'hang';
  /** Which requests: review POSTs (default), GETs, or everything under /a/. */
  only?: 'review' | 'read' | 'all';
  /** Applies to this many matching requests... */
  count?: number;
  /** ...or to every matching request until this many milliseconds (by the stand-in's clock) have passed. */
  forMs?: number;
  retryAfterSeconds?: number;
  body?: string;
  /**
   * Review POSTs only: Gerrit saves the review first, then the answer fails (a proxy timeout, a
   * dropped connection): the case where a blind retry would post twice.
   */
  afterApplying?: boolean;
}

export interface StandinOptions {
  username?: string;
  password?: string;
  /** Clock for `forMs` scripts; tests can drive it. */
  now?: () => number;
  /** Review POST bodies above this get 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** First change number handed out. Default 1. */
  firstChangeNumber?: number;
}

interface ActiveScript extends FailureScript {
  remaining?: number;
  untilMs?: number;
}

const XSSI = ")]}'\n";
const CHANGE_ID = /^I[0-9a-f]{40}$/;
const REVISION = /^[0-9a-f]{40}$/;
/** Labels this server defines, with the range the CI account may vote (strict labels: others are 400). */
const LABEL_RANGES: Record<string, [number, number]> = {
  Verified: [-1, 1],
  'Code-Review': [-2, 2],
  Workflow: [-1, 1],
};

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A path segment as Gerrit decodes it; malformed escapes are a 400, not a crash. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpProblem(400, 'Malformed percent-encoding in path');
  }
}

function randomHex(): string {
  return randomBytes(20).toString('hex');
}

function changeRef(change: number, patchset: number): string {
  return `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/${patchset}`;
}

export class GerritStandin {
  readonly username: string;
  readonly password: string;
  /** `http://127.0.0.1:<port>`: the REST base URL for the client and `gerrit.url` in configs. */
  url = '';
  /** Every review POST that reached the review endpoint, in order, including those answered with errors. */
  readonly reviewPosts: RecordedReview[] = [];
  readonly requests: RecordedRequest[] = [];

  private readonly changes = new Map<number, StandinChange>();
  private readonly scripts: ActiveScript[] = [];
  private readonly now: () => number;
  private readonly maxBodyBytes: number;
  private readonly sockets = new Set<Socket>();
  private readonly hanging = new Set<ServerResponse>();
  private readonly waiters = new Set<() => void>();
  private nextNumber: number;
  private server?: Server;

  private constructor(options: StandinOptions) {
    this.username = options.username ?? 'akanda-ci';
    this.password = options.password ?? `pw-${randomHex().slice(0, 16)}`;
    this.now = options.now ?? Date.now;
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    this.nextNumber = options.firstChangeNumber ?? 1;
  }

  static async start(options: StandinOptions = {}): Promise<GerritStandin> {
    const standin = new GerritStandin(options);
    const server = createServer((req, res) => standin.handle(req, res));
    server.on('connection', (socket) => {
      standin.sockets.add(socket);
      socket.on('close', () => standin.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    standin.server = server;
    standin.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return standin;
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- changes ----

  createChange(input: CreateChangeInput): StandinChange {
    const number = input.number ?? this.nextNumber;
    if (this.changes.has(number)) throw new Error(`change ${number} exists`);
    this.nextNumber = Math.max(this.nextNumber, number + 1);
    const changeId = input.changeId ?? `I${randomHex()}`;
    const subject = input.subject ?? `Change ${number}`;
    const change: StandinChange = {
      number,
      changeId,
      project: input.project,
      branch: input.branch ?? 'master',
      subject,
      status: input.status ?? 'NEW',
      workInProgress: input.workInProgress ?? false,
      patchsets: [],
      messages: [],
    };
    this.changes.set(number, change);
    this.addPatchset(number, {
      revision: input.revision,
      commitMessage: input.commitMessage ?? `${subject}\n\nChange-Id: ${changeId}\n`,
      files: input.files,
      parent: input.parent,
    });
    return change;
  }

  addPatchset(changeNumber: number, input: AddPatchsetInput = {}): StandinPatchset {
    const change = this.change(changeNumber);
    const previous = change.patchsets[change.patchsets.length - 1];
    const number = change.patchsets.length + 1;
    const revision = input.revision ?? randomHex();
    if (!REVISION.test(revision)) throw new Error(`revision must be 40 hex: ${revision}`);
    const patchset: StandinPatchset = {
      number,
      revision,
      ref: changeRef(change.number, number),
      commitMessage:
        input.commitMessage ?? previous?.commitMessage ?? `${change.subject}\n\nChange-Id: ${change.changeId}\n`,
      files: input.files ?? previous?.files ?? ['README.rst'],
      ...(input.parent !== undefined ? { parent: input.parent } : {}),
      createdOn: Math.floor(this.now() / 1000),
    };
    change.patchsets.push(patchset);
    return patchset;
  }

  setStatus(changeNumber: number, status: StandinChangeStatus): void {
    this.change(changeNumber).status = status;
  }

  /** The change's web URL, as a `Depends-On:` footer names it. */
  changeUrl(changeNumber: number): string {
    const change = this.change(changeNumber);
    return `${this.url}/c/${change.project}/+/${change.number}`;
  }

  change(changeNumber: number): StandinChange {
    const change = this.changes.get(changeNumber);
    if (!change) throw new Error(`no change ${changeNumber}`);
    return change;
  }

  currentPatchset(changeNumber: number): StandinPatchset {
    const { patchsets } = this.change(changeNumber);
    return patchsets[patchsets.length - 1] as StandinPatchset;
  }

  // ---- reviews ----

  /** Review POSTs Gerrit saved: the reviews that are on the change, whatever the client heard. */
  get reviews(): RecordedReview[] {
    return this.reviewPosts.filter((review) => review.accepted);
  }

  /** Resolves with the accepted reviews once there are at least `count` (of one change if given). */
  async waitForReviews(count: number, options: { change?: number; timeoutMs?: number } = {}) {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const matching = () =>
      this.reviews.filter((r) => options.change === undefined || r.changeNumber === options.change);
    return this.waitFor(
      () => {
        const found = matching();
        return found.length >= count ? found : undefined;
      },
      timeoutMs,
      () => {
        const seen = this.reviewPosts.map((r) => `${r.changeNumber},${r.patchset}: HTTP ${r.status}`).join('; ');
        return `waited ${timeoutMs} ms for ${count} accepted review(s); review POSTs seen: ${seen || 'none'}`;
      },
    );
  }

  /** Resolves once the stand-in has answered (or started hanging on) at least `count` requests in all. */
  async waitForRequests(count: number, timeoutMs = 60_000): Promise<RecordedRequest[]> {
    return this.waitFor(
      () => (this.requests.length >= count ? this.requests : undefined),
      timeoutMs,
      () => `waited ${timeoutMs} ms for ${count} request(s); saw ${this.requests.length}`,
    );
  }

  private waitFor<T>(ready: () => T | undefined, timeoutMs: number, explain: () => string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const value = ready();
        if (value === undefined) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(explain()));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Scripts failures; scripts apply in the order added, each until its count or time runs out. */
  failRequests(script: FailureScript): void {
    if (script.count === undefined && script.forMs === undefined) throw new Error('give count or forMs');
    this.scripts.push({
      ...script,
      ...(script.count !== undefined ? { remaining: script.count } : {}),
      ...(script.forMs !== undefined ? { untilMs: this.now() + script.forMs } : {}),
    });
  }

  failNextReviews(count: number, status: FailureScript['status'] = 503): void {
    this.failRequests({ status, count, only: 'review' });
  }

  failReviewsFor(ms: number, status: FailureScript['status'] = 503): void {
    this.failRequests({ status, forMs: ms, only: 'review' });
  }

  // ---- the events Gerrit's webhooks plugin would send (new Gerrit: numbers are integers) ----

  patchsetCreatedEvent(changeNumber: number, patchsetNumber?: number): Record<string, unknown> {
    return this.changeEvent('patchset-created', changeNumber, () => ({ uploader: this.account() }), patchsetNumber);
  }

  commentAddedEvent(
    changeNumber: number,
    comment: string,
    approvals: { type: string; value: string; oldValue?: string }[] = [],
  ): Record<string, unknown> {
    return this.changeEvent('comment-added', changeNumber, (patchset) => ({
      author: { name: 'Reviewer', email: 'reviewer@example.com', username: 'reviewer' },
      approvals: approvals.map((a) => ({ description: a.type, ...a })),
      comment: `Patch Set ${String(patchset.number)}:\n\n${comment}`,
    }));
  }

  /** Marks the change merged and returns change-merged; Gerrit also sends refUpdatedEvent for the branch. */
  changeMergedEvent(changeNumber: number): Record<string, unknown> {
    this.setStatus(changeNumber, 'MERGED');
    return this.changeEvent('change-merged', changeNumber, (patchset) => ({
      submitter: this.account(),
      newRev: patchset.revision,
    }));
  }

  changeAbandonedEvent(changeNumber: number): Record<string, unknown> {
    this.setStatus(changeNumber, 'ABANDONED');
    return this.changeEvent('change-abandoned', changeNumber, () => ({
      abandoner: this.account(),
      reason: 'abandoned by test',
    }));
  }

  refUpdatedEvent(project: string, branch: string, oldRev: string, newRev: string): Record<string, unknown> {
    return {
      type: 'ref-updated',
      submitter: this.account(),
      refUpdate: { oldRev, newRev, refName: `refs/heads/${branch}`, project },
      project: { name: project },
      refName: `refs/heads/${branch}`,
      eventCreatedOn: Math.floor(this.now() / 1000),
    };
  }

  /** A change event as the webhooks plugin sends it: type, the event's own fields, then the common envelope. */
  private changeEvent(
    type: string,
    changeNumber: number,
    fields: (patchset: { number: number; revision: string }) => Record<string, unknown>,
    patchsetNumber?: number,
  ): Record<string, unknown> {
    const { change, patchset } = this.eventParts(changeNumber, patchsetNumber);
    return {
      type,
      ...fields(patchset),
      patchSet: patchset,
      change,
      project: { name: change.project },
      refName: `refs/heads/${String(change.branch)}`,
      changeKey: { key: change.id },
      eventCreatedOn: Math.floor(this.now() / 1000),
    };
  }

  private account() {
    return { name: 'Uploader', email: 'uploader@example.com', username: 'uploader' };
  }

  private eventParts(changeNumber: number, patchsetNumber?: number) {
    const change = this.change(changeNumber);
    const ps = patchsetNumber === undefined ? this.currentPatchset(changeNumber) : change.patchsets[patchsetNumber - 1];
    if (!ps) throw new Error(`change ${changeNumber} has no patchset ${patchsetNumber}`);
    const patchset = {
      number: ps.number,
      revision: ps.revision,
      parents: ['0'.repeat(40)],
      ref: ps.ref,
      uploader: this.account(),
      author: this.account(),
      createdOn: ps.createdOn,
      kind: 'REWORK',
      sizeInsertions: 1,
      sizeDeletions: 0,
    };
    const eventChange = {
      project: change.project,
      branch: change.branch,
      id: change.changeId,
      number: change.number,
      subject: change.subject,
      owner: this.account(),
      url: this.changeUrl(change.number),
      commitMessage: ps.commitMessage,
      createdOn: change.patchsets[0]?.createdOn ?? ps.createdOn,
      status: change.status,
      ...(change.workInProgress ? { wip: true } : {}),
    };
    return { change: eventChange, patchset };
  }

  // ---- HTTP ----

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const raw = req.url ?? '/';
    const queryAt = raw.indexOf('?');
    const path = queryAt < 0 ? raw : raw.slice(0, queryAt);
    const query = queryAt < 0 ? '' : raw.slice(queryAt + 1);
    const method = req.method ?? 'GET';
    const record = (status: RecordedRequest['status'], authenticated: boolean) => {
      this.requests.push({ method, path, query, status, authenticated });
      this.wake();
    };

    if (!path.startsWith('/a/')) {
      // This server refuses anonymous access: only authenticated /a/ paths exist.
      record(404, false);
      req.resume();
      this.sendText(res, 404, 'Not found');
      return;
    }
    if (!this.authorized(req.headers.authorization)) {
      record(401, false);
      res.setHeader('WWW-Authenticate', 'Basic realm="Gerrit Code Review"');
      req.resume();
      this.sendText(res, 401, 'Unauthorized');
      return;
    }
    const segments = path.slice('/a/'.length).split('/');
    const isReview = method === 'POST' && segments[segments.length - 1] === 'review';
    const script = this.takeScript(isReview ? 'review' : method === 'GET' ? 'read' : 'other');

    void this.readBody(req)
      .then((body) => {
        if (script) return this.applyScript(script, res, record, isReview ? { segments, body } : undefined);
        const status = this.route(method, segments, new URLSearchParams(query), body, res);
        record(status, true);
      })
      .catch((error: unknown) => {
        const status = error instanceof HttpProblem ? error.status : 500;
        record(status, true);
        if (!res.headersSent) this.sendText(res, status, error instanceof Error ? error.message : 'error');
      });
  }

  private authorized(header: string | undefined): boolean {
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
    if (!match?.[1]) return false;
    return Buffer.from(match[1], 'base64').toString('utf8') === `${this.username}:${this.password}`;
  }

  private takeScript(kind: 'review' | 'read' | 'other'): ActiveScript | undefined {
    const now = this.now();
    for (let i = 0; i < this.scripts.length; i++) {
      const script = this.scripts[i] as ActiveScript;
      const expired =
        (script.remaining !== undefined && script.remaining <= 0) ||
        (script.untilMs !== undefined && now >= script.untilMs);
      if (expired) {
        this.scripts.splice(i--, 1);
        continue;
      }
      const only = script.only ?? 'review';
      if (only === 'all' || only === kind) {
        if (script.remaining !== undefined) script.remaining--;
        return script;
      }
    }
    return undefined;
  }

  private applyScript(
    script: ActiveScript,
    res: ServerResponse,
    record: (status: RecordedRequest['status'], authenticated: boolean) => void,
    review?: { segments: string[]; body: string },
  ): void {
    if (review) {
      let accepted = false;
      if (script.afterApplying) {
        try {
          accepted = this.judgeReview(review.segments, review.body).status === 200;
          if (accepted) this.addReviewMessage(review.segments, review.body);
        } catch {
          // Not a review Gerrit would save; the scripted answer still goes out.
        }
      }
      this.recordReview(review.segments, review.body, script.status, accepted);
    }
    record(script.status, true);
    if (script.status === 'hang') {
      this.hanging.add(res);
      return;
    }
    if (script.status === 'reset') {
      res.socket?.destroy();
      return;
    }
    if (script.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(script.retryAfterSeconds));
    this.sendText(res, script.status, script.body ?? (script.status === 409 ? 'change is closed' : 'scripted failure'));
  }

  /** Records a review POST (when the body is JSON and the change exists) and wakes waiters. */
  private recordReview(segments: string[], body: string, status: RecordedReview['status'], accepted: boolean): void {
    try {
      const { change, patchset } = this.findRevision(segments);
      const input = JSON.parse(body) as unknown;
      this.reviewPosts.push({
        changeNumber: change.number,
        patchset: patchset.number,
        revision: patchset.revision,
        changeLocator: decodeSegment(segments[1] ?? ''),
        input: typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {},
        status,
        accepted,
      });
      this.wake();
    } catch {
      // A request the real Gerrit would reject anyway: nothing to record.
    }
  }

  /** The change message Gerrit writes for a saved review: `Patch Set N: Verified+1` then the message. */
  private addReviewMessage(segments: string[], body: string): void {
    const { change, patchset } = this.findRevision(segments);
    const input = JSON.parse(body) as { message?: unknown; tag?: unknown; labels?: Record<string, number> };
    const votes = Object.entries(input.labels ?? {}).map(
      ([label, value]) => ` ${label}${value > 0 ? '+' : ''}${value}`,
    );
    const text = typeof input.message === 'string' && input.message ? `\n\n${input.message}` : '';
    change.messages.push({
      id: randomHex().slice(0, 16),
      ...(typeof input.tag === 'string' ? { tag: input.tag } : {}),
      message: `Patch Set ${patchset.number}:${votes.join('')}${text}`,
      _revision_number: patchset.number,
      author: { _account_id: 1000002, username: this.username },
      date: new Date(this.now()).toISOString().replace('T', ' ').replace('Z', '000000'),
    });
  }

  private route(method: string, segments: string[], params: URLSearchParams, body: string, res: ServerResponse) {
    if (segments[0] !== 'changes') throw new HttpProblem(404, 'Not found');
    if (segments.length === 2 && segments[1] === '') {
      if (method !== 'GET') throw new HttpProblem(405, 'Method not allowed');
      return this.sendJson(res, 200, this.query(params));
    }
    if (segments.length === 2) {
      if (method !== 'GET') throw new HttpProblem(405, 'Method not allowed');
      const change = this.findChange(segments[1] as string);
      return this.sendJson(res, 200, this.changeInfo(change, params.getAll('o')));
    }
    if (segments.length === 3 && segments[2] === 'messages') {
      if (method !== 'GET') throw new HttpProblem(405, 'Method not allowed');
      return this.sendJson(res, 200, this.findChange(segments[1] as string).messages);
    }
    if (segments.length === 5 && segments[2] === 'revisions' && segments[4] === 'files') {
      if (method !== 'GET') throw new HttpProblem(405, 'Method not allowed');
      const { patchset } = this.findRevision(segments);
      const files: Record<string, unknown> = { '/COMMIT_MSG': { status: 'A', lines_inserted: 10, size_delta: 300 } };
      for (const file of patchset.files) files[file] = { lines_inserted: 1, lines_deleted: 0, size_delta: 10 };
      return this.sendJson(res, 200, files);
    }
    if (segments.length === 5 && segments[2] === 'revisions' && segments[4] === 'review') {
      if (method !== 'POST') throw new HttpProblem(405, 'Method not allowed');
      return this.review(segments, body, res);
    }
    throw new HttpProblem(404, 'Not found');
  }

  private review(segments: string[], body: string, res: ServerResponse): number {
    const { status, answer, labels } = this.judgeReview(segments, body);
    if (status === 200) this.addReviewMessage(segments, body);
    this.recordReview(segments, body, status, status === 200);
    if (status !== 200) return this.sendText(res, status, answer);
    return this.sendJson(res, 200, { labels });
  }

  /** What Gerrit would answer a review POST; throws HttpProblem for requests it cannot parse. */
  private judgeReview(segments: string[], body: string): { status: number; answer: string; labels: unknown } {
    const { change } = this.findRevision(segments);
    let input: unknown;
    try {
      input = JSON.parse(body);
    } catch {
      throw new HttpProblem(400, 'Expected JSON object');
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw new HttpProblem(400, 'Expected JSON object');
    }
    const labels = (input as { labels?: unknown }).labels ?? {};
    if (change.status !== 'NEW') return { status: 409, answer: 'change is closed', labels };
    if (typeof labels !== 'object' || labels === null)
      return { status: 400, answer: 'labels must be an object', labels };
    for (const [label, value] of Object.entries(labels)) {
      const range = LABEL_RANGES[label];
      if (!range) return { status: 400, answer: `label "${label}" is not a configured label`, labels };
      if (typeof value !== 'number' || value < range[0] || value > range[1]) {
        return { status: 403, answer: `Applying label "${label}": ${String(value)} is restricted`, labels };
      }
    }
    return { status: 200, answer: '', labels };
  }

  private findChange(locator: string): StandinChange {
    const id = decodeSegment(locator);
    if (/^[1-9][0-9]*$/.test(id)) return this.found(this.changes.get(Number(id)), id);
    if (CHANGE_ID.test(id)) {
      const matches = [...this.changes.values()].filter((c) => c.changeId === id);
      if (matches.length > 1) throw new HttpProblem(404, `Multiple changes found for ${id}`);
      return this.found(matches[0], id);
    }
    const last = id.lastIndexOf('~');
    const middle = last > 0 ? id.lastIndexOf('~', last - 1) : -1;
    if (middle > 0) {
      const [project, branch, changeId] = [id.slice(0, middle), id.slice(middle + 1, last), id.slice(last + 1)];
      const match = [...this.changes.values()].find(
        (c) => c.project === project && c.branch === branch.replace(/^refs\/heads\//, '') && c.changeId === changeId,
      );
      return this.found(match, id);
    }
    if (last > 0 && /^[1-9][0-9]*$/.test(id.slice(last + 1))) {
      const change = this.changes.get(Number(id.slice(last + 1)));
      return this.found(change?.project === id.slice(0, last) ? change : undefined, id);
    }
    throw new HttpProblem(404, `Not found: ${id}`);
  }

  private found(change: StandinChange | undefined, id: string): StandinChange {
    if (!change) throw new HttpProblem(404, `Not found: ${id}`);
    return change;
  }

  private findRevision(segments: string[]): { change: StandinChange; patchset: StandinPatchset } {
    const change = this.findChange(segments[1] ?? '');
    const id = decodeSegment(segments[3] ?? '');
    const patchset =
      id === 'current'
        ? change.patchsets[change.patchsets.length - 1]
        : /^[1-9][0-9]*$/.test(id)
          ? change.patchsets[Number(id) - 1]
          : change.patchsets.find((p) => p.revision === id);
    if (!patchset) throw new HttpProblem(404, `Not found: ${id}`);
    return { change, patchset };
  }

  private changeInfo(change: StandinChange, options: string[]): Record<string, unknown> {
    const current = change.patchsets[change.patchsets.length - 1] as StandinPatchset;
    const all = options.includes('ALL_REVISIONS');
    const withRevisions = all || options.includes('CURRENT_REVISION');
    const withCommit = options.includes('CURRENT_COMMIT') || options.includes('ALL_COMMITS');
    const revisions: Record<string, unknown> = {};
    for (const ps of all ? change.patchsets : [current]) {
      revisions[ps.revision] = {
        kind: 'REWORK',
        _number: ps.number,
        created: new Date(ps.createdOn * 1000).toISOString().replace('T', ' ').replace('Z', '000000'),
        uploader: { _account_id: 1000001 },
        ref: ps.ref,
        ...(withCommit
          ? {
              commit: {
                parents: [{ commit: ps.parent ?? '0'.repeat(40), subject: 'parent' }],
                subject: ps.commitMessage.split('\n')[0],
                message: ps.commitMessage,
              },
            }
          : {}),
      };
    }
    return {
      id: `${change.project.replace(/\//g, '%2F')}~${change.branch}~${change.changeId}`,
      project: change.project,
      branch: change.branch,
      change_id: change.changeId,
      subject: change.subject,
      status: change.status,
      created: '2026-01-01 00:00:00.000000000',
      updated: '2026-01-01 00:00:00.000000000',
      _number: change.number,
      owner: { _account_id: 1000001 },
      ...(change.workInProgress ? { work_in_progress: true } : {}),
      ...(withRevisions ? { current_revision: current.revision, revisions } : {}),
      ...(options.includes('MESSAGES') ? { messages: change.messages } : {}),
    };
  }

  /** `status:`, `change:`, `project:`, `branch:`, bare numbers and Change-Ids, ANDed; `n` and `S` page. */
  private query(params: URLSearchParams): Record<string, unknown>[] {
    const q = params.get('q') ?? '';
    const predicates: ((c: StandinChange) => boolean)[] = [];
    for (const token of q.split(/\s+/).filter(Boolean)) {
      const [operator, value] = token.includes(':')
        ? [token.slice(0, token.indexOf(':')), token.slice(token.indexOf(':') + 1)]
        : ['', token];
      const unquoted = value.replace(/^"(.*)"$/, '$1');
      if (operator === 'status' && unquoted === 'open') predicates.push((c) => c.status === 'NEW');
      else if (operator === 'status' && ['merged', 'abandoned', 'new'].includes(unquoted)) {
        predicates.push((c) => c.status === unquoted.toUpperCase());
      } else if (operator === 'project') predicates.push((c) => c.project === unquoted);
      else if (operator === 'branch') predicates.push((c) => c.branch === unquoted);
      else if (operator === 'commit') predicates.push((c) => c.patchsets.some((p) => p.revision === unquoted));
      else if ((operator === 'change' || operator === '') && /^[1-9][0-9]*$/.test(unquoted)) {
        predicates.push((c) => c.number === Number(unquoted));
      } else if ((operator === 'change' || operator === '') && CHANGE_ID.test(unquoted)) {
        predicates.push((c) => c.changeId === unquoted);
      } else throw new HttpProblem(400, `Error in operator ${token}`);
    }
    const limit = Math.min(Number(params.get('n') ?? 500) || 500, 500);
    const start = Number(params.get('S') ?? 0) || 0;
    const matches = [...this.changes.values()]
      .filter((c) => predicates.every((p) => p(c)))
      .sort((a, b) => b.number - a.number);
    const page = matches.slice(start, start + limit).map((c) => this.changeInfo(c, params.getAll('o')));
    if (start + limit < matches.length && page.length > 0)
      page[page.length - 1] = { ...page[page.length - 1], _more_changes: true };
    return page;
  }

  private async readBody(req: IncomingMessage): Promise<string> {
    if (req.method !== 'POST' && req.method !== 'PUT') {
      req.resume();
      return '';
    }
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json(;|$)/i.test(type)) {
      req.resume();
      throw new HttpProblem(415, 'Expected Content-Type application/json');
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of req) {
      total += (chunk as Buffer).length;
      if (total > this.maxBodyBytes) throw new HttpProblem(413, 'Request body too large');
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private sendJson(res: ServerResponse, status: number, body: unknown): number {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(`${XSSI}${JSON.stringify(body)}\n`);
    return status;
  }

  private sendText(res: ServerResponse, status: number, text: string): number {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`${text}\n`);
    return status;
  }
}
