import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { changeRef, createGitRepos, GitRepos } from '../support/git-repos';

const execFileAsync = promisify(execFile);

describe('test/support/git-repos', () => {
  let repos: GitRepos;
  let clone: string;

  beforeAll(async () => {
    repos = await createGitRepos();
    clone = await mkdtemp(path.join(tmpdir(), 'akanda-ci-clone-'));
  });
  afterAll(async () => {
    await repos.cleanup();
    await rm(clone, { recursive: true, force: true });
  });

  it('names change refs the Gerrit way', () => {
    expect(changeRef(654, 3)).toBe('refs/changes/54/654/3');
    expect(changeRef(7, 1)).toBe('refs/changes/07/7/1');
    expect(changeRef(1200, 12)).toBe('refs/changes/00/1200/12');
  });

  it('serves a project with slashes whose change ref can be fetched from <gitUrl>/<project>', async () => {
    const project = await repos.createProject('stackforge/akanda-rug', { files: { 'setup.py': 'print(1)\n' } });
    const change = await repos.addChange('stackforge/akanda-rug', {
      change: 1234,
      patchset: 2,
      files: { 'akanda/rug/new.py': 'x = 1\n', 'run.sh': { content: '#!/bin/sh\necho hi\n', executable: true } },
    });
    expect(change.ref).toBe('refs/changes/34/1234/2');
    expect(change.revision).toMatch(/^[0-9a-f]{40}$/);

    await execFileAsync('git', ['init', '--quiet', clone]);
    await execFileAsync('git', ['fetch', '--quiet', `${repos.gitUrl}/stackforge/akanda-rug`, change.ref], {
      cwd: clone,
    });
    await execFileAsync('git', ['checkout', '--quiet', 'FETCH_HEAD'], { cwd: clone });
    const { stdout } = await execFileAsync('git', ['rev-parse', 'HEAD', 'HEAD^'], { cwd: clone });
    expect(stdout.trim().split('\n')).toEqual([change.revision, project.revision]);
    expect(await readFile(path.join(clone, 'setup.py'), 'utf8')).toBe('print(1)\n');
    expect(await readFile(path.join(clone, 'akanda/rug/new.py'), 'utf8')).toBe('x = 1\n');
    const { stdout: mode } = await execFileAsync('git', ['ls-files', '-s', 'run.sh'], { cwd: clone });
    expect(mode.startsWith('100755')).toBe(true);
  });

  it('advances branches and rejects hostile project names', async () => {
    await repos.createProject('openstack/astara', { branch: 'stable/kilo' });
    const tip = await repos.advanceBranch('openstack/astara', 'stable/kilo', { 'merged.txt': 'yes\n' });
    expect(await repos.revisionOf('openstack/astara', 'refs/heads/stable/kilo')).toBe(tip);
    await expect(repos.createProject('../escape')).rejects.toThrow(/invalid project name/);
    await expect(repos.createProject('-upload-pack=evil')).rejects.toThrow(/invalid project name/);
  });
});
