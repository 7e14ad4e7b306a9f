/**
 * Prepares every repository of the job at `<workspace>/<project>`: `git init`, `git fetch` of the
 * change ref from `<gitUrl>/<project>`, checkout of FETCH_HEAD, and a check that the checkout is
 * the revision the control plane planned (a ref that moved means a different patch was fetched).
 *
 * git runs through execFile with argument arrays; names and refs are validated first and passed
 * after `--` where git accepts options, so a hostile value can neither reach a shell nor become
 * a git option.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { redactUrl } from './http';
import type { RepositorySpec } from './job-spec';
import { isSafeGitRef, isSafeProjectName, REVISION_PATTERN } from './names';

export class GitPrepareError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GitPrepareError';
  }
}

export interface GitPrepareOptions {
  gitUrl: string;
  workspace: string;
  /** Receives git's own output and the agent's notes, for the console log. */
  log: (line: string) => void;
  /** Aborts a running git command (timeout, spot interruption). */
  signal?: AbortSignal;
  /** Per git command. */
  timeoutMs?: number;
}

/** Where a project is checked out: `<workspace>/stackforge/akanda-rug`. */
export function projectDir(workspace: string, project: string): string {
  if (!isSafeProjectName(project)) {
    throw new GitPrepareError(`refusing unsafe project name ${JSON.stringify(project)}`);
  }
  return path.join(workspace, ...project.split('/'));
}

function gitEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    LANG: 'C.UTF-8',
    // A fetch that wants credentials must fail, not wait for a prompt nobody answers.
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'true',
    GIT_CONFIG_NOSYSTEM: '1',
  };
}

function runGit(args: string[], cwd: string, options: GitPrepareOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-c', 'advice.detachedHead=false', '-c', 'credential.helper=', ...args],
      {
        cwd,
        env: gitEnv(),
        timeout: options.timeoutMs ?? 30 * 60 * 1000,
        maxBuffer: 16 * 1024 * 1024,
        signal: options.signal,
      },
      (error, stdout, stderr) => {
        for (const line of `${stderr}`.split('\n')) {
          if (line.trim() !== '') {
            options.log(`git: ${line}`);
          }
        }
        if (error) {
          const lastLine = `${stderr}`.trim().split('\n').pop() ?? '';
          reject(new GitPrepareError(lastLine || error.message));
          return;
        }
        resolve(`${stdout}`.trim());
      },
    );
  });
}

/** Fetches and checks out one repository; returns its directory. */
export async function prepareRepository(repository: RepositorySpec, options: GitPrepareOptions): Promise<string> {
  const { project, ref, revision } = repository;
  const dir = projectDir(options.workspace, project);
  if (!isSafeGitRef(ref)) {
    throw new GitPrepareError(`refusing unsafe git ref ${JSON.stringify(ref)} for ${project}`);
  }
  if (revision !== undefined && !REVISION_PATTERN.test(revision)) {
    throw new GitPrepareError(`refusing revision ${JSON.stringify(revision)} for ${project}: expected 40 hex digits`);
  }
  await mkdir(dir, { recursive: true });
  if ((await readdir(dir)).length > 0) {
    throw new GitPrepareError(`${dir} is not empty (is ${project} listed twice?)`);
  }
  const url = `${options.gitUrl.replace(/\/+$/, '')}/${project}`;
  options.log(`fetching ${ref} of ${project} from ${redactUrl(url)}`);
  await runGit(['init', '--quiet'], dir, options);
  try {
    // Tags too: pbr-based projects derive their version from them (`git describe`).
    await runGit(['fetch', '--quiet', '--tags', '--', url, ref], dir, options);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new GitPrepareError(`git fetch of ${ref} from ${redactUrl(url)} failed: ${why}`);
  }
  await runGit(['checkout', '--quiet', '--detach', 'FETCH_HEAD'], dir, options);
  const head = await runGit(['rev-parse', '--verify', 'HEAD'], dir, options);
  if (revision !== undefined && head !== revision) {
    throw new GitPrepareError(`${project} ${ref} is at ${head}, expected ${revision} (the ref moved?)`);
  }
  options.log(`${project} is at ${head}`);
  return dir;
}

/** Prepares the project under test first, then the Depends-On repositories, in order. */
export async function prepareRepositories(
  repositories: readonly RepositorySpec[],
  options: GitPrepareOptions,
): Promise<string[]> {
  const dirs = new Map<string, string>();
  for (const repository of repositories) {
    const prepared = dirs.get(repository.project);
    if (prepared !== undefined) {
      // A Depends-On in the same project is already in the checkout's history (or conflicts with it).
      options.log(`${repository.project} is already prepared; not fetching ${repository.ref} again`);
      continue;
    }
    dirs.set(repository.project, await prepareRepository(repository, options));
  }
  return [...dirs.values()];
}
