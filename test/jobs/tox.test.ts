/**
 * tox.sh run for real against a tiny Python project made here. The project works offline:
 * skip_install and sitepackages use Debian's flake8 and stestr (see .ci/run), as PyPI is not
 * reachable from this machine.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findJob, parseConfig } from '../../lambda/core/config';
import {
  JOBS,
  REPO_ROOT,
  SCRIPTS,
  SYSTEM_PATH,
  git,
  pathWithout,
  processesUnder,
  readCommands,
  removeDir,
  runProgram,
  tempDir,
} from './support';

const SCRIPT = join(JOBS, 'tox.sh');

const TOX_INI = `[tox]
envlist = py27,pep8
skipsdist = True

[testenv]
# The node has one python3; the env is still called py27, as in the Akanda projects.
basepython = python3
ignore_basepython_conflict = True
skip_install = True
sitepackages = True
allowlist_externals = stestr
commands = stestr --test-path ./router/tests run {posargs}

[testenv:pep8]
# Debian's python3-flake8 has the module; the flake8 command is another package.
commands = python3 -m flake8 router
`;

const PASSING_TESTS = `import unittest


class TestRouter(unittest.TestCase):
    def test_routes(self):
        self.assertEqual(2, 1 + 1)

    @unittest.skip("needs a real appliance VM")
    def test_boots_appliance(self):
        pass
`;

let root: string;
let projectNo = 0;
/** A PATH directory with `python2.7`: a node that has the interpreter py27 needs (tox.ini here uses python3). */
let python27Shim: string;

beforeAll(() => {
  root = tempDir('tox');
  python27Shim = join(root, 'python27-shim');
  mkdirSync(python27Shim);
  symlinkSync('/usr/bin/python3', join(python27Shim, 'python2.7'));
});

afterAll(() => removeDir(root));

interface Project {
  dir: string;
  logDir: string;
  env: Record<string, string>;
}

function makeProject(files: Record<string, string>, env: Record<string, string> = {}): Project {
  const dir = join(root, `project-${++projectNo}`);
  mkdirSync(join(dir, 'router', 'tests'), { recursive: true });
  const all: Record<string, string> = {
    'tox.ini': TOX_INI,
    '.stestr.conf': '[DEFAULT]\ntest_path=./router/tests\n',
    'router/__init__.py': '',
    'router/tests/__init__.py': '',
    'router/tests/test_router.py': PASSING_TESTS,
    ...files,
  };
  for (const [path, content] of Object.entries(all)) writeFileSync(join(dir, path), content);
  git(dir, 'init', '--quiet');
  const logDir = join(dir, '..', `logs-${projectNo}`);
  return {
    dir,
    logDir,
    env: {
      PATH: `${python27Shim}:${SYSTEM_PATH}`,
      HOME: dir,
      AKANDA_CI_LOG_DIR: logDir,
      AKANDA_CI_TIMEOUT: '600',
      ...env,
    },
  };
}

function tox(project: Project, args: string[]) {
  return runProgram(SCRIPT, args, project.env, project.dir);
}

describe('the unit job (tox -e py27)', () => {
  let project: Project;
  let result: Awaited<ReturnType<typeof tox>>;

  beforeAll(async () => {
    project = makeProject({});
    result = await tox(project, ['py27']);
  });

  it('passes when the tests pass', () => {
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/tox -e py27 passed/);
  });

  it("publishes tox's own logs", () => {
    const logs = readdirSync(join(project.logDir, 'tox', 'py27'));
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain('.lock');
    expect(logs.every((name) => name.endsWith('.txt'))).toBe(true);
  });

  it('publishes the subunit stream, testr_results.html and the skipped tests with their reasons', () => {
    expect(readFileSync(join(project.logDir, 'testrepository.subunit')).length).toBeGreaterThan(0);
    const html = readFileSync(join(project.logDir, 'testr_results.html'), 'utf8');
    expect(html).toContain('test_routes');
    expect(readFileSync(join(project.logDir, 'skipped-tests.txt'), 'utf8')).toBe(
      'router.tests.test_router.TestRouter.test_boots_appliance: needs a real appliance VM\n',
    );
  });

  it('records the command it ran with a UTC timestamp and its exit status', () => {
    const text = readFileSync(join(project.logDir, 'commands.txt'), 'utf8');
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \$ timeout --kill-after=30 \d+ tox -e py27$/m);
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {3}exit 0$/m);
  });
});

