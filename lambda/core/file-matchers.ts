/**
 * Job file matchers, with Zuul's semantics so configs mean what OpenStack people expect:
 * - patterns match from the start of the path (Python's `re.match`), so `doc/` matches
 *   `doc/index.rst` but not `src/doc/x`; add `.*` to match anywhere;
 * - `/COMMIT_MSG` (Gerrit lists it, and its siblings `/MERGE_LIST` and `/PATCHSET_LEVEL`, with
 *   every patchset) always counts as changed: a patchset that changes nothing but its commit
 *   message runs every job; next to real files it neither selects a job by `files` nor keeps
 *   one from being skipped by `irrelevant-files`.
 */
import type { JobConfig } from './config';

type FileMatchers = Pick<JobConfig, 'files' | 'irrelevant-files'>;

interface CompiledMatchers {
  files?: RegExp[];
  irrelevant?: RegExp[];
}

const compiledMatchers = new WeakMap<FileMatchers, CompiledMatchers>();

/** Anchored at the start like Python's re.match: the sticky flag with lastIndex 0. */
function compileAnchored(source: string): RegExp {
  return new RegExp(source, 'y');
}

function matchesFromStart(regex: RegExp, path: string): boolean {
  regex.lastIndex = 0;
  return regex.test(path);
}

function compiled(job: FileMatchers): CompiledMatchers {
  let matchers = compiledMatchers.get(job);
  if (!matchers) {
    matchers = {};
    if (job.files) matchers.files = job.files.map(compileAnchored);
    if (job['irrelevant-files']) matchers.irrelevant = job['irrelevant-files'].map(compileAnchored);
    compiledMatchers.set(job, matchers);
  }
  return matchers;
}

/** Gerrit's magic paths (`/COMMIT_MSG`, `/MERGE_LIST`, `/PATCHSET_LEVEL`): not files in the tree. */
export function isMagicPath(path: string): boolean {
  return path.startsWith('/');
}

/** Whether a job runs for a change with these changed files (as Gerrit REST lists them). */
export function jobRunsForFiles(job: FileMatchers, changedFiles: readonly string[]): boolean {
  const matchers = compiled(job);
  if (!matchers.files && !matchers.irrelevant) return true;
  const files = changedFiles.filter((path) => !isMagicPath(path));
  // Only the commit message changed (or Gerrit listed nothing else): it counts, so the job runs.
  if (files.length === 0) return true;
  if (matchers.files && !files.some((path) => matchers.files!.some((regex) => matchesFromStart(regex, path)))) {
    return false;
  }
  if (
    matchers.irrelevant &&
    files.every((path) => matchers.irrelevant!.some((regex) => matchesFromStart(regex, path)))
  ) {
    return false;
  }
  return true;
}
