/**
 * dsvm-tempest-akanda.sh --dry-run, run for real against bare git repositories with change refs:
 * the repositories it prepares, the local.conf devstack would source, the commands it would run,
 * and what it does with hostile input.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Server, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { findJob, parseConfig } from '../../lambda/core/config';
import { PlannedJob, planEvent } from '../../lambda/core/planner';
import {
  JOBS,
  REPO_ROOT,
  SCRIPTS,
  SYSTEM_PATH,
  agentCheckout,
  git,
  processesUnder,
  readCommands,
  readRepos,
  removeDir,
  runProgram,
  shellWords,
  sourceLocalrc,
  tempDir,
  UpstreamProject,
} from './support';
import { AKANDA, OPENSTACK, World } from './world';

const SCRIPT = join(JOBS, 'dsvm-tempest-akanda.sh');
const IMAGE_URL = 'https://images.example.org/akanda-appliance-latest.qcow2';
const LOCALRC_NAMES = [
  'DEST',
  'LIBVIRT_TYPE',
  'RECLONE',
  'BUILD_AKANDA_APPLIANCE_IMAGE',
  'BUILD_ASTARA_APPLIANCE_IMAGE',
  'AKANDA_DEV_APPLIANCE_URL',
  'ASTARA_DEV_APPLIANCE_URL',
  'LOGFILE',
  'SCREEN_LOGDIR',
];

let root: string;
let world: World;
let caseNo = 0;

beforeAll(() => {
  root = tempDir('dsvm');
  world = new World(root);
});

afterAll(() => removeDir(root));

interface Case {
  dir: string;
  workspace: string;
  logDir: string;
  dest: string;
  env: Record<string, string>;
}

/** A fresh node: the agent has checked out `checkouts` (project under test first) at their refs. */
function newCase(checkouts: { project: string; ref: string }[], overrides: Record<string, string> = {}): Case {
  const dir = join(root, `case-${++caseNo}`);
  const workspace = join(dir, 'workspace');
  mkdirSync(workspace, { recursive: true });
  for (const { project, ref } of checkouts) agentCheckout(workspace, world.gitBase, project, ref);
  const first = checkouts[0]!;
  const change = /^refs\/changes\/\d+\/(\d+)\/(\d+)$/.exec(first.ref);
  const logDir = join(dir, 'logs');
  const dest = join(dir, 'opt-stack');
  const env: Record<string, string> = {
    PATH: SYSTEM_PATH,
    HOME: dir,
    AKANDA_CI_PROJECT: first.project,
    AKANDA_CI_BRANCH: 'master',
    AKANDA_CI_CHANGE: change?.[1] ?? '',
    AKANDA_CI_PATCHSET: change?.[2] ?? '',
    AKANDA_CI_REF: first.ref,
    AKANDA_CI_REVISION: checkoutRevision(workspace, first.project),
    AKANDA_CI_PIPELINE: 'check',
    AKANDA_CI_JOB: 'dsvm-tempest-akanda',
    AKANDA_CI_IMAGE_MODE: 'prebuilt',
    AKANDA_CI_IMAGE_URL: IMAGE_URL,
    AKANDA_CI_WORKSPACE: workspace,
    AKANDA_CI_LOG_DIR: logDir,
    AKANDA_CI_ARTIFACT_DIR: join(dir, 'artifacts'),
    AKANDA_CI_GIT_URL: world.gitUrl,
    AKANDA_CI_PREPARED_PROJECTS: checkouts.map((c) => c.project).join(' '),
    AKANDA_CI_SCRIPTS: join(JOBS, '..'),
    AKANDA_CI_TIMEOUT: '9000',
    AKANDA_CI_DEVSTACK_DEST: dest,
    AKANDA_CI_GIT_MIRROR_DIR: join(dir, 'no-mirrors'),
    AKANDA_CI_KVM_DEVICE: join(dir, 'no-kvm'),
    AKANDA_CI_FILES_CACHE: join(dir, 'files-cache'),
    ...overrides,
  };
  return { dir, workspace, logDir, dest, env };
}

function checkoutRevision(workspace: string, project: string): string {
  return readFileSync(join(workspace, project, '.git', 'HEAD'), 'utf8').trim();
}

