/**
 * prepare-repos.sh against real bare repositories: the node image's git mirror used as a
 * reference (and newer upstream commits still fetched), and the errors a bad workspace gives.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JOBS, SYSTEM_PATH, UpstreamProject, git, readRepos, removeDir, runProgram, tempDir } from './support';

const SCRIPT = join(JOBS, 'prepare-repos.sh');
const NEUTRON = 'stackforge/akanda-neutron';

let root: string;
let upstream: UpstreamProject;
let caseNo = 0;

beforeAll(() => {
  root = tempDir('prepare');
  upstream = new UpstreamProject(join(root, 'git'), NEUTRON, root);
  upstream.branch('master', 'initial', { 'README.rst': 'akanda-neutron\n' });
});

afterAll(() => removeDir(root));

function env(overrides: Record<string, string> = {}): Record<string, string> {
  const dir = join(root, `case-${++caseNo}`);
  mkdirSync(join(dir, 'workspace'), { recursive: true });
  return {
    PATH: SYSTEM_PATH,
    HOME: dir,
    AKANDA_CI_WORKSPACE: join(dir, 'workspace'),
    AKANDA_CI_BRANCH: 'master',
    AKANDA_CI_GIT_URL: `file://${join(root, 'git')}`,
    AKANDA_CI_GIT_MIRROR_DIR: join(dir, 'mirrors'),
    AKANDA_CI_PROJECT: 'stackforge/akanda-rug',
    AKANDA_CI_PREPARED_PROJECTS: 'stackforge/akanda-rug',
    ...overrides,
  };
}

it("borrows objects from the node image's mirror and still gets commits newer than the mirror", async () => {
  const e = env();
  const mirror = join(e.AKANDA_CI_GIT_MIRROR_DIR!, `${NEUTRON}.git`);
  mkdirSync(join(mirror, '..'), { recursive: true });
  git(root, 'clone', '--quiet', '--bare', upstream.bare, mirror);
  const newer = upstream.branch('master', 'merged after the node image was baked', { 'NEW.rst': 'new\n' });

  const manifest = join(e.HOME!, 'repos.txt');
  const result = await runProgram(SCRIPT, ['--manifest', manifest, NEUTRON], e);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  const checkout = join(e.AKANDA_CI_WORKSPACE!, NEUTRON);
  expect(readFileSync(join(checkout, '.git', 'objects', 'info', 'alternates'), 'utf8').trim()).toBe(
    join(mirror, 'objects'),
  );
  expect(git(checkout, 'rev-parse', 'HEAD')).toBe(newer);
  expect(readRepos(manifest)).toEqual([{ project: NEUTRON, revision: newer, source: 'branch master' }]);
});

it('clones without a mirror when the node image has none', async () => {
  const e = env();
  const result = await runProgram(SCRIPT, [NEUTRON], e);
  expect(result.status).toBe(0);
  const checkout = join(e.AKANDA_CI_WORKSPACE!, NEUTRON);
  expect(existsSync(join(checkout, '.git', 'objects', 'info', 'alternates'))).toBe(false);
  expect(git(checkout, 'rev-parse', 'HEAD')).toBe(upstream.head('master'));
});

it('says which project is listed as prepared but has no checkout', async () => {
  const e = env({ AKANDA_CI_PREPARED_PROJECTS: `stackforge/akanda-rug ${NEUTRON}` });
  const result = await runProgram(SCRIPT, [NEUTRON], e);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(
    /stackforge\/akanda-neutron is in AKANDA_CI_PREPARED_PROJECTS but .* is not a git checkout/,
  );
});

it('says which project cannot be cloned', async () => {
  const result = await runProgram(SCRIPT, ['stackforge/akanda-missing'], env());
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/cannot clone stackforge\/akanda-missing from file:\/\//);
});

it.each([['../escape'], ['-upload-pack=touch PWNED'], ['stackforge/a b']])(
  'rejects the project name %j',
  async (name) => {
    const e = env();
    const result = await runProgram(SCRIPT, [name], e);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/not a valid project name/);
    expect(existsSync(join(e.HOME!, 'PWNED'))).toBe(false);
  },
);

describe('AKANDA_CI_PREPARED_PROJECTS with glob characters', () => {
  // The working directory holds files the globs would match: expanded before validation, they
  // would turn into valid project names (and mark projects as prepared that the agent never fetched).
  it.each([
    ['stackforge/akanda-ne*ron', /invalid project name: stackforge\/akanda-ne\\\*ron\n$/],
    ['stackforge/akanda-rug stackforge/akanda-n?utron', /invalid project name: stackforge\/akanda-n\\\?utron\n$/],
    ['*', /invalid project name: \\\*\n$/],
  ])('rejects %j without expanding it', async (value, message) => {
    const e = env({ AKANDA_CI_PREPARED_PROJECTS: value });
    const cwd = join(e.HOME!, 'globbed');
    mkdirSync(join(cwd, NEUTRON), { recursive: true });
    const result = await runProgram(SCRIPT, [NEUTRON], e, cwd);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(existsSync(join(e.AKANDA_CI_WORKSPACE!, NEUTRON))).toBe(false);
  });

  it('reads names separated by spaces, tabs and newlines as separate projects', async () => {
    const e = env({ AKANDA_CI_PREPARED_PROJECTS: `stackforge/akanda-rug\n\t${NEUTRON} ` });
    const result = await runProgram(SCRIPT, [NEUTRON], e);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(
      /stackforge\/akanda-neutron is in AKANDA_CI_PREPARED_PROJECTS but .* is not a git checkout/,
    );
  });
});
