/**
 * The node image bake: its git mirrors (made and refreshed from real repositories), the devstack
 * package list it downloads, and that it covers what the devstack job prepares.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { JOBS, SCRIPTS, SYSTEM_PATH, UpstreamProject, git, removeDir, runProgram, tempDir } from './support';

const BAKE = join(SCRIPTS, 'node-image', 'bake.sh');

let root: string;

beforeAll(() => {
  root = tempDir('bake');
});

afterAll(() => removeDir(root));

function listedProjects(): string[] {
  return readFileSync(join(SCRIPTS, 'node-image', 'projects.txt'), 'utf8')
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean);
}

describe('the mirrors step', () => {
  let rug: UpstreamProject;
  let env: Record<string, string>;

  beforeAll(() => {
    rug = new UpstreamProject(join(root, 'git'), 'stackforge/akanda-rug', root);
    const master = rug.branch('master', 'initial', { 'README.rst': 'rug\n' });
    rug.branch('stable/kilo', 'kilo', {}, master);
    rug.push(master, 'refs/tags/2015.1.0');
    rug.change(12345, 1, master, { 'fix.py': 'x = 1\n' });
    const projects = join(root, 'projects.txt');
    writeFileSync(projects, '# test list\nstackforge/akanda-rug\n');
    env = {
      PATH: SYSTEM_PATH,
      HOME: root,
      AKANDA_CI_GIT_BASE: `file://${join(root, 'git')}`,
      AKANDA_CI_GIT_MIRROR_DIR: join(root, 'mirrors'),
      AKANDA_CI_BAKE_PROJECTS_FILE: projects,
    };
  });

  it('mirrors branches and tags, but not change refs', async () => {
    const result = await runProgram(BAKE, ['mirrors'], env);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const mirror = join(root, 'mirrors', 'stackforge', 'akanda-rug.git');
    expect(git(mirror, 'for-each-ref', '--format=%(refname)').split('\n').sort()).toEqual([
      'refs/heads/master',
      'refs/heads/stable/kilo',
      'refs/tags/2015.1.0',
    ]);
    expect(git(mirror, 'rev-parse', 'refs/heads/master')).toBe(rug.head('master'));
  });

  it('refreshes an existing mirror when baked again', async () => {
    const newer = rug.branch('master', 'merged later', { 'NEW.rst': 'new\n' });
    const result = await runProgram(BAKE, ['mirrors'], env);
    expect(result.status).toBe(0);
    expect(git(join(root, 'mirrors', 'stackforge', 'akanda-rug.git'), 'rev-parse', 'refs/heads/master')).toBe(newer);
  });

  it('says which project cannot be mirrored', async () => {
    const projects = join(root, 'missing.txt');
    writeFileSync(projects, 'stackforge/akanda-missing\n');
    const result = await runProgram(BAKE, ['mirrors'], { ...env, AKANDA_CI_BAKE_PROJECTS_FILE: projects });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/cannot mirror stackforge\/akanda-missing/);
  });
});

it("lists devstack's packages without the NOPRIME ones", async () => {
  const debs = join(root, 'devstack', 'files', 'debs');
  mkdirSync(debs, { recursive: true });
  writeFileSync(join(debs, 'general'), 'bc\ngit # for everything\nlibvirt-dev # NOPRIME\n\n# comment\n');
  writeFileSync(join(debs, 'nova'), 'qemu-kvm  # dist:jammy\ngit\ndnsmasq-base\n');
  const result = await runProgram(BAKE, ['list-packages', join(root, 'devstack')], { PATH: SYSTEM_PATH, HOME: root });
  expect(result.status).toBe(0);
  expect(result.stdout.split('\n').filter(Boolean)).toEqual(['bc', 'dnsmasq-base', 'git', 'qemu-kvm']);
});

it('rejects an unknown step', async () => {
  const result = await runProgram(BAKE, ['everything; id'], { PATH: SYSTEM_PATH, HOME: root });
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/unknown step everything\\;\\ id/);
});

it('mirrors every project the devstack job prepares by default', () => {
  const script = readFileSync(join(JOBS, 'dsvm-tempest-akanda.sh'), 'utf8');
  const arrays = ['AKANDA_PROJECTS', 'OPENSTACK_PROJECTS'].flatMap((name) => {
    const match = new RegExp(`^${name}=\\(([^)]*)\\)`, 'm').exec(script);
    expect(match).not.toBeNull();
    return match![1]!.split(/\s+/).filter(Boolean);
  });
  expect(arrays.length).toBeGreaterThan(8);
  expect(listedProjects()).toEqual(expect.arrayContaining(arrays));
});

it('has an Image Builder component that fetches the checked bundle, bakes, and validates the mirrors', () => {
  const component = parse(readFileSync(join(SCRIPTS, 'node-image', 'component.yaml'), 'utf8')) as {
    schemaVersion: number;
    phases: { name: string; steps: { action: string; inputs: { commands: string[] } }[] }[];
  };
  expect(component.schemaVersion).toBe(1);
  const commands = (phase: string) =>
    component.phases.find((p) => p.name === phase)!.steps.flatMap((step) => step.inputs.commands);
  expect(commands('build')).toContain('bash /opt/akanda-ci/scripts/node-image/bake.sh');
  expect(commands('build').join('\n')).toMatch(/sha256sum --check --strict/);
  for (const check of commands('validate').filter((c) => c.startsWith('test -d /opt/git/'))) {
    const project = check.replace('test -d /opt/git/', '').replace(/\.git$/, '');
    expect(listedProjects()).toContain(project);
  }
});
