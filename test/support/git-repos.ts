/**
 * Real bare git repositories laid out like a Gerrit server's: `<root>/<project>` for project names
 * with slashes (`stackforge/akanda-rug`), branches under `refs/heads/`, and changes under
 * `refs/changes/NN/N/P` (NN = last two digits of the change number, zero padded).
 *
 * `gitUrl` is the base a node fetches `<gitUrl>/<project>` from, as `gerrit.gitUrl` is.
 * Commits are written with plumbing (a private index file, `commit-tree`, `update-ref`), so no
 * working tree is needed and nothing depends on the user's git config.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** File contents by path inside the repository (`dir/file.txt`); `null` deletes the file. */
export type FileTree = Record<string, string | { content: string; executable?: boolean } | null>;

export interface ProjectOptions {
  /** The branch created with the first commit; default `master`. */
  branch?: string;
  files?: FileTree;
  message?: string;
}

export interface ChangeOptions {
  change: number;
  patchset: number;
  /** Branch the change is based on (its tip is the parent); default `master`. */
  branch?: string;
  /** Base the change on this commit instead of the branch tip (e.g. another change's revision). */
  parent?: string;
  files?: FileTree;
  message?: string;
}

export interface CreatedProject {
  project: string;
  /** The bare repository on disk. */
  path: string;
  branch: string;
  revision: string;
}

export interface CreatedChange {
  project: string;
  change: number;
  patchset: number;
  /** `refs/changes/NN/N/P` */
  ref: string;
  revision: string;
}

export interface GitRepos {
  /** Directory holding every bare repository. */
  root: string;
  /** `file://<root>`: fetch `<gitUrl>/<project>`. */
  gitUrl: string;
  createProject(project: string, options?: ProjectOptions): Promise<CreatedProject>;
  /** Writes a commit on top of the branch tip (or `parent`) and points the change ref at it. */
  addChange(project: string, options: ChangeOptions): Promise<CreatedChange>;
  /** Adds a commit to a branch (a merge, as `ref-updated` reports it); returns the new tip. */
  advanceBranch(project: string, branch: string, files: FileTree, message?: string): Promise<string>;
  /** A lightweight tag `refs/tags/<name>` at `revision` (pbr-based projects take their version from tags). */
  tag(project: string, name: string, revision: string): Promise<void>;
  /** Current revision of any ref, e.g. `refs/heads/master`. */
  revisionOf(project: string, ref: string): Promise<string>;
  cleanup(): Promise<void>;
}

/** `refs/changes/NN/N/P` as Gerrit names it. */
export function changeRef(change: number, patchset: number): string {
  return `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/${patchset}`;
}

const PROJECT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Akanda Test',
  GIT_AUTHOR_EMAIL: 'test@akanda-ci.invalid',
  GIT_COMMITTER_NAME: 'Akanda Test',
  GIT_COMMITTER_EMAIL: 'test@akanda-ci.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

/** Creates an empty root under the OS temp dir (or `root` when given). */
export async function createGitRepos(root?: string): Promise<GitRepos> {
  const base = root ?? (await mkdtemp(path.join(tmpdir(), 'akanda-ci-git-')));
  await mkdir(base, { recursive: true });

  const repoPath = (project: string): string => {
    if (!PROJECT_PATTERN.test(project) || project.split('/').some((part) => part === '..' || part === '.')) {
      throw new Error(`invalid project name for a test repository: ${JSON.stringify(project)}`);
    }
    return path.join(base, ...project.split('/'));
  };

  const git = async (project: string, args: string[], env: Record<string, string> = {}): Promise<string> => {
    const { stdout } = await execFileAsync('git', args, {
      cwd: repoPath(project),
      env: { ...process.env, ...GIT_ENV, ...env },
    });
    return stdout.trim();
  };

  /** A commit whose tree is `parent`'s tree with `files` applied. */
  const writeCommit = async (
    project: string,
    parent: string | undefined,
    files: FileTree,
    message: string,
  ): Promise<string> => {
    const indexFile = path.join(repoPath(project), `akanda-test-index-${process.pid}-${Date.now()}`);
    const env = { GIT_INDEX_FILE: indexFile };
    try {
      if (parent) {
        await git(project, ['read-tree', parent], env);
      } else {
        await git(project, ['read-tree', '--empty'], env);
      }
      for (const [file, value] of Object.entries(files)) {
        if (value === null) {
          await git(project, ['update-index', '--force-remove', '--', file], env);
          continue;
        }
        const content = typeof value === 'string' ? value : value.content;
        const mode = typeof value === 'object' && value.executable ? '100755' : '100644';
        const blobFile = `${indexFile}.blob`;
        await writeFile(blobFile, content);
        const blob = await git(project, ['hash-object', '-w', '--', blobFile]);
        await rm(blobFile, { force: true });
        await git(project, ['update-index', '--add', '--cacheinfo', `${mode},${blob},${file}`], env);
      }
      const tree = await git(project, ['write-tree'], env);
      const parentArgs = parent ? ['-p', parent] : [];
      return await git(project, ['commit-tree', tree, ...parentArgs, '-m', message]);
    } finally {
      await rm(indexFile, { force: true });
    }
  };

  const revisionOf = (project: string, ref: string): Promise<string> =>
    git(project, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);

  return {
    root: base,
    gitUrl: `file://${base}`,

    async createProject(project, options = {}) {
      const branch = options.branch ?? 'master';
      const dir = repoPath(project);
      await mkdir(dir, { recursive: true });
      await git(project, ['init', '--bare', '--quiet']);
      await git(project, ['symbolic-ref', 'HEAD', `refs/heads/${branch}`]);
      const files = options.files ?? { 'README.rst': `${project}\n` };
      const revision = await writeCommit(project, undefined, files, options.message ?? `Initial commit of ${project}`);
      await git(project, ['update-ref', `refs/heads/${branch}`, revision]);
      return { project, path: dir, branch, revision };
    },

    async addChange(project, options) {
      const parent = options.parent ?? (await revisionOf(project, `refs/heads/${options.branch ?? 'master'}`));
      const ref = changeRef(options.change, options.patchset);
      const message =
        options.message ?? `Change ${options.change} patchset ${options.patchset}\n\nChange-Id: I${'0'.repeat(40)}`;
      const files = options.files ?? { [`change-${options.change}.txt`]: `patchset ${options.patchset}\n` };
      const revision = await writeCommit(project, parent, files, message);
      await git(project, ['update-ref', ref, revision]);
      return { project, change: options.change, patchset: options.patchset, ref, revision };
    },

    async advanceBranch(project, branch, files, message) {
      const parent = await revisionOf(project, `refs/heads/${branch}`);
      const revision = await writeCommit(project, parent, files, message ?? `Merge into ${branch}`);
      await git(project, ['update-ref', `refs/heads/${branch}`, revision, parent]);
      return revision;
    },

    async tag(project, name, revision) {
      await git(project, ['update-ref', `refs/tags/${name}`, revision]);
    },

    revisionOf,

    async cleanup() {
      await rm(base, { recursive: true, force: true });
    },
  };
}
