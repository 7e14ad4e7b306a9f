/**
 * What the job-script tests share: running a script as a real child process, real git
 * repositories (bare "Gerrit" repositories with change refs, and the agent's checkouts), and
 * reading back what a script wrote.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  mkdtempSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const SCRIPTS = join(REPO_ROOT, 'scripts');
export const JOBS = join(SCRIPTS, 'jobs');

/** The system tools only: no pyenv or cargo shims ahead of Debian's python3 and tox. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Node gives children socketpairs for stdio, and Debian's bash then reads ~/.bashrc as if started
 * by sshd: a HOME without one keeps the developer's shell setup out of the tests.
 */
const BASH_ENV_FOR_TESTS = { PATH: SYSTEM_PATH, HOME: '/nonexistent' };

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with exactly `env` (no inherited variables) and resolves with its exit status. */
export function runProgram(
  file: string,
  args: readonly string[],
  env: Record<string, string>,
  cwd: string = REPO_ROOT,
): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    execFile(file, args, { env, cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        // not started at all (ENOENT, EACCES): say so rather than look like a script failure
        resolvePromise({ status: -1, stdout: String(stdout), stderr: `${error.message}\n${String(stderr)}` });
        return;
      }
      resolvePromise({ status: error ? Number(error.code) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `akanda-ci-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

const GIT_ENV = {
  PATH: SYSTEM_PATH,
  HOME: tmpdir(),
  GIT_AUTHOR_NAME: 'Akanda Dev',
  GIT_AUTHOR_EMAIL: 'dev@example.org',
  GIT_COMMITTER_NAME: 'Akanda Dev',
  GIT_COMMITTER_EMAIL: 'dev@example.org',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8' }).trim();
}

/** A bare repository standing in for one Gerrit project, and a work tree to make commits in. */
export class UpstreamProject {
  readonly bare: string;
  private readonly work: string;

  constructor(
    readonly gitBase: string,
    readonly name: string,
    scratch: string,
  ) {
    this.bare = join(gitBase, name);
    this.work = join(scratch, 'work', name);
    mkdirSync(this.bare, { recursive: true });
    git(this.bare, 'init', '--quiet', '--bare', '--initial-branch=master');
    mkdirSync(this.work, { recursive: true });
    git(this.work, 'init', '--quiet', '--initial-branch=master');
    git(this.work, 'remote', 'add', 'origin', this.bare);
  }

  /** Commits `files` on top of `base` (a commit or branch; default: the current HEAD). */
  commit(message: string, files: Record<string, string>, base?: string): string {
    if (base) git(this.work, 'checkout', '--quiet', '--detach', base);
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(this.work, path)), { recursive: true });
      writeFileSync(join(this.work, path), content, { mode: path.endsWith('.sh') ? 0o755 : 0o644 });
    }
    git(this.work, 'add', '--all');
    git(this.work, 'commit', '--quiet', '--allow-empty', '-m', message);
    return git(this.work, 'rev-parse', 'HEAD');
  }

  /** Points `ref` (refs/heads/..., refs/tags/..., refs/changes/...) at `commit` upstream. */
  push(commit: string, ref: string): void {
    git(this.work, 'push', '--quiet', '--force', 'origin', `${commit}:${ref}`);
  }

  branch(name: string, message: string, files: Record<string, string> = {}, base?: string): string {
    const commit = this.commit(message, files, base);
    this.push(commit, `refs/heads/${name}`);
    return commit;
  }

  /** Uploads a patchset: a commit on `base` under refs/changes/NN/<change>/<patchset>. */
  change(change: number, patchset: number, base: string, files: Record<string, string>): ChangeRef {
    const revision = this.commit(`change ${change},${patchset} of ${this.name}`, files, base);
    const ref = `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/${patchset}`;
    this.push(revision, ref);
    return { project: this.name, change, patchset, ref, revision };
  }

  head(branch: string): string {
    return git(this.bare, 'rev-parse', `refs/heads/${branch}`);
  }
}

export interface ChangeRef {
  project: string;
  change: number;
  patchset: number;
  ref: string;
  revision: string;
}

/** What the node agent does before a job: the project (or a Depends-On) checked out at a ref. */
export function agentCheckout(workspace: string, gitBase: string, project: string, ref: string): string {
  const dir = join(workspace, project);
  mkdirSync(dirname(dir), { recursive: true });
  git(workspace, 'clone', '--quiet', '--no-checkout', join(gitBase, project), dir);
  git(dir, 'fetch', '--quiet', 'origin', ref);
  git(dir, 'checkout', '--quiet', '--detach', 'FETCH_HEAD');
  return git(dir, 'rev-parse', 'HEAD');
}

/** One line of repos.txt: project, commit, where it came from. */
export interface PreparedRepo {
  project: string;
  revision: string;
  source: string;
}

export function readRepos(file: string): PreparedRepo[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [project = '', revision = '', source = ''] = line.split('\t');
      return { project, revision, source };
    });
}

/** commands.txt without timestamps and exit lines: the commands in order, as written. */
export function readCommands(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => / \$ /.test(line))
    .map((line) => line.slice(line.indexOf(' $ ') + 3));
}

/** Splits a recorded command back into its words the way bash would, without running anything. */
export function shellWords(line: string): string[] {
  const out = execFileSync('bash', ['-c', 'eval "words=( $1 )"; printf "%s\\0" "${words[@]}"', 'words', line], {
    env: BASH_ENV_FOR_TESTS,
    encoding: 'utf8',
  });
  return out.split('\0').slice(0, -1);
}

export interface Localrc {
  /** Values of the requested variables after bash sourced the [[local|localrc]] section. */
  vars: Record<string, string | undefined>;
  /** enable_plugin / enable_service / disable_service calls, each as its words. */
  calls: string[][];
}

/** Sources local.conf's localrc section in bash, as devstack does, with the devstack functions stubbed. */
export function sourceLocalrc(localConf: string, names: readonly string[]): Localrc {
  const lines = readFileSync(localConf, 'utf8').split('\n');
  const start = lines.indexOf('[[local|localrc]]');
  if (start < 0) throw new Error(`${localConf} has no [[local|localrc]] section`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('[['));
  const section = lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
  const script = `
record() { local IFS=$'\\x1f'; printf 'call\\x1f%s\\n' "$*"; }
enable_plugin() { record enable_plugin "$@"; }
enable_service() { record enable_service "$@"; }
disable_service() { record disable_service "$@"; }
source "$1"
shift
for name in "$@"; do
  if [[ -v $name ]]; then printf 'var\\x1f%s\\x1f%s\\n' "$name" "\${!name}"; fi
done
`;
  const sectionFile = `${localConf}.localrc-section`;
  writeFileSync(sectionFile, section);
  const out = execFileSync('bash', ['-c', script, 'localrc', sectionFile, ...names], {
    env: BASH_ENV_FOR_TESTS,
    encoding: 'utf8',
  });
  const result: Localrc = { vars: {}, calls: [] };
  for (const line of out.split('\n').filter(Boolean)) {
    const [kind, ...rest] = line.split('\x1f');
    if (kind === 'call') result.calls.push(rest);
    else if (kind === 'var') result.vars[rest[0] ?? ''] = rest.slice(1).join('\x1f');
  }
  return result;
}

/**
 * A PATH directory holding every program of the system PATH except `without`, so a test can show
 * what a script does on a node that lacks a tool, without changing this machine.
 */
export function pathWithout(scratch: string, without: readonly string[]): string {
  const bin = join(scratch, 'bin-without');
  mkdirSync(bin, { recursive: true });
  for (const dir of SYSTEM_PATH.split(':')) {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (without.includes(entry)) continue;
      try {
        symlinkSync(join(dir, entry), join(bin, entry));
      } catch {
        // an earlier PATH directory already provided this name
      }
    }
  }
  return bin;
}

/** Processes whose working directory is `dir` or below it: what a job left running there. */
export function processesUnder(dir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const cwd = readlinkSync(`/proc/${pid}/cwd`);
        return cwd === dir || cwd.startsWith(`${dir}/`);
      } catch {
        return false; // gone, or not ours to look at
      }
    })
    .map(Number);
}
