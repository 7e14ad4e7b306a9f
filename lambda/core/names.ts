/**
 * Names that come from Gerrit (projects, branches, refs, revisions, Change-Ids) travel on to git
 * command lines, S3 keys, log paths and job environments. They are checked once, here, against
 * git's check-ref-format rules and a strict character set, so nothing downstream has to wonder
 * whether a value could be a shell metacharacter, an option (`-upload-pack=...`) or a path escape.
 */

export type NameKind = 'project' | 'branch' | 'ref' | 'revision' | 'changeId';

/** A name that failed its check; the message says which rule, and never echoes control characters. */
export class InvalidNameError extends Error {
  override readonly name = 'InvalidNameError';
}

/** Longest project, branch or ref accepted: far above any real one, far below trouble for paths and keys. */
export const MAX_NAME_LENGTH = 200;

/** Gerrit change and patchset numbers are 32-bit signed integers. */
export const MAX_GERRIT_NUMBER = 2147483647;

const REVISION = /^[0-9a-f]{40}$/;
const CHANGE_ID = /^I[0-9a-f]{40}$/;
// Letters, digits and . _ / + - only: a strict subset of what git allows, with no shell metacharacter,
// whitespace, control character, quote, glob, `~`, `^`, `:`, `\` or `@{`.
const SAFE_CHARACTERS = /^[A-Za-z0-9._/+-]+$/;
const CHANGE_REF = /^refs\/changes\/(\d{2})\/(\d+)\/(\d+)$/;

/**
 * A readable rendering of a hostile value for an error message: quoted, shortened, and ASCII only
 * (control characters, and look-alike or right-to-left characters that could disguise a log line,
 * become \uXXXX escapes).
 */
export function describeValue(value: unknown): string {
  if (typeof value !== 'string') return value === null ? 'null' : typeof value;
  const shown = value.length > 60 ? `${value.slice(0, 60)}...` : value;
  return JSON.stringify(shown).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Why a ref-like name (project, branch, full ref) breaks git's check-ref-format rules or ours. */
function refFormatProblem(value: string): string | undefined {
  if (value === '') return 'is empty';
  if (value.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  if (!SAFE_CHARACTERS.test(value)) return 'may contain only letters, digits, ".", "_", "/", "+" and "-"';
  if (value.startsWith('/') || value.endsWith('/')) return 'must not begin or end with "/"';
  if (value.includes('//')) return 'must not contain "//"';
  if (value.includes('..')) return 'must not contain ".."';
  if (value.endsWith('.')) return 'must not end with "."';
  for (const component of value.split('/')) {
    if (component.startsWith('.')) return 'has a component beginning with "."';
    if (component.startsWith('-')) return 'has a component beginning with "-"';
    if (component.endsWith('.lock')) return 'has a component ending with ".lock"';
  }
  return undefined;
}

/** Why `value` is not an acceptable name of this kind, or undefined when it is. */
export function nameProblem(kind: NameKind, value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  switch (kind) {
    case 'revision':
      return REVISION.test(value) ? undefined : 'must be 40 lowercase hex digits';
    case 'changeId':
      return CHANGE_ID.test(value) ? undefined : 'must be "I" followed by 40 lowercase hex digits';
    case 'ref':
      if (!value.startsWith('refs/')) return 'must begin with "refs/"';
      return refFormatProblem(value);
    case 'branch':
      if (value.startsWith('refs/')) return 'must be a short branch name, not a ref';
      return refFormatProblem(value);
    case 'project':
      if (value.endsWith('.git')) return 'must not end with ".git"';
      return refFormatProblem(value);
  }
}

/** Returns `value` as a checked name of this kind; throws InvalidNameError otherwise. */
export function validateName(kind: NameKind, value: unknown): string {
  const problem = nameProblem(kind, value);
  if (problem !== undefined) throw new InvalidNameError(`${kind} ${describeValue(value)} ${problem}`);
  return value as string;
}

export function isValidName(kind: NameKind, value: unknown): value is string {
  return nameProblem(kind, value) === undefined;
}

/** Whether `value` is a Gerrit change or patchset number. */
export function isGerritNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_GERRIT_NUMBER;
}

/** `refs/changes/NN/<change>/<patchset>`, NN being the last two digits of the change, zero padded. */
export function changeRef(change: number, patchset: number): string {
  if (!isGerritNumber(change) || !isGerritNumber(patchset)) {
    throw new InvalidNameError(`change ${change} / patchset ${patchset}: expected positive integers`);
  }
  return `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/${patchset}`;
}

/** Checks that `ref` is exactly the change ref of this change and patchset; returns it. */
export function validateChangeRef(ref: unknown, change: number, patchset: number): string {
  const expected = changeRef(change, patchset);
  if (ref !== expected) {
    const match = typeof ref === 'string' ? CHANGE_REF.exec(ref) : null;
    const why = match ? `does not match change ${change} patchset ${patchset}` : 'is not a change ref';
    throw new InvalidNameError(`ref ${describeValue(ref)} ${why} (expected ${expected})`);
  }
  return expected;
}