it('fails when a unit test fails, and still publishes the results', async () => {
  const project = makeProject({
    'router/tests/test_broken.py':
      'import unittest\n\n\nclass TestBroken(unittest.TestCase):\n    def test_it(self):\n        self.fail("boom")\n',
  });
  const result = await tox(project, ['py27']);
  expect(result.status).toBe(1);
  expect(result.stdout).toMatch(/FAILED: tox -e py27 exited 1/);
  expect(readFileSync(join(project.logDir, 'testr_results.html'), 'utf8')).toContain('test_it');
});

it('runs pep8 with flake8: a clean project passes and publishes no test results', async () => {
  const project = makeProject({});
  const result = await tox(project, ['pep8']);
  expect(result.status).toBe(0);
  expect(existsSync(join(project.logDir, 'testrepository.subunit'))).toBe(false);
  expect(result.stdout).toMatch(/no stestr or testr results/);
});

it('fails pep8 on a style error and says so', async () => {
  const project = makeProject({ 'router/bad.py': 'import os\nx=1\n' });
  const result = await tox(project, ['pep8']);
  expect(result.status).not.toBe(0);
  expect(result.stdout).toMatch(/router\/bad.py:1:1: F401 'os' imported but unused/);
  expect(result.stdout).toMatch(/FAILED: tox -e pep8 exited/);
});

it('still passes and says why when subunit2html is not on the node', async () => {
  const project = makeProject({});
  project.env.PATH = `${python27Shim}:${pathWithout(project.dir, ['subunit2html'])}`;
  const result = await tox(project, ['py27']);
  expect(result.status).toBe(0);
  expect(result.stdout).toMatch(/subunit2html is not installed on this node; testr_results.html not produced/);
  expect(existsSync(join(project.logDir, 'testrepository.subunit'))).toBe(true);
  expect(existsSync(join(project.logDir, 'testr_results.html'))).toBe(false);
});

it('stops tox at the job time limit and says so', async () => {
  const project = makeProject(
    {
      'router/tests/test_slow.py':
        'import time\nimport unittest\n\n\nclass TestSlow(unittest.TestCase):\n    def test_slow(self):\n        time.sleep(300)\n',
    },
    { AKANDA_CI_TIMEOUT: '3' },
  );
  const result = await tox(project, ['py27']);
  expect([124, 137]).toContain(result.status);
  expect(result.stdout).toMatch(/FAILED: tox -e py27 did not finish within the job's time limit/);
});

it('publishes what tox left when the agent stops the job with SIGTERM', async () => {
  const project = makeProject({
    'router/tests/test_slow.py':
      'import time\nimport unittest\n\n\nclass TestSlow(unittest.TestCase):\n    def test_slow(self):\n        time.sleep(300)\n',
  });
  // the agent runs a job as the leader of its own process group and signals the group
  const child = spawn(SCRIPT, ['py27'], { cwd: project.dir, env: project.env, detached: true });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  while (!existsSync(join(project.dir, '.stestr'))) await new Promise((r) => setTimeout(r, 100));
  process.kill(-child.pid!, 'SIGTERM');
  expect(await exited).toBe(143);
  expect(processesUnder(project.dir)).toEqual([]);
  expect(stdout).toMatch(/FAILED: tox -e py27 was stopped \(SIGTERM\)/);
  expect(readdirSync(join(project.logDir, 'tox', 'py27')).length).toBeGreaterThan(0);
});

it('gives a clear error when tox is missing and cannot be installed', async () => {
  const project = makeProject({});
  project.env.PATH = pathWithout(project.dir, ['tox', 'apt-get', 'python3']);
  const result = await tox(project, ['py27']);
  expect(result.status).toBe(2);
  expect(result.stderr).toBe(
    'akanda-ci: error: tox is not installed and could not be installed (needs python3 with venv and PyPI, or apt-get as root)\n',
  );
  expect(readCommands(join(project.logDir, 'commands.txt'))).toEqual([]);
});

it.each([
  ['pep8; touch PWNED', /not a tox environment name: pep8\\;\\ touch\\ PWNED/],
  ['$(touch PWNED)', /not a tox environment name: \\\$\\\(touch\\ PWNED\\\)/],
  ['-e', /not a tox environment name: -e/],
])('rejects the environment name %j', async (name, message) => {
  const project = makeProject({});
  const result = await tox(project, [name]);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(message);
  expect(existsSync(join(project.dir, 'PWNED'))).toBe(false);
  expect(existsSync(join(project.dir, '.tox'))).toBe(false);
});

it('says so when run outside a project checkout', async () => {
  const project = makeProject({});
  const result = await runProgram(SCRIPT, ['pep8'], project.env, root);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/no tox.ini in .*: is this the project checkout\?/);
});