function dryRun(c: Case, args: string[] = []) {
  return runProgram(SCRIPT, ['--dry-run', ...args], c.env, join(c.workspace, c.env.AKANDA_CI_PROJECT ?? ''));
}

function repoMap(c: Case): Map<string, { revision: string; source: string }> {
  return new Map(readRepos(join(c.logDir, 'repos.txt')).map((r) => [r.project, r]));
}

describe('a check of an akanda-rug change on master with the prebuilt image', () => {
  let c: Case;
  let result: Awaited<ReturnType<typeof dryRun>>;

  beforeAll(async () => {
    c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }]);
    mkdirSync(c.env.AKANDA_CI_FILES_CACHE!);
    result = await dryRun(c);
  });

  it('exits 0 without touching the devstack directory', () => {
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(existsSync(c.dest)).toBe(false);
  });

  it('keeps the change under test at its ref and prepares every other repository at master', () => {
    const repos = repoMap(c);
    expect(repos.get(AKANDA.rug)?.revision).toBe(world.rugChange.revision);
    expect(repos.get(AKANDA.rug)?.source).toMatch(/change under test/);
    for (const project of [AKANDA.neutron, AKANDA.appliance, AKANDA.builder, AKANDA.horizon, ...OPENSTACK]) {
      expect(repos.get(project)).toEqual({
        project,
        revision: world.project(project).head('master'),
        source: 'branch master',
      });
      expect(readFileSync(join(c.workspace, project, '.git', 'HEAD'), 'utf8').trim()).toBe(
        world.project(project).head('master'),
      );
    }
  });

  it('writes a local.conf that enables the plugin from the prepared rug checkout and points at the image URL', () => {
    const localrc = sourceLocalrc(join(c.logDir, 'local.conf'), LOCALRC_NAMES);
    expect(localrc.vars).toEqual({
      DEST: c.dest,
      LIBVIRT_TYPE: 'qemu',
      RECLONE: 'no',
      BUILD_AKANDA_APPLIANCE_IMAGE: 'False',
      BUILD_ASTARA_APPLIANCE_IMAGE: 'False',
      AKANDA_DEV_APPLIANCE_URL: IMAGE_URL,
      ASTARA_DEV_APPLIANCE_URL: IMAGE_URL,
      LOGFILE: join(c.dest, 'logs', 'stack.sh.log'),
      SCREEN_LOGDIR: join(c.dest, 'logs'),
    });
    expect(localrc.calls).toEqual([
      ['enable_plugin', 'akanda-rug', `file://${join(c.workspace, AKANDA.rug)}`, world.rugChange.revision],
      ['enable_service', 'ak-rug', 'q-svc', 'q-agt', 'tempest'],
      ['disable_service', 'n-net'],
      ['disable_service', 'horizon'],
    ]);
  });

  it('lists the commands in order: place the checkouts, verify the image, devstack, Tempest, functional, logs', () => {
    const commands = readCommands(join(c.logDir, 'commands.txt')).map(shellWords);
    const at = (predicate: (words: string[]) => boolean) => {
      const index = commands.findIndex(predicate);
      expect(index).toBeGreaterThanOrEqual(0);
      return index;
    };
    const placeRug = at(
      (w) => w.join(' ') === `git -C ${c.dest}/akanda-rug checkout --quiet --detach ${world.rugChange.revision}`,
    );
    const copyConf = at((w) => w[0] === 'cp' && w[2] === `${c.dest}/devstack/local.conf`);
    const copyCache = at((w) => w.join(' ') === `cp -R ${c.env.AKANDA_CI_FILES_CACHE}/. ${c.dest}/devstack/files/`);
    const verify = at(
      (w) =>
        w[0] === join(JOBS, 'fetch-verified-image.sh') &&
        w[1] === IMAGE_URL &&
        w[2] === `${c.dest}/devstack/files/akanda-appliance-latest.qcow2`,
    );
    const stack = at((w) => w.at(-1) === './stack.sh');
    const tempest = at((w) => w.includes('all'));
    const functional = at((w) => w.slice(-3).join(' ') === 'tox -e functional');
    const collect = at((w) => w[0] === join(JOBS, 'collect-devstack-logs.sh'));
    const order = [placeRug, copyConf, copyCache, verify, stack, tempest, functional, collect];
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // the default subset: Tempest's network tests, which need Akanda's routers
    expect(commands[tempest]!.slice(-5, -1)).toEqual(['tox', '-e', 'all', '--']);
    expect(commands[tempest]!.at(-1)).toMatch(/^\^tempest\\\.\(api\\\.network/);
    expect(commands[stack]!.slice(0, 3)).toEqual(['timeout', '--kill-after=30', expect.stringMatching(/^\d+$/)]);
  });
});

