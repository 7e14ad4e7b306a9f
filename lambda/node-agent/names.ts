/**
 * What the agent accepts as a project, branch, ref or revision before any of them reaches git.
 *
 * The core's rules (lambda/core/names.ts) apply; the agent checks again because the job spec
 * crosses a network boundary and these strings become git arguments and directory names. The
 * agent fetches only change refs (whose NN must match the change), branches and tags.
 */
import { isValidName } from '../core/names';

export function isSafeProjectName(name: string): boolean {
  return isValidName('project', name);
}

export function isSafeBranchName(name: string): boolean {
  return isValidName('branch', name);
}

const CHANGE_REF = /^refs\/changes\/(\d{2})\/([1-9]\d*)\/[1-9]\d*$/;

/** `refs/changes/NN/N/P` with NN the change's last two digits, or `refs/heads/<branch>` / `refs/tags/<tag>`. */
export function isSafeGitRef(ref: string): boolean {
  if (!isValidName('ref', ref)) {
    return false;
  }
  const change = CHANGE_REF.exec(ref);
  if (change) {
    return change[2].padStart(2, '0').slice(-2) === change[1];
  }
  return /^refs\/(heads|tags)\/./.test(ref);
}

export const REVISION_PATTERN = /^[0-9a-f]{40}$/;

export const JOB_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const BUILD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
