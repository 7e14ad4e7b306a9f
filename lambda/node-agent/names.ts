/**
 * What the agent accepts as a project, branch, ref or revision before any of them reaches git.
 *
 * The core validates Gerrit-derived values too; the agent checks again because the job spec
 * crosses a network boundary and these strings become git arguments and directory names.
 * Kept local until lambda/core/names.ts lands, then this file should delegate to it.
 */

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

function safeSegments(value: string): boolean {
  return value.split('/').every((part) => SEGMENT.test(part) && !part.endsWith('.lock') && !part.endsWith('.'));
}

/** `stackforge/akanda-rug`: no leading dash, no `..`, no empty segment, nothing a shell or git would read as more. */
export function isSafeProjectName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && !name.includes('..') && safeSegments(name);
}

/** `master`, `stable/kilo`: a git branch name that is also a safe path. */
export function isSafeBranchName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && !name.includes('..') && safeSegments(name);
}

const CHANGE_REF = /^refs\/changes\/\d{2}\/[1-9]\d*\/[1-9]\d*$/;

/** `refs/changes/NN/N/P` with NN the change's last two digits, or `refs/heads/<branch>` / `refs/tags/<tag>`. */
export function isSafeGitRef(ref: string): boolean {
  if (CHANGE_REF.test(ref)) {
    const [, , nn, change] = ref.split('/');
    return change.padStart(2, '0').slice(-2) === nn;
  }
  const match = /^refs\/(heads|tags)\/(.+)$/.exec(ref);
  return match !== null && isSafeBranchName(match[2]);
}

export const REVISION_PATTERN = /^[0-9a-f]{40}$/;

export const JOB_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const BUILD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