describe('a change to akanda-appliance with a Depends-On akanda-rug change, image built from source', () => {
  let c: Case;

  beforeAll(async () => {
    c = newCase(
      [
        { project: AKANDA.appliance, ref: world.applianceChange.ref },
        { project: AKANDA.rug, ref: world.rugChange.ref },
      ],
      { AKANDA_CI_IMAGE_MODE: 'build', AKANDA_CI_IMAGE_URL: '' },
    );
    const result = await dryRun(c);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('prepares both changes at their refs and the rest at master', () => {
    const repos = repoMap(c);
    expect(repos.get(AKANDA.appliance)?.revision).toBe(world.applianceChange.revision);
    expect(repos.get(AKANDA.rug)?.revision).toBe(world.rugChange.revision);
    expect(repos.get(AKANDA.neutron)?.revision).toBe(world.project(AKANDA.neutron).head('master'));
  });

  it('builds the appliance image from the checkout that holds the change', () => {
    const localrc = sourceLocalrc(join(c.logDir, 'local.conf'), LOCALRC_NAMES);
    expect(localrc.vars.BUILD_AKANDA_APPLIANCE_IMAGE).toBe('True');
    expect(localrc.vars.AKANDA_DEV_APPLIANCE_URL).toBeUndefined();
    expect(localrc.calls[0]).toEqual([
      'enable_plugin',
      'akanda-rug',
      `file://${join(c.workspace, AKANDA.rug)}`,
      world.rugChange.revision,
    ]);
    const commands = readCommands(join(c.logDir, 'commands.txt'));
    expect(commands).toContain(
      `git -C ${c.dest}/akanda-appliance checkout --quiet --detach ${world.applianceChange.revision}`,
    );
    expect(commands.some((line) => line.includes('fetch-verified-image.sh'))).toBe(false);
  });
});

describe('a Depends-On change to a library devstack would install from PyPI', () => {
  it('prepares it at its change and has devstack install it from that checkout', async () => {
    const lib = new UpstreamProject(world.gitBase, 'openstack/oslo.messaging', root);
    const change = lib.change(8001, 4, lib.branch('master', 'initial oslo.messaging', {}), { 'fix.py': 'x = 1\n' });
    const c = newCase([
      { project: AKANDA.rug, ref: world.rugChange.ref },
      { project: 'openstack/oslo.messaging', ref: change.ref },
    ]);
    expect((await dryRun(c)).status).toBe(0);
    expect(repoMap(c).get('openstack/oslo.messaging')?.revision).toBe(change.revision);
    expect(sourceLocalrc(join(c.logDir, 'local.conf'), ['LIBS_FROM_GIT']).vars.LIBS_FROM_GIT).toBe('oslo.messaging');
    expect(readCommands(join(c.logDir, 'commands.txt'))).toContain(
      `git -C ${c.dest}/oslo.messaging checkout --quiet --detach ${change.revision}`,
    );
  });

  it('sets no LIBS_FROM_GIT when every change is to a service devstack clones anyway', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }]);
    expect((await dryRun(c)).status).toBe(0);
    expect(sourceLocalrc(join(c.logDir, 'local.conf'), ['LIBS_FROM_GIT']).vars.LIBS_FROM_GIT).toBeUndefined();
  });
});

