/**
 * Gerrit events, as both delivery paths carry them (SSH `stream-events` lines and webhooks-plugin
 * POST bodies), from old and new servers, turned into one typed shape.
 *
 * The differences this absorbs: numbers as strings ("654") on old servers and integers on new
 * ones; approval values always strings ("-1"); legacy approval codes (CRVW, VRIF, APRV); the
 * top-level `project` as a string (SSH) or `{name}` (webhooks); bare branch names in
 * `refUpdate.refName` from old servers. Gerrit says any field may be missing, so only what a
 * decision needs is required. Every name that can reach git, a path or a command (project,
 * branch, ref, revision, Change-Id) has passed names.ts; free text (comments, commit messages,
 * subjects, accounts) is carried as data and must stay data.
 */
import { describeValue, isGerritNumber, MAX_GERRIT_NUMBER, nameProblem, validateChangeRef, changeRef } from './names';

/** Input that is not a usable Gerrit event; the message is one line and safe to log. */
export class EventError extends Error {
  override readonly name = 'EventError';
}

export type ChangeStatus = 'NEW' | 'MERGED' | 'ABANDONED' | 'DRAFT';

export interface GerritAccount {
  name?: string;
  email?: string;
  username?: string;
}

export interface GerritChange {
  project: string;
  branch: string;
  number: number;
  /** The Change-Id (`I` + 40 hex), when the event carries it. */
  changeId?: string;
  status?: ChangeStatus;
  /** False when the change is merged or abandoned; undefined when the event does not say. */
  open?: boolean;
  wip: boolean;
  private: boolean;
  commitMessage: string;
  subject?: string;
  url?: string;
  topic?: string;
  owner?: GerritAccount;
  /** The change's current patchset number, when the event includes `currentPatchSet` (query-style output). */
  currentPatchset?: number;
}

export interface GerritPatchSet {
  number: number;
  revision: string;
  ref: string;
  kind?: string;
  /** Old servers' draft patchsets: visible to their owner and reviewers only. */
  draft: boolean;
}

export interface GerritApproval {
  /** Label name; legacy codes (CRVW, VRIF, APRV) are translated to the label they stood for. */
  label: string;
  value: number;
  /** Present only when this event changed the vote. */
  oldValue?: number;
  by?: GerritAccount;
}

export interface GerritRefUpdate {
  project: string;
  /** Always a full ref: bare branch names from old servers become `refs/heads/<name>`. */
  refName: string;
  oldRev: string;
  newRev: string;
}

interface EventBase {
  eventCreatedOn?: number;
}
interface ChangeEventBase extends EventBase {
  change: GerritChange;
  patchSet: GerritPatchSet;
}

export type GerritEvent =
  | (ChangeEventBase & { type: 'patchset-created'; uploader?: GerritAccount })
  | (ChangeEventBase & { type: 'change-restored'; restorer?: GerritAccount; reason?: string })
  | (EventBase & {
      type: 'change-abandoned';
      change: GerritChange;
      patchSet?: GerritPatchSet;
      abandoner?: GerritAccount;
      reason?: string;
    })
  | (ChangeEventBase & { type: 'change-merged'; submitter?: GerritAccount; newRev?: string })
  | (ChangeEventBase & {
      type: 'comment-added';
      author?: GerritAccount;
      comment: string;
      approvals: GerritApproval[];
    })
  | (ChangeEventBase & { type: 'wip-state-changed' | 'private-state-changed'; changer?: GerritAccount })
  | (EventBase & { type: 'ref-updated'; refUpdate: GerritRefUpdate; submitter?: GerritAccount })
  /** Any other type (reviewer-added, topic-changed, dropped-output, ...): carried so it can be ignored with a reason. */
  | (EventBase & { type: 'other'; eventType: string });

export type GerritEventType = GerritEvent['type'];

/** Longest JSON text accepted as one event; real events are a few KiB, commit messages included. */
export const MAX_EVENT_TEXT_LENGTH = 1024 * 1024;

/** Very old servers named labels by category code. APRV ("Approved") is what OpenStack later called Workflow. */
const LEGACY_LABELS: Readonly<Record<string, string>> = {
  CRVW: 'Code-Review',
  VRIF: 'Verified',
  APRV: 'Workflow',
  SUBM: 'Submit',
};