it.each(['pep8', 'py27'])("runs the default config's %s run line through bash -c as the agent does", async (name) => {
  const config = parseConfig(readFileSync(join(REPO_ROOT, 'akanda-ci.yaml'), 'utf8'));
  const job = findJob(config, name);
  expect(job).toBeDefined();
  const project = makeProject({});
  const result = await runProgram(
    'bash',
    ['-c', job!.run],
    { ...project.env, AKANDA_CI_SCRIPTS: SCRIPTS },
    project.dir,
  );
  expect(result.status).toBe(0);
  expect(result.stdout).toContain(`tox -e ${name} passed`);
});

describe('py27 on a node without python2.7', () => {
  /**
   * A node without python2.7, with a stand-in apt-get that records how it was called and, when
   * `installs` is set, provides python2.7 the way the package would. `id -u` says root, as the agent
   * runs jobs as root.
   */
  function nodeWithoutPython27(project: Project, installs: boolean) {
    const bin = join(project.dir, '..', `stub-bin-${projectNo}`);
    mkdirSync(bin, { recursive: true });
    const calls = join(bin, 'apt-get.calls');
    writeFileSync(
      join(bin, 'apt-get'),
      '#!/bin/bash\n' +
        `printf '%s\\0' "DEBIAN_FRONTEND=$DEBIAN_FRONTEND" "$@" >>${JSON.stringify(calls)}\n` +
        (installs ? `ln -s /usr/bin/python3 ${JSON.stringify(join(bin, 'python2.7'))}\nexit 0\n` : 'exit 100\n'),
      { mode: 0o755 },
    );
    writeFileSync(join(bin, 'id'), '#!/bin/bash\necho 0\n', { mode: 0o755 });
    project.env.PATH = `${bin}:${pathWithout(project.dir, ['python2.7', 'apt-get', 'id'])}`;
    return () => (existsSync(calls) ? readFileSync(calls, 'utf8').split('\0').slice(0, -1) : []);
  }

  it('installs python2.7 with apt-get, then runs tox', async () => {
    const project = makeProject({});
    const aptCalls = nodeWithoutPython27(project, true);
    const result = await tox(project, ['py27']);
    // tox itself warns that this tox.ini's basepython (python3) is not the 2.7 the env name asks for
    expect(result.stderr).not.toMatch(/akanda-ci: error/);
    expect(result.status).toBe(0);
    expect(aptCalls()).toEqual([
      'DEBIAN_FRONTEND=noninteractive',
      '-o',
      'DPkg::Lock::Timeout=300',
      'install',
      '-y',
      '-q',
      '--no-install-recommends',
      'python2.7',
      'python2.7-dev',
    ]);
    const commands = readCommands(join(project.logDir, 'commands.txt'));
    expect(commands[0]).toMatch(/^env DEBIAN_FRONTEND=noninteractive apt-get .* python2\.7 python2\.7-dev$/);
    expect(commands[1]).toMatch(/^timeout --kill-after=30 \d+ tox -e py27$/);
  });

  it('stops with exit status 3 and says why when python2.7 cannot be installed, without running tox', async () => {
    const project = makeProject({});
    const aptCalls = nodeWithoutPython27(project, false);
    const result = await tox(project, ['py27']);
    expect(result.status).toBe(3);
    expect(result.stderr).toBe(
      'akanda-ci: error: tox -e py27 needs python2.7, which this node lacks and apt-get could not install ' +
        '(Ubuntu 24.04 has no python2.7 package: see docs/jobs.md, "py27 and Python 2.7")\n',
    );
    expect(result.stdout).toMatch(/FAILED: no python2\.7 on this node \(an environment problem, not the change\)/);
    expect(aptCalls()).toContain('python2.7');
    expect(readCommands(join(project.logDir, 'commands.txt')).some((line) => line.includes('tox -e'))).toBe(false);
  });

  it('installs nothing for an environment that does not need Python 2.7', async () => {
    const project = makeProject({});
    const aptCalls = nodeWithoutPython27(project, true);
    const result = await tox(project, ['pep8']);
    expect(result.status).toBe(0);
    expect(aptCalls()).toEqual([]);
  });
});

it('installs nothing when the node already has python2.7', async () => {
  const project = makeProject({});
  const bin = join(project.dir, '..', `apt-recorder-${projectNo}`);
  mkdirSync(bin);
  writeFileSync(join(bin, 'apt-get'), `#!/bin/bash\ntouch ${JSON.stringify(join(bin, 'called'))}\n`, { mode: 0o755 });
  project.env.PATH = `${bin}:${project.env.PATH}`;
  const result = await tox(project, ['py27']);
  expect(result.status).toBe(0);
  expect(existsSync(join(bin, 'called'))).toBe(false);
});