describe('a change on stable/kilo, planned from its Gerrit event with a pinned image', () => {
  let c: Case;
  const stableImage = 'https://images.example.org/akanda-appliance-stable-kilo.qcow2';
  let planned: PlannedJob;

  beforeAll(async () => {
    // The shipped config with the kilo image pinned, and the patchset-created event of the kilo change.
    const yaml = readFileSync(join(REPO_ROOT, 'akanda-ci.yaml'), 'utf8').replace(
      'pinnedImages: {}',
      `pinnedImages: { 'stable/kilo': '${stableImage}' }`,
    );
    expect(yaml).toContain(stableImage);
    const event = JSON.parse(
      readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'gerrit-events', 'ssh-new-patchset-created.json'), 'utf8'),
    ) as { change: Record<string, unknown>; patchSet: Record<string, unknown>; refName?: string };
    event.change.project = AKANDA.rug;
    event.change.branch = 'stable/kilo';
    event.change.number = world.rugKiloChange.change;
    event.patchSet.number = world.rugKiloChange.patchset;
    event.patchSet.ref = world.rugKiloChange.ref;
    event.patchSet.revision = world.rugKiloChange.revision;
    event.refName = 'refs/heads/stable/kilo';
    // The image store is deployed too, so without the pin the planner would pick the branch's rolling image.
    const plan = planEvent(parseConfig(yaml, 'akanda-ci.yaml'), event, { imageBaseUrl: 'https://cdn.example.org' });
    const buildset = plan.triggered[0]!;
    expect(buildset.branch).toBe('stable/kilo');
    planned = buildset.jobs.find((job) => job.name === 'dsvm-tempest-akanda')!;
    expect(planned).toBeDefined();
    c = newCase([{ project: AKANDA.rug, ref: buildset.ref }], {
      AKANDA_CI_BRANCH: buildset.branch,
      AKANDA_CI_IMAGE_MODE: planned.imageMode,
      AKANDA_CI_IMAGE_URL: planned.imageUrl ?? '',
    });
    const result = await dryRun(c);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('prepares stable/kilo, or the kilo-eol tag of a retired branch, or master when neither exists', () => {
    const repos = repoMap(c);
    expect(repos.get(AKANDA.rug)?.revision).toBe(world.rugKiloChange.revision);
    for (const project of [AKANDA.neutron, AKANDA.appliance, 'openstack/devstack', 'openstack/nova']) {
      expect(repos.get(project)).toEqual({
        project,
        revision: world.project(project).head('stable/kilo'),
        source: 'branch stable/kilo',
      });
    }
    expect(repos.get(AKANDA.builder)?.source).toBe('tag kilo-eol (no branch stable/kilo)');
    expect(repos.get(AKANDA.builder)?.revision).not.toBe(world.project(AKANDA.builder).head('master'));
    expect(repos.get(AKANDA.horizon)).toEqual({
      project: AKANDA.horizon,
      revision: world.project(AKANDA.horizon).head('master'),
      source: 'branch master (no branch stable/kilo)',
    });
  });

  it("carries the planner's choice, the branch's pinned image, into local.conf and the image check", () => {
    expect(planned.imageMode).toBe('prebuilt');
    expect(planned.imageUrl).toBe(stableImage);
    const localrc = sourceLocalrc(join(c.logDir, 'local.conf'), LOCALRC_NAMES);
    expect(localrc.vars.AKANDA_DEV_APPLIANCE_URL).toBe(stableImage);
    expect(localrc.vars.ASTARA_DEV_APPLIANCE_URL).toBe(stableImage);
    expect(readFileSync(join(c.logDir, 'local.conf'), 'utf8')).toContain('branch stable/kilo');
    const verify = readCommands(join(c.logDir, 'commands.txt'))
      .map(shellWords)
      .find((w) => w[0] === join(JOBS, 'fetch-verified-image.sh'));
    expect(verify?.slice(1)).toEqual([stableImage, `${c.dest}/devstack/files/akanda-appliance-stable-kilo.qcow2`]);
  });
});