const ZERO_REVISION = '0'.repeat(40);
const CHANGE_STATUSES: readonly ChangeStatus[] = ['NEW', 'MERGED', 'ABANDONED', 'DRAFT'];
const EVENT_TYPE = /^[a-z][a-z0-9-]{0,63}$/;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads one event: a JSON text (one stream-events line, one webhook body) or the parsed object. */
export function parseGerritEvent(raw: unknown): GerritEvent {
  let value = raw;
  if (typeof raw === 'string') {
    if (raw.length > MAX_EVENT_TEXT_LENGTH) throw new EventError(`event is larger than ${MAX_EVENT_TEXT_LENGTH} bytes`);
    try {
      value = JSON.parse(raw) as unknown;
    } catch {
      throw new EventError('event is not valid JSON');
    }
  }
  if (!isObject(value)) throw new EventError(`event must be a JSON object, got ${describeJson(value)}`);
  const type = value.type;
  if (typeof type !== 'string') throw new EventError('event.type: required string');
  const base: EventBase = {};
  const createdOn = optionalNumber(value.eventCreatedOn, 'eventCreatedOn');
  if (createdOn !== undefined) base.eventCreatedOn = createdOn;

  switch (type) {
    case 'patchset-created':
      return { ...base, type, ...changeAndPatchSet(value), ...account(value, 'uploader') };
    case 'change-restored':
      return { ...base, type, ...changeAndPatchSet(value), ...account(value, 'restorer'), ...text(value, 'reason') };
    case 'change-merged': {
      const event = { ...base, type, ...changeAndPatchSet(value), ...account(value, 'submitter') } as const;
      if (value.newRev === undefined || value.newRev === null) return event;
      return { ...event, newRev: revision(value.newRev, 'newRev') };
    }
    case 'change-abandoned': {
      const change = parseChange(value);
      const event = { ...base, type, change, ...account(value, 'abandoner'), ...text(value, 'reason') } as const;
      if (value.patchSet === undefined || value.patchSet === null) return event;
      return { ...event, patchSet: parsePatchSet(value.patchSet, change.number) };
    }
    case 'comment-added':
      return {
        ...base,
        type,
        ...changeAndPatchSet(value),
        ...account(value, 'author'),
        comment: optionalString(value.comment, 'comment') ?? '',
        approvals: parseApprovals(value.approvals),
      };
    case 'wip-state-changed':
    case 'private-state-changed':
      return { ...base, type, ...changeAndPatchSet(value), ...account(value, 'changer') };
    case 'ref-updated':
      return { ...base, type, refUpdate: parseRefUpdate(value), ...account(value, 'submitter') };
    default:
      if (!EVENT_TYPE.test(type)) throw new EventError(`event.type ${describeValue(type)} is not a Gerrit event type`);
      return { ...base, type: 'other', eventType: type };
  }
}

function changeAndPatchSet(event: Json): { change: GerritChange; patchSet: GerritPatchSet } {
  const change = parseChange(event);
  if (event.patchSet === undefined || event.patchSet === null) throw new EventError('patchSet: required');
  return { change, patchSet: parsePatchSet(event.patchSet, change.number) };
}

/** The top-level `project`: a string over SSH, `{name}` from the webhooks plugin. */
function topLevelProject(event: Json): unknown {
  return isObject(event.project) ? event.project.name : event.project;
}

function parseChange(event: Json): GerritChange {
  const raw = event.change;
  if (raw === undefined || raw === null) throw new EventError('change: required');
  if (!isObject(raw)) throw new EventError(`change: expected an object, got ${describeJson(raw)}`);
  const change: GerritChange = {
    project: name('project', raw.project ?? topLevelProject(event), 'change.project'),
    branch: name('branch', raw.branch, 'change.branch'),
    number: gerritNumber(raw.number, 'change.number'),
    wip: optionalBoolean(raw.wip, 'change.wip') ?? false,
    private: optionalBoolean(raw.private, 'change.private') ?? false,
    commitMessage: optionalString(raw.commitMessage, 'change.commitMessage') ?? '',
  };
  if (raw.id !== undefined && raw.id !== null) change.changeId = name('changeId', raw.id, 'change.id');
  if (raw.status !== undefined && raw.status !== null) {
    const status = CHANGE_STATUSES.find((s) => s === raw.status);
    if (!status) throw new EventError(`change.status: unknown status ${describeValue(raw.status)}`);
    change.status = status;
  }
  const open = optionalBoolean(raw.open, 'change.open');
  if (open !== undefined) change.open = open;
  else if (change.status) change.open = change.status === 'NEW' || change.status === 'DRAFT';
  const optionalTexts = { subject: raw.subject, url: raw.url, topic: raw.topic } as const;
  for (const [key, value] of Object.entries(optionalTexts)) {
    const parsed = optionalString(value, `change.${key}`);
    if (parsed !== undefined) change[key as keyof typeof optionalTexts] = parsed;
  }
  const owner = parseAccount(raw.owner);
  if (owner) change.owner = owner;
  if (isObject(raw.currentPatchSet)) {
    change.currentPatchset = gerritNumber(raw.currentPatchSet.number, 'change.currentPatchSet.number');
  }
  return change;
}

function parsePatchSet(raw: unknown, changeNumber: number): GerritPatchSet {
  if (!isObject(raw)) throw new EventError(`patchSet: expected an object, got ${describeJson(raw)}`);
  const number = gerritNumber(raw.number, 'patchSet.number');
  let ref: string;
  if (raw.ref === undefined || raw.ref === null) {
    ref = changeRef(changeNumber, number);
  } else {
    try {
      ref = validateChangeRef(raw.ref, changeNumber, number);
    } catch (error) {
      throw new EventError(`patchSet.ref: ${(error as Error).message}`);
    }
  }
  const patchSet: GerritPatchSet = {
    number,
    revision: revision(raw.revision, 'patchSet.revision'),
    ref,
    draft: optionalBoolean(raw.isDraft, 'patchSet.isDraft') ?? false,
  };
  const kind = optionalString(raw.kind, 'patchSet.kind');
  if (kind !== undefined) patchSet.kind = kind;
  return patchSet;
}