describe('test selection and node settings', () => {
  it('turns a Tempest test list into an anchored regex of escaped ids', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }]);
    const list = join(c.dir, 'tests.txt');
    writeFileSync(
      list,
      '# routers\ntempest.api.network.test_routers.RoutersTest.test_create_router\n\n' +
        'tempest.scenario.test_network_basic_ops.TestNetworkBasicOps.test_network_basic_ops  \n',
    );
    const result = await dryRun(c, ['--tempest-list', list, '--no-functional']);
    expect(result.status).toBe(0);
    const commands = readCommands(join(c.logDir, 'commands.txt')).map(shellWords);
    const tempest = commands.find((w) => w.includes('all'));
    expect(tempest?.at(-1)).toBe(
      '^(tempest\\.api\\.network\\.test_routers\\.RoutersTest\\.test_create_router|' +
        'tempest\\.scenario\\.test_network_basic_ops\\.TestNetworkBasicOps\\.test_network_basic_ops)$',
    );
    expect(commands.some((w) => w.slice(-3).join(' ') === 'tox -e functional')).toBe(false);
  });

  it('runs only the functional suite with --no-tempest', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }]);
    expect((await dryRun(c, ['--no-tempest'])).status).toBe(0);
    const commands = readCommands(join(c.logDir, 'commands.txt')).map(shellWords);
    expect(commands.some((w) => w.includes('all'))).toBe(false);
    expect(commands.filter((w) => w.slice(-3).join(' ') === 'tox -e functional')).toHaveLength(1);
  });

  it('uses qemu when the KVM device is not a working KVM (a character device that is not /dev/kvm)', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }], { AKANDA_CI_KVM_DEVICE: '/dev/null' });
    expect((await dryRun(c)).status).toBe(0);
    expect(sourceLocalrc(join(c.logDir, 'local.conf'), ['LIBVIRT_TYPE']).vars.LIBVIRT_TYPE).toBe('qemu');
  });

  it('uses kvm when the node says so', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }], { AKANDA_CI_LIBVIRT_TYPE: 'kvm' });
    expect((await dryRun(c)).status).toBe(0);
    expect(sourceLocalrc(join(c.logDir, 'local.conf'), ['LIBVIRT_TYPE']).vars.LIBVIRT_TYPE).toBe('kvm');
  });

  it('refuses to run without an appliance image', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }], { AKANDA_CI_IMAGE_MODE: 'none' });
    const result = await dryRun(c);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/needs the appliance image: give the job needsImage: true/);
  });
});

describe('hostile input', () => {
  // Made when the file loads: it.each needs the values before any hook runs.
  const sentinels = tempDir('dsvm-sentinels');
  afterAll(() => removeDir(sentinels));
  const pwned = () => join(sentinels, 'PWNED');
  const hostile = () => [
    ['AKANDA_CI_BRANCH', `master; touch ${pwned()}`, /AKANDA_CI_BRANCH is not a valid branch name: master\\;\\ touch/],
    ['AKANDA_CI_BRANCH', `master\ntouch ${pwned()}`, /AKANDA_CI_BRANCH is not a valid branch name: \$'master\\ntouch/],
    ['AKANDA_CI_PROJECT', `stackforge/$(touch ${pwned()})`, /AKANDA_CI_PROJECT is not a valid project name/],
    ['AKANDA_CI_IMAGE_URL', `https://x.example.org/\`touch ${pwned()}\`.qcow2`, /AKANDA_CI_IMAGE_URL is not a plain/],
    ['AKANDA_CI_IMAGE_URL', 'https://x.example.org/a b.qcow2', /AKANDA_CI_IMAGE_URL is not a plain/],
    ['AKANDA_CI_REF', 'refs/changes/45/12345/3 ; id', /AKANDA_CI_REF is not a change ref/],
    ['AKANDA_CI_REVISION', '$(id)', /AKANDA_CI_REVISION is not a 40-hex commit id/],
    ['AKANDA_CI_PREPARED_PROJECTS', 'stackforge/akanda-rug ../../etc', /invalid project name: \.\.\/\.\.\/etc/],
    // run from the case directory, which holds `workspace`: a glob must be refused, not expanded
    ['AKANDA_CI_PREPARED_PROJECTS', 'stackforge/akanda-rug work*', /invalid project name: work\\\*$/m],
    ['AKANDA_CI_PREPARED_PROJECTS', 'workspac? stackforge/akanda-rug', /invalid project name: workspac\\\?$/m],
    ['AKANDA_CI_WORKSPACE', '/tmp/work space', /AKANDA_CI_WORKSPACE is not an absolute path/],
    ['AKANDA_CI_CHANGE', '12345;id', /AKANDA_CI_CHANGE is not a number/],
  ];

  it.each(hostile())('rejects %s=%j with a clear error before doing anything', async (name, value, message) => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }], { [String(name)]: String(value) });
    const result = await runProgram(SCRIPT, ['--dry-run'], c.env, c.dir);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message as RegExp);
    expect(result.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(existsSync(join(c.logDir, 'local.conf'))).toBe(false);
    expect(existsSync(pwned())).toBe(false);
  });

  const nasty = `a b $(touch PWNED) \`touch PWNED\`; touch PWNED 'q' "d" \\ $HOME`;

  it('writes a hostile --localrc value into local.conf as an inert string', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }]);
    const result = await dryRun(c, ['--localrc', `AKANDA_EXTRA=${nasty}`]);
    expect(result.status).toBe(0);
    const localrc = sourceLocalrc(join(c.logDir, 'local.conf'), ['AKANDA_EXTRA']);
    expect(localrc.vars.AKANDA_EXTRA).toBe(nasty);
    expect(existsSync(join(c.workspace, AKANDA.rug, 'PWNED'))).toBe(false);
    expect(existsSync(join(process.cwd(), 'PWNED'))).toBe(false);
  });

  it('rejects a --localrc value with a newline, which could start a new local.conf section', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }]);
    const result = await dryRun(c, ['--localrc', 'AKANDA_EXTRA=x\n[[post-config|/etc/passwd]]']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/--localrc value must be one line/);
  });

  it('records a hostile Tempest regex as one quoted word that splits back to the same text', async () => {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }]);
    const regex = `${nasty}\nsecond line`;
    const result = await dryRun(c, ['--tempest-regex', regex]);
    expect(result.status).toBe(0);
    const tempest = readCommands(join(c.logDir, 'commands.txt'))
      .map(shellWords)
      .find((w) => w.includes('all'));
    expect(tempest?.at(-1)).toBe(regex);
    expect(existsSync(join(c.workspace, AKANDA.rug, 'PWNED'))).toBe(false);
  });
});

describe('a change to akanda-horizon', () => {
  it('enables Horizon, which the other jobs leave out', async () => {
    const horizon = world.project(AKANDA.horizon);
    const change = horizon.change(7001, 1, horizon.head('master'), { 'panels.py': 'x = 1\n' });
    const c = newCase([{ project: AKANDA.horizon, ref: change.ref }]);
    expect((await dryRun(c)).status).toBe(0);
    const calls = sourceLocalrc(join(c.logDir, 'local.conf'), []).calls;
    expect(calls).toContainEqual(['enable_service', 'horizon']);
    expect(calls).not.toContainEqual(['disable_service', 'horizon']);
    expect(repoMap(c).get(AKANDA.horizon)?.revision).toBe(change.revision);
  });
});

describe("the default config's run line", () => {
  it('runs through bash -c as the agent runs it, and hands the configured Tempest regex over intact', async () => {
    const config = parseConfig(readFileSync(join(REPO_ROOT, 'akanda-ci.yaml'), 'utf8'));
    const job = findJob(config, 'dsvm-tempest-akanda');
    expect(job).toBeDefined();
    const configured = /--tempest-regex '([^']+)'/.exec(job!.run)?.[1];
    expect(configured).toBeDefined();
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }]);
    const result = await runProgram(
      'bash',
      ['-c', `${job!.run} --dry-run`],
      { ...c.env, AKANDA_CI_SCRIPTS: SCRIPTS },
      join(c.workspace, AKANDA.rug),
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const tempest = readCommands(join(c.logDir, 'commands.txt'))
      .map(shellWords)
      .find((w) => w.includes('all'));
    expect(tempest?.at(-1)).toBe(configured);
  });
});

/**
 * The whole job for real, with stand-ins from the world's repositories for devstack's stack.sh,
 * Tempest and the rug's functional suite, run by this user (AKANDA_CI_STACK_USER) so nothing on
 * this machine is set up or switched.
 */