function parseApprovals(raw: unknown): GerritApproval[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new EventError(`approvals: expected a list, got ${describeJson(raw)}`);
  return raw.map((item: unknown, i) => {
    if (!isObject(item)) throw new EventError(`approvals[${i}]: expected an object, got ${describeJson(item)}`);
    const type = item.type;
    if (typeof type !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9 _-]{0,63}$/.test(type)) {
      throw new EventError(`approvals[${i}].type: expected a label name, got ${describeValue(type)}`);
    }
    const approval: GerritApproval = {
      label: LEGACY_LABELS[type] ?? type,
      value: voteValue(item.value, `approvals[${i}].value`),
    };
    if (item.oldValue !== undefined && item.oldValue !== null) {
      approval.oldValue = voteValue(item.oldValue, `approvals[${i}].oldValue`);
    }
    const by = parseAccount(item.by);
    if (by) approval.by = by;
    return approval;
  });
}

function parseRefUpdate(event: Json): GerritRefUpdate {
  const raw = event.refUpdate;
  if (raw === undefined || raw === null) throw new EventError('refUpdate: required');
  if (!isObject(raw)) throw new EventError(`refUpdate: expected an object, got ${describeJson(raw)}`);
  const refName = raw.refName;
  if (typeof refName !== 'string') throw new EventError('refUpdate.refName: required string');
  // Old servers sent `master` for refs/heads/master.
  const fullRef = refName.startsWith('refs/') ? refName : `refs/heads/${refName}`;
  return {
    project: name('project', raw.project ?? topLevelProject(event), 'refUpdate.project'),
    refName: name('ref', fullRef, 'refUpdate.refName'),
    oldRev: revision(raw.oldRev ?? ZERO_REVISION, 'refUpdate.oldRev'),
    newRev: revision(raw.newRev, 'refUpdate.newRev'),
  };
}

function parseAccount(raw: unknown): GerritAccount | undefined {
  if (!isObject(raw)) return undefined;
  const account: GerritAccount = {};
  for (const key of ['name', 'email', 'username'] as const) {
    const value = raw[key];
    if (typeof value === 'string') account[key] = value;
  }
  return account;
}

function account<K extends string>(event: Json, key: K): { [P in K]?: GerritAccount } {
  const parsed = parseAccount(event[key]);
  return (parsed ? { [key]: parsed } : {}) as { [P in K]?: GerritAccount };
}

function text<K extends string>(event: Json, key: K): { [P in K]?: string } {
  const value = optionalString(event[key], key);
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

function name(kind: 'project' | 'branch' | 'ref' | 'changeId', value: unknown, path: string): string {
  if (value === undefined || value === null) throw new EventError(`${path}: required`);
  const problem = nameProblem(kind, value);
  if (problem !== undefined) throw new EventError(`${path}: ${kind} ${describeValue(value)} ${problem}`);
  return value as string;
}

function revision(value: unknown, path: string): string {
  if (value === undefined || value === null) throw new EventError(`${path}: required`);
  const lowered = typeof value === 'string' ? value.toLowerCase() : value;
  const problem = nameProblem('revision', lowered);
  if (problem !== undefined) throw new EventError(`${path}: revision ${describeValue(value)} ${problem}`);
  return lowered as string;
}

/** A change or patchset number: an integer on new servers, a decimal string on old ones. */
function gerritNumber(value: unknown, path: string): number {
  if (value === undefined || value === null) throw new EventError(`${path}: required`);
  const number = typeof value === 'string' && /^\d{1,10}$/.test(value) ? Number(value) : value;
  if (!isGerritNumber(number)) {
    throw new EventError(`${path}: expected a number from 1 to ${MAX_GERRIT_NUMBER}, got ${describeJson(value)}`);
  }
  return number;
}

/** A vote: Gerrit sends strings ("2", "-1"); accept "+1" and integers too. */
function voteValue(value: unknown, path: string): number {
  const number = typeof value === 'string' && /^[+-]?\d{1,5}$/.test(value.trim()) ? Number(value.trim()) : value;
  if (typeof number !== 'number' || !Number.isInteger(number) || Math.abs(number) > 32767) {
    throw new EventError(`${path}: expected a vote like "-1" or "2", got ${describeJson(value)}`);
  }
  return number;
}

function optionalNumber(value: unknown, path: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const number = typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isFinite(number)) {
    throw new EventError(`${path}: expected a number, got ${describeJson(value)}`);
  }
  return number;
}

function optionalString(value: unknown, path: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new EventError(`${path}: expected a string, got ${describeJson(value)}`);
  return value;
}

function optionalBoolean(value: unknown, path: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new EventError(`${path}: expected true or false, got ${describeJson(value)}`);
}

function describeJson(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return describeValue(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return value === null ? 'null' : typeof value;
}

/** Whether a ref update deleted the ref (newRev all zeros). */
export function isRefDeletion(update: GerritRefUpdate): boolean {
  return update.newRev === ZERO_REVISION;
}