describe('a real run with stand-in devstack and test suites', () => {
  const image = Buffer.from('QFI\xfb a small appliance image', 'latin1');
  let server: Server;
  let imageBase: string;

  beforeAll(async () => {
    const sha = createHash('sha256').update(image).digest('hex');
    server = createServer((req, res) => {
      if (req.url === '/images/akanda-appliance-latest.qcow2') res.end(image);
      else if (req.url === '/images/akanda-appliance-latest.qcow2.sha256') res.end(`${sha}  x.qcow2\n`);
      else if (req.url === '/images/tampered.qcow2') res.end(Buffer.concat([image, Buffer.from('tampered')]));
      else if (req.url === '/images/tampered.qcow2.sha256') res.end(`${sha}  tampered.qcow2\n`);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    imageBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}/images`;
  });

  afterAll(() => new Promise((resolve) => server.close(resolve)));

  function realCase(overrides: Record<string, string>): Case {
    const c = newCase([{ project: AKANDA.rug, ref: world.rugChange.ref }], {
      AKANDA_CI_STACK_USER: userInfo().username,
      AKANDA_CI_ETC_ROOT: join(root, 'no-etc'),
      AKANDA_CI_VAR_LOG: join(root, 'no-var-log'),
      AKANDA_CI_IMAGE_URL: `${imageBase}/akanda-appliance-latest.qcow2`,
      ...overrides,
    });
    return c;
  }

  const run = (c: Case) =>
    runProgram(SCRIPT, ['--tempest-regex', 'tempest_tests\\.test_network'], c.env, join(c.workspace, AKANDA.rug));

  it('runs devstack, Tempest and the functional suite, and publishes one result page for both', async () => {
    const c = realCase({});
    const result = await run(c);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/akanda-ci: devstack and the tests passed\n/);
    expect(readFileSync(join(c.dest, 'devstack', 'files', 'akanda-appliance-latest.qcow2')).equals(image)).toBe(true);
    expect(git(join(c.dest, 'akanda-rug'), 'rev-parse', 'HEAD')).toBe(world.rugChange.revision);
    expect(readFileSync(join(c.dest, 'devstack', 'local.conf'), 'utf8')).toBe(
      readFileSync(join(c.logDir, 'local.conf'), 'utf8'),
    );
    const html = readFileSync(join(c.logDir, 'testr_results.html'), 'utf8');
    expect(html).toContain('test_create_router');
    expect(html).toContain('test_router_boots');
    expect(readFileSync(join(c.logDir, 'skipped-tests.txt'), 'utf8')).toBe(
      'tempest_tests.test_network.TestRouters.test_ipv6_router: no IPv6 on this cloud\n',
    );
    expect(readFileSync(join(c.logDir, 'logs', 'stack.sh.txt'), 'utf8')).toMatch(/^stack.sh ran with \d+ lines/);
    expect(readFileSync(join(c.logDir, 'logs', 'screen-q-svc.txt'), 'utf8')).toBe('q-svc started\n');
    expect(existsSync(join(c.logDir, 'failure.txt'))).toBe(false);
    const text = readFileSync(join(c.logDir, 'commands.txt'), 'utf8');
    expect(text).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \$ timeout --kill-after=30 \d+ \.\/stack\.sh\n\S+ {3}exit 0$/m,
    );
  });

  it('fails cleanly when devstack fails: logs collected, no tests run, and the report says where', async () => {
    const c = realCase({ AKANDA_FAKE_STACK_EXIT: '3' });
    const result = await run(c);
    expect(result.status).toBe(3);
    expect(result.stdout).toMatch(/FAILED in phase devstack \(exited 3\); see logs\/stack\.sh\.txt\(\.gz\)/);
    expect(readFileSync(join(c.logDir, 'failure.txt'), 'utf8')).toBe(
      'phase: devstack\nstatus: 3\nreason: devstack exited 3\nsee: logs/stack.sh.txt(.gz) and the service logs in logs/\n',
    );
    expect(readFileSync(join(c.logDir, 'logs', 'stack.sh.txt'), 'utf8')).toMatch(/^stack.sh ran/);
    expect(readCommands(join(c.logDir, 'commands.txt')).some((line) => line.includes('tox'))).toBe(false);
  });

  it('fails the job when a Tempest test fails, after running the functional suite and publishing both', async () => {
    const c = realCase({});
    const result = await runProgram(
      SCRIPT,
      ['--tempest-regex', 'tempest_tests\\.test_does_not_exist'],
      c.env,
      join(c.workspace, AKANDA.rug),
    );
    expect(result.status).not.toBe(0);
    expect(readFileSync(join(c.logDir, 'failure.txt'), 'utf8')).toMatch(/^phase: tempest\n/);
    expect(readFileSync(join(c.logDir, 'testr_results.html'), 'utf8')).toContain('test_router_boots');
  });

  it('stops devstack at the job time limit and says so', async () => {
    const c = realCase({ AKANDA_FAKE_STACK_SLEEP: '120', AKANDA_CI_TIMEOUT: '6' });
    const result = await run(c);
    expect([124, 137]).toContain(result.status);
    expect(readFileSync(join(c.logDir, 'failure.txt'), 'utf8')).toMatch(
      /^phase: devstack\nstatus: 1(24|37)\nreason: devstack ran out of the job's time limit\n/,
    );
  });

  it('collects the logs and says why when the agent stops the job with SIGTERM', async () => {
    const c = realCase({ AKANDA_FAKE_STACK_SLEEP: '120' });
    // the agent runs a job as the leader of its own process group and signals the group
    const child = spawn(SCRIPT, ['--no-functional'], {
      cwd: join(c.workspace, AKANDA.rug),
      env: c.env,
      detached: true,
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    while (!existsSync(join(c.dest, 'logs', 'screen-q-svc.log'))) await new Promise((r) => setTimeout(r, 100));
    process.kill(-child.pid!, 'SIGTERM');
    expect(await exited).toBe(143);
    expect(processesUnder(c.dest)).toEqual([]);
    expect(readFileSync(join(c.logDir, 'failure.txt'), 'utf8')).toMatch(
      /^phase: devstack\nstatus: 143\nreason: devstack was stopped \(SIGTERM/,
    );
    expect(readFileSync(join(c.logDir, 'logs', 'stack.sh.txt'), 'utf8')).toMatch(/^stack.sh ran/);
    expect(stdout).toMatch(/FAILED in phase devstack/);
  });

  it('says no image has been published yet when the image store has none (HTTP 404), before devstack runs', async () => {
    const c = realCase({ AKANDA_CI_IMAGE_URL: `${imageBase}/missing.qcow2` });
    const result = await run(c);
    expect(result.status).toBe(4);
    expect(result.stderr).toMatch(
      /no appliance image has been published yet: \S+\/missing\.qcow2\.sha256 answered HTTP 404/,
    );
    expect(result.stdout).toMatch(/FAILED in phase devstack \(no appliance image has been published yet/);
    expect(readFileSync(join(c.logDir, 'failure.txt'), 'utf8')).toBe(
      'phase: devstack\nstatus: 4\n' +
        'reason: no appliance image has been published yet: see docs/infrastructure.md#seed-the-first-image\n' +
        `see: docs/infrastructure.md#seed-the-first-image (the image URL: ${imageBase}/missing.qcow2)\n`,
    );
    expect(readCommands(join(c.logDir, 'commands.txt')).some((line) => line.endsWith('./stack.sh'))).toBe(false);
  });

  it('refuses a prebuilt image whose checksum does not match, and says so, before devstack runs', async () => {
    const c = realCase({ AKANDA_CI_IMAGE_URL: `${imageBase}/tampered.qcow2` });
    const result = await run(c);
    expect(result.status).toBe(5);
    expect(result.stderr).toMatch(/tampered\.qcow2\.sha256 says [0-9a-f]{64}: not using it/);
    expect(readFileSync(join(c.logDir, 'failure.txt'), 'utf8')).toBe(
      'phase: devstack\nstatus: 5\n' +
        'reason: the appliance image does not match its published sha256 (a partial or replaced upload): not used\n' +
        'see: commands.txt and the job output (the URL, and both checksums)\n',
    );
    expect(readCommands(join(c.logDir, 'commands.txt')).some((line) => line.endsWith('./stack.sh'))).toBe(false);
  });
});
