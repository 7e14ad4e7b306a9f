import { Config, parseConfig } from '../../lambda/core/config';
import {
  EventError,
  Plan,
  planEvent,
  PlannedJob,
  prebuiltImage,
  prebuiltImageUrl,
  TriggeredBuildset,
} from '../../lambda/core/planner';
import { MAX_GERRIT_NUMBER } from '../../lambda/core/names';
import { fixture, fixtureNames, fixtureText, shippedConfig, smallConfig } from './support';

const RUG = 'stackforge/akanda-rug';
const APPLIANCE = 'stackforge/akanda-appliance';
const BUILDER = 'stackforge/akanda-appliance-builder';
const REVISION = 'a'.repeat(40);
const OTHER_REVISION = 'b'.repeat(40);
const ZEROS = '0'.repeat(40);
const CHANGE_ID = `I${'c'.repeat(40)}`;

interface ChangeOptions {
  project?: string;
  branch?: string;
  change?: number;
  patchset?: number;
  status?: string;
  commitMessage?: string;
  extra?: Record<string, unknown>;
}

function changeFields(o: ChangeOptions = {}) {
  const change = o.change ?? 4321;
  const patchset = o.patchset ?? 2;
  return {
    change: {
      project: o.project ?? RUG,
      branch: o.branch ?? 'master',
      id: CHANGE_ID,
      number: change,
      status: o.status ?? 'NEW',
      commitMessage: o.commitMessage ?? `Fix the router\n\nChange-Id: ${CHANGE_ID}\n`,
      ...o.extra,
    },
    patchSet: {
      number: patchset,
      revision: REVISION,
      ref: `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/${patchset}`,
    },
  };
}

const patchsetCreated = (o: ChangeOptions = {}) => ({ type: 'patchset-created', ...changeFields(o) });
const comment = (text: string, approvals: unknown[] = [], o: ChangeOptions = {}, author = 'reviewer') => ({
  type: 'comment-added',
  author: { name: 'A Reviewer', username: author },
  comment: text,
  approvals,
  ...changeFields(o),
});
const workflow = (value: string, oldValue?: string, type = 'Workflow') =>
  oldValue === undefined ? { type, value } : { type, value, oldValue };
const refUpdated = (refName: string, project = APPLIANCE, newRev = OTHER_REVISION, oldRev = REVISION) => ({
  type: 'ref-updated',
  refUpdate: { project, refName, oldRev, newRev },
});

function only(plan: Plan): TriggeredBuildset {
  expect(plan.triggered).toHaveLength(1);
  return plan.triggered[0]!;
}

function job(buildset: TriggeredBuildset, name: string): PlannedJob {
  const found = buildset.jobs.find((j) => j.name === name);
  if (!found) throw new Error(`no job ${name} in ${buildset.jobs.map((j) => j.name).join(',')}`);
  return found;
}

const jobNames = (plan: Plan) => only(plan).jobs.map((j) => j.name);

describe('every fixture plans as expected with the shipped config', () => {
  const config = shippedConfig();
  const summarize = (plan: Plan) =>
    plan.triggered.length > 0
      ? plan.triggered
          .map((b) => `${b.pipeline}: ${b.jobs.map((j) => `${j.name}/${j.imageMode}`).join(' ')}`)
          .join('; ')
      : `ignored: ${plan.ignored}`;
  const checkPrebuilt = 'check: pep8/none py27/none dsvm-tempest-akanda/prebuilt';
  const checkBuild = 'check: pep8/none py27/none dsvm-tempest-akanda/build';
  const expected: Record<string, [string, Plan['supersedes']]> = {
    'ssh-gerrit2-change-restored.json': ['ignored: project playback-test is not in the config', []],
    'ssh-wip-state-changed.json': ['ignored: wip-state-changed does not trigger anything', []],
    'webhook-comment-added.json': ['ignored: project TestRepo is not in the config', []],
    'webhook-patchset-created.json': ['ignored: project TestRepo1 is not in the config', []],
    'ssh-new-change-abandoned.json': [
      'ignored: change abandoned: its check buildsets are cancelled',
      [{ project: RUG, change: 187040, belowPatchset: 4 }],
    ],
    'ssh-new-change-merged.json': [
      'ignored: change-merged does not trigger post: the ref-updated of the merge does',
      [],
    ],
    'ssh-new-change-restored.json': [checkPrebuilt, []],
    'ssh-new-comment-added-recheck.json': [checkPrebuilt, []],
    'ssh-new-comment-added-workflow-unchanged.json': [
      'ignored: comment is neither a recheck nor a newly granted Workflow+1',
      [],
    ],
    'ssh-new-comment-added-workflow.json': ['gate: pep8/none py27/none dsvm-tempest-akanda/prebuilt', []],
    'ssh-new-dropped-output.json': ['ignored: event type "dropped-output" does not trigger anything', []],
    'ssh-new-patchset-created.json': [checkPrebuilt, [{ project: RUG, change: 187040, belowPatchset: 3 }]],
    'ssh-new-private-state-changed.json': ['ignored: private-state-changed does not trigger anything', []],
    'ssh-new-ref-updated-change-meta.json': [
      'ignored: ref-updated of refs/changes/40/187040/meta: post runs on refs/heads/* only',
      [],
    ],
    'ssh-new-ref-updated.json': ['ignored: project stackforge/akanda-rug has no post jobs', []],
    'ssh-new-reviewer-added.json': ['ignored: event type "reviewer-added" does not trigger anything', []],
    'ssh-old-change-abandoned.json': [
      'ignored: change abandoned: its check buildsets are cancelled',
      [{ project: 'stackforge/akanda-horizon', change: 158205, belowPatchset: 3 }],
    ],
    'ssh-old-change-merged.json': [
      'ignored: change-merged does not trigger post: the ref-updated of the merge does',
      [],
    ],
    'ssh-old-comment-added-approved-no-oldvalue.json': [
      'ignored: comment is neither a recheck nor a newly granted Workflow+1',
      [],
    ],
    'ssh-old-comment-added-approved.json': ['gate: pep8/none py27/none dsvm-tempest-akanda/prebuilt', []],
    'ssh-old-comment-added-recheck.json': [checkPrebuilt, []],
    'ssh-old-draft-published.json': ['ignored: event type "draft-published" does not trigger anything', []],
    'ssh-old-patchset-created-draft.json': ['ignored: change 158206 patchset 1 is a draft', []],
    'ssh-old-patchset-created.json': [
      checkPrebuilt,
      [{ project: 'stackforge/akanda-horizon', change: 158205, belowPatchset: 2 }],
    ],
    'ssh-old-ref-updated-appliance-builder.json': ['post: akanda-appliance-image/none', []],
    'ssh-old-ref-updated.json': ['ignored: project stackforge/akanda-horizon has no post jobs', []],
    'webhook-new-change-abandoned.json': [
      'ignored: change abandoned: its check buildsets are cancelled',
      [{ project: APPLIANCE, change: 187100, belowPatchset: 2 }],
    ],
    'webhook-new-change-merged.json': [
      'ignored: change-merged does not trigger post: the ref-updated of the merge does',
      [],
    ],
    'webhook-new-change-restored.json': [checkBuild, []],
    'webhook-new-comment-added-recheck.json': [checkBuild, []],
    'webhook-new-patchset-created-appliance.json': [checkBuild, []],
    'webhook-new-patchset-created-stable.json': [checkPrebuilt, [{ project: RUG, change: 187101, belowPatchset: 2 }]],
    'webhook-new-ref-updated-deleted.json': ['ignored: ref-updated deleted refs/heads/feature/ha', []],
    'webhook-new-ref-updated-tag.json': [
      'ignored: ref-updated of refs/tags/2015.1.0: post runs on refs/heads/* only',
      [],
    ],
    'webhook-new-ref-updated.json': ['post: akanda-appliance-image/none', []],
    'webhook-new-vote-deleted.json': ['ignored: event type "vote-deleted" does not trigger anything', []],
    'webhook-new-wip-state-changed.json': ['ignored: wip-state-changed does not trigger anything', []],
  };

  it('has an expectation for every fixture file', () => {
    expect(Object.keys(expected).sort()).toEqual(fixtureNames());
  });

  it.each(Object.entries(expected))('%s', (name, [summary, supersedes]) => {
    const plan = planEvent(config, fixtureText(name), { imageBaseUrl: 'https://images.example.org' });
    expect(summarize(plan)).toBe(summary);
    expect(plan.supersedes).toEqual(supersedes);
    expect(plan.ignored === undefined).toBe(plan.triggered.length > 0);
  });
});

describe('the recorded fixtures, with a config that watches their projects', () => {
  const config = parseConfig(`
gerrit: { url: https://review.example.org, username: ci }
nodes: { small: { instanceTypes: [t3.small] } }
jobs: [{ name: unit, run: make test, node: small }]
projects:
  - { name: TestRepo1, check: [unit] }
  - { name: TestRepo, check: [unit], gate: [unit] }
  - { name: playback-test, check: [unit] }
  - { name: snix, check: [unit] }
pipelines: { gateApproval: { label: Code-Review, value: 2 } }
`);

  it('webhooks patchset-created (project object) triggers check at the event patchset', () => {
    const buildset = only(planEvent(config, fixture('webhook-patchset-created.json')));
    expect(buildset).toEqual({
      pipeline: 'check',
      trigger: 'patchset-created',
      project: 'TestRepo1',
      branch: 'patch_create',
      change: 2,
      patchset: 1,
      changeId: 'Ie10fd901201c53e9fe3b9766343060763ac81dc6',
      ref: 'refs/changes/02/2/1',
      revision: 'b59138869113bfd9d3e7fbf9439d74e1ae6c54b8',
      dependsOn: [],
      jobs: [
        {
          name: 'unit',
          node: 'small',
          voting: true,
          timeoutSeconds: 3600,
          imageMode: 'none',
          publishesImage: false,
          run: 'make test',
        },
      ],
    });
  });

  it('webhooks comment-added with Code-Review 1 -> 2 enters the gate when that is the gate approval', () => {
    const buildset = only(planEvent(config, fixture('webhook-comment-added.json')));
    expect(buildset).toMatchObject({ pipeline: 'gate', trigger: 'approval', change: 1, patchset: 2 });
  });

  it('SSH change-restored from a Gerrit 2 server (string numbers) triggers check', () => {
    const buildset = only(planEvent(config, fixture('ssh-gerrit2-change-restored.json')));
    expect(buildset).toMatchObject({
      change: 654,
      patchset: 1,
      ref: 'refs/changes/54/654/1',
      trigger: 'change-restored',
    });
  });

  it('SSH wip-state-changed triggers nothing', () => {
    expect(planEvent(config, fixture('ssh-wip-state-changed.json'))).toEqual({
      triggered: [],
      supersedes: [],
      ignored: 'wip-state-changed does not trigger anything',
    });
  });
});

describe('check pipeline', () => {
  const config = smallConfig();

  it('patchset-created triggers check with the change, ref, revision and Depends-On footers', () => {
    const event = patchsetCreated({
      change: 187040,
      patchset: 3,
      commitMessage: `Fix\n\nDepends-On: https://review.example.org/c/stackforge/akanda-neutron/+/99\nChange-Id: ${CHANGE_ID}\n`,
    });
    const buildset = only(planEvent(config, event));
    expect(buildset).toMatchObject({
      pipeline: 'check',
      trigger: 'patchset-created',
      project: RUG,
      branch: 'master',
      change: 187040,
      patchset: 3,
      changeId: CHANGE_ID,
      ref: 'refs/changes/40/187040/3',
      revision: REVISION,
    });
    expect(buildset.dependsOn).toEqual([
      {
        form: 'url',
        url: 'https://review.example.org/c/stackforge/akanda-neutron/+/99',
        host: 'review.example.org',
        change: 99,
        project: 'stackforge/akanda-neutron',
      },
    ]);
    expect(buildset.jobs.map((j) => j.name)).toEqual(['pep8', 'py27', 'docs', 'dsvm']);
  });

  it('change-restored triggers check', () => {
    expect(only(planEvent(config, { type: 'change-restored', ...changeFields() })).trigger).toBe('change-restored');
  });

  it.each([
    'recheck',
    'RECHECK',
    'Recheck please',
    'Patch Set 2:\n\nrecheck',
    'Patch Set 12: Code-Review+1\n\nrecheck bug 1234567',
    'Patch Set 2: -Verified\n\nReCheck',
    '  recheck',
  ])('a recheck comment %j triggers check', (text) => {
    expect(only(planEvent(config, comment(text))).trigger).toBe('recheck');
  });

  it.each(['please recheck', 'Patch Set 2: Code-Review+2', 'Patch Set 2:\n\nI said: recheck'])(
    'a comment %j that is not a recheck triggers nothing',
    (text) => {
      const plan = planEvent(config, comment(text));
      expect(plan.triggered).toEqual([]);
      expect(plan.ignored).toBe('comment is neither a recheck nor a newly granted Workflow+1');
    },
  );

  it('"rechecking" matches the OpenStack regex (it only anchors the start), as in Zuul', () => {
    expect(only(planEvent(config, comment('rechecking'))).trigger).toBe('recheck');
  });

  it('looks for the recheck in the first 1000 characters only, so a huge hostile comment stays cheap', () => {
    expect(only(planEvent(config, comment(`Patch Set 2:\n\n${' '.repeat(979)}recheck`))).trigger).toBe('recheck');
    expect(planEvent(config, comment(`Patch Set 2:\n\n${' '.repeat(990)}recheck`)).triggered).toEqual([]);
    // Without the limit this comment takes minutes to match against the OpenStack regex.
    expect(planEvent(config, comment(`${' '.repeat(500000)}x`)).triggered).toEqual([]);
  });

  it('uses the configured recheck regex, case-insensitively', () => {
    const custom = smallConfig("pipelines: { recheckRegex: '^run-ci\\b' }");
    expect(only(planEvent(custom, comment('RUN-CI now'))).trigger).toBe('recheck');
    expect(planEvent(custom, comment('recheck')).triggered).toEqual([]);
  });

  it('ignores comments by the CI account itself, even when they match', () => {
    const plan = planEvent(config, comment('recheck', [], {}, 'akanda-ci'));
    expect(plan).toEqual({ triggered: [], supersedes: [], ignored: 'comment by the CI account itself' });
  });

  it('a recheck of an older patchset triggers nothing when the current patchset is known', () => {
    const plan = planEvent(config, comment('recheck', [], { patchset: 2 }), { currentPatchset: 3 });
    expect(plan.triggered).toEqual([]);
    expect(plan.ignored).toBe('patchset 2 of change 4321 is not current (current: 3)');
    expect(only(planEvent(config, comment('recheck', [], { patchset: 3 }), { currentPatchset: 3 })).patchset).toBe(3);
  });

  it('reads the current patchset from the event when it carries one', () => {
    const event = comment('recheck', [], { patchset: 2, extra: { currentPatchSet: { number: '4' } } });
    expect(planEvent(config, event).ignored).toBe('patchset 2 of change 4321 is not current (current: 4)');
    expect(planEvent(config, event, { currentPatchset: 2 }).triggered).toHaveLength(1);
  });

  it.each([
    ['MERGED', 'change 4321 is merged'],
    ['ABANDONED', 'change 4321 is abandoned'],
  ])('a recheck on a %s change triggers nothing', (status, reason) => {
    expect(planEvent(config, comment('recheck', [], { status })).ignored).toBe(reason);
  });

  it('open: false closes a change even without a status', () => {
    const event = comment('recheck', [], { extra: { status: undefined, open: false } });
    expect(planEvent(config, event).ignored).toBe('change 4321 is closed');
  });

  it('a private change is never tested (its logs would be public)', () => {
    const plan = planEvent(config, patchsetCreated({ extra: { private: true } }));
    expect(plan.ignored).toBe('change 4321 is private: its logs would be public');
  });

  it('a work-in-progress change is still checked', () => {
    expect(only(planEvent(config, patchsetCreated({ extra: { wip: true } }))).pipeline).toBe('check');
  });

  it('a draft patchset from an old server is not tested', () => {
    const event = patchsetCreated();
    (event.patchSet as Record<string, unknown>).isDraft = true;
    expect(planEvent(config, event).ignored).toBe('change 4321 patchset 2 is a draft');
  });

  it('a project with no check jobs triggers nothing, with a reason', () => {
    expect(planEvent(config, patchsetCreated({ project: 'stackforge/akanda-neutron' })).triggered).toHaveLength(1);
    expect(
      planEvent(config, comment('Workflow', [workflow('1', '0')], { project: 'stackforge/akanda-neutron' })),
    ).toEqual({ triggered: [], supersedes: [], ignored: 'project stackforge/akanda-neutron has no gate jobs' });
  });
});

describe('gate pipeline', () => {
  const config = smallConfig();

  it('triggers when Workflow +1 is newly granted (oldValue says so)', () => {
    const plan = planEvent(
      config,
      comment('Patch Set 2: Workflow+1', [{ type: 'Code-Review', value: '2' }, workflow('1', '0')]),
    );
    expect(only(plan)).toMatchObject({ pipeline: 'gate', trigger: 'approval' });
    expect(jobNames(plan)).toEqual(['pep8', 'dsvm']);
  });

  it.each([
    ['no oldValue (the author already held the vote)', [workflow('1')]],
    ['oldValue equal to the value', [workflow('1', '1')]],
    ['a vote taken away', [workflow('0', '1')]],
    ['a -1', [workflow('-1', '0')]],
    ['another label newly granted', [{ type: 'Code-Review', value: '1', oldValue: '0' }]],
  ])('does not trigger on %s', (_why, approvals) => {
    expect(planEvent(config, comment('Patch Set 2:', approvals)).triggered).toEqual([]);
  });

  it('matches label names like Zuul: case-insensitive, spaces as dashes; APRV is the old Workflow', () => {
    expect(only(planEvent(config, comment('x', [workflow('1', '0', 'workflow')]))).pipeline).toBe('gate');
    expect(only(planEvent(config, comment('x', [workflow('1', '0', 'APRV')]))).pipeline).toBe('gate');
    const codeReview = smallConfig('pipelines: { gateApproval: { label: Code-Review, value: 2 } }');
    expect(only(planEvent(codeReview, comment('x', [workflow('+2', '1', 'Code Review')]))).pipeline).toBe('gate');
    expect(only(planEvent(codeReview, comment('x', [workflow('2', '1', 'CRVW')]))).pipeline).toBe('gate');
    expect(planEvent(codeReview, comment('x', [workflow('1', '0')])).triggered).toEqual([]);
  });

  it('does not gate a closed change or an old patchset', () => {
    expect(planEvent(config, comment('x', [workflow('1', '0')], { status: 'MERGED' })).triggered).toEqual([]);
    expect(planEvent(config, comment('x', [workflow('1', '0')]), { currentPatchset: 5 }).triggered).toEqual([]);
  });

  it('a comment that approves and says recheck triggers both check and gate', () => {
    const plan = planEvent(config, comment('Patch Set 2: Workflow+1\n\nrecheck', [workflow('1', '0')]));
    expect(plan.triggered.map((b) => `${b.pipeline}/${b.trigger}`)).toEqual(['check/recheck', 'gate/approval']);
    expect(plan.ignored).toBeUndefined();
  });
});

describe('post pipeline', () => {
  const config = smallConfig();

  it('triggers on ref-updated of refs/heads/* with the new revision and no change', () => {
    const buildset = only(planEvent(config, refUpdated('refs/heads/master')));
    expect(buildset).toEqual({
      pipeline: 'post',
      trigger: 'ref-updated',
      project: APPLIANCE,
      branch: 'master',
      ref: 'refs/heads/master',
      revision: OTHER_REVISION,
      dependsOn: [],
      jobs: [
        {
          name: 'image',
          node: 'devstack',
          voting: true,
          timeoutSeconds: 3600,
          imageMode: 'none',
          publishesImage: true,
          run: './image.sh',
        },
        {
          name: 'smoke',
          node: 'devstack',
          voting: true,
          timeoutSeconds: 3600,
          imageMode: 'build',
          publishesImage: false,
          run: './smoke.sh',
        },
      ],
    });
  });

  it('reads a bare branch name from an old server as refs/heads/<name>', () => {
    const buildset = only(planEvent(config, refUpdated('stable/kilo', BUILDER)));
    expect(buildset).toMatchObject({ ref: 'refs/heads/stable/kilo', branch: 'stable/kilo', project: BUILDER });
  });

  it('takes the project from the top level when refUpdate has none (string or object)', () => {
    const ssh = { ...refUpdated('refs/heads/master'), project: BUILDER };
    delete (ssh.refUpdate as Record<string, unknown>).project;
    expect(only(planEvent(config, ssh)).project).toBe(BUILDER);
    const webhook = { ...ssh, project: { name: BUILDER } };
    expect(only(planEvent(config, webhook)).project).toBe(BUILDER);
  });

  it('runs when a branch is created (oldRev zeros)', () => {
    expect(
      only(planEvent(config, refUpdated('refs/heads/stable/liberty', BUILDER, OTHER_REVISION, ZEROS))).branch,
    ).toBe('stable/liberty');
  });

  it.each([
    ['refs/changes/21/4321/meta', 'ref-updated of refs/changes/21/4321/meta: post runs on refs/heads/* only'],
    ['refs/tags/1.0.0', 'ref-updated of refs/tags/1.0.0: post runs on refs/heads/* only'],
    ['refs/meta/config', 'ref-updated of refs/meta/config: post runs on refs/heads/* only'],
  ])('ignores %s', (ref, reason) => {
    expect(planEvent(config, refUpdated(ref)).ignored).toBe(reason);
  });

  it('ignores a branch deletion', () => {
    expect(planEvent(config, refUpdated('refs/heads/master', APPLIANCE, ZEROS)).ignored).toBe(
      'ref-updated deleted refs/heads/master',
    );
  });

  it('change-merged never triggers post (the ref-updated of the same merge does), so one merge builds one image', () => {
    const merged = {
      type: 'change-merged',
      newRev: OTHER_REVISION,
      ...changeFields({ project: APPLIANCE, status: 'MERGED' }),
    };
    expect(planEvent(config, merged).triggered).toEqual([]);
    const plans = [planEvent(config, merged), planEvent(config, refUpdated('refs/heads/master'))];
    const imageBuilds = plans.flatMap((p) => p.triggered).flatMap((b) => b.jobs.filter((j) => j.publishesImage));
    expect(imageBuilds).toHaveLength(1);
  });

  it('applies branch filters and ignores unwatched projects', () => {
    expect(planEvent(config, refUpdated('refs/heads/feature/x', RUG)).ignored).toBe(
      'branch feature/x of stackforge/akanda-rug does not match its branch filters',
    );
    expect(planEvent(config, refUpdated('refs/heads/master', 'openstack/nova')).ignored).toBe(
      'project openstack/nova is not in the config',
    );
  });

  it('ignores changed files and dependencies: every post job runs', () => {
    const plan = planEvent(config, refUpdated('refs/heads/master'), {
      changedFiles: ['doc/index.rst'],
      dependencies: [],
    });
    expect(jobNames(plan)).toEqual(['image', 'smoke']);
  });
});

describe('branch filters and unwatched projects', () => {
  const config = smallConfig();

  it('plans a branch that matches a filter, ignores one that does not', () => {
    expect(only(planEvent(config, patchsetCreated({ branch: 'stable/kilo' }))).branch).toBe('stable/kilo');
    const plan = planEvent(config, patchsetCreated({ branch: 'feature/ha', patchset: 4 }));
    expect(plan.triggered).toEqual([]);
    expect(plan.ignored).toBe('branch feature/ha of stackforge/akanda-rug does not match its branch filters');
  });

  it('branch filters are regexes searched anywhere unless anchored', () => {
    const config2 = smallConfig('', '  - { name: stackforge/akanda-rug, branches: [kilo], check: [pep8] }');
    expect(planEvent(config2, patchsetCreated({ branch: 'stable/kilo' })).triggered).toHaveLength(1);
    expect(planEvent(config2, patchsetCreated({ branch: 'master' })).triggered).toEqual([]);
  });

  it('a project without branch filters is planned on every branch', () => {
    expect(
      planEvent(config, patchsetCreated({ project: APPLIANCE, branch: 'feature/anything' })).triggered,
    ).toHaveLength(1);
  });

  it('an unwatched project gives nothing to do and supersedes nothing', () => {
    expect(planEvent(config, patchsetCreated({ project: 'openstack/nova', patchset: 7 }))).toEqual({
      triggered: [],
      supersedes: [],
      ignored: 'project openstack/nova is not in the config',
    });
    expect(
      planEvent(config, { type: 'change-abandoned', ...changeFields({ project: 'openstack/nova' }) }).supersedes,
    ).toEqual([]);
  });
});

describe('supersede', () => {
  const config = smallConfig();

  it('a new patchset supersedes check buildsets of the older patchsets of its change', () => {
    expect(planEvent(config, patchsetCreated({ patchset: 5 })).supersedes).toEqual([
      { project: RUG, change: 4321, belowPatchset: 5 },
    ]);
  });

  it('the first patchset supersedes nothing', () => {
    expect(planEvent(config, patchsetCreated({ patchset: 1 })).supersedes).toEqual([]);
  });

  it('a new patchset supersedes even when its branch is filtered out or nothing runs', () => {
    const plan = planEvent(config, patchsetCreated({ branch: 'feature/x', patchset: 2 }));
    expect(plan.triggered).toEqual([]);
    expect(plan.supersedes).toEqual([{ project: RUG, change: 4321, belowPatchset: 2 }]);
  });

  it('an abandon supersedes every patchset of the change', () => {
    const plan = planEvent(config, { type: 'change-abandoned', ...changeFields({ patchset: 6, status: 'ABANDONED' }) });
    expect(plan.supersedes).toEqual([{ project: RUG, change: 4321, belowPatchset: 7 }]);
    const { change } = changeFields({ status: 'ABANDONED' });
    expect(planEvent(config, { type: 'change-abandoned', change }).supersedes).toEqual([
      { project: RUG, change: 4321, belowPatchset: MAX_GERRIT_NUMBER },
    ]);
  });

  it('a recheck or an approval supersedes nothing', () => {
    expect(planEvent(config, comment('recheck', [workflow('1', '0')], { patchset: 4 })).supersedes).toEqual([]);
  });
});

describe('files and irrelevant-files', () => {
  const config = smallConfig();

  it('without a changed-file list every job runs', () => {
    expect(jobNames(planEvent(config, patchsetCreated()))).toEqual(['pep8', 'py27', 'docs', 'dsvm']);
  });

  it('skips jobs whose irrelevant-files cover every changed file, runs files-matched jobs', () => {
    const plan = planEvent(config, patchsetCreated(), { changedFiles: ['/COMMIT_MSG', 'doc/source/index.rst'] });
    expect(jobNames(plan)).toEqual(['pep8', 'docs']);
  });

  it('a code change runs the irrelevant-files jobs and skips the docs-only job', () => {
    const plan = planEvent(config, patchsetCreated(), {
      changedFiles: ['/COMMIT_MSG', 'akanda/rug/worker.py', 'README.rst'],
    });
    expect(jobNames(plan)).toEqual(['pep8', 'py27', 'dsvm']);
  });

  it('/COMMIT_MSG always counts as changed: a message-only patchset runs every job', () => {
    expect(jobNames(planEvent(config, patchsetCreated(), { changedFiles: ['/COMMIT_MSG'] }))).toEqual([
      'pep8',
      'py27',
      'docs',
      'dsvm',
    ]);
    expect(jobNames(planEvent(config, patchsetCreated(), { changedFiles: [] }))).toHaveLength(4);
  });

  it('when every job is skipped nothing triggers, with a reason', () => {
    const onlyDsvm = smallConfig('', '  - { name: stackforge/akanda-rug, check: [dsvm] }');
    const plan = planEvent(onlyDsvm, patchsetCreated({ patchset: 3 }), { changedFiles: ['doc/a.rst'] });
    expect(plan.triggered).toEqual([]);
    expect(plan.ignored).toBe('every check job is skipped for the changed files');
    expect(plan.supersedes).toEqual([{ project: RUG, change: 4321, belowPatchset: 3 }]);
  });
});

describe('image mode', () => {
  const withLatest = smallConfig(`appliance:
  latestImageUrl: https://cdn.example.org/akanda-appliance-latest.qcow2
  pinnedImages: { stable/kilo: 'https://cdn.example.org/akanda-appliance-stable-kilo.qcow2' }`);
  const bare = smallConfig();
  const dependency = (project: string) => ({
    project,
    branch: 'master',
    change: 77,
    patchset: 1,
    ref: 'refs/changes/77/77/1',
    revision: OTHER_REVISION,
  });

  it('a job that does not need the image gets none', () => {
    expect(job(only(planEvent(withLatest, patchsetCreated())), 'pep8')).toMatchObject({ imageMode: 'none' });
    expect(job(only(planEvent(withLatest, patchsetCreated())), 'pep8').imageUrl).toBeUndefined();
  });

  it('a change outside the appliance gets the latest image on master', () => {
    expect(job(only(planEvent(withLatest, patchsetCreated())), 'dsvm')).toMatchObject({
      imageMode: 'prebuilt',
      imageUrl: 'https://cdn.example.org/akanda-appliance-latest.qcow2',
    });
  });

  it('master without a pin gets the latest image, from latestImageUrl before the image store', () => {
    expect(prebuiltImage(withLatest, 'master', 'https://d111.cloudfront.net')).toEqual({
      url: 'https://cdn.example.org/akanda-appliance-latest.qcow2',
    });
    expect(prebuiltImage(bare, 'master', 'https://d111.cloudfront.net/')).toEqual({
      url: 'https://d111.cloudfront.net/akanda-appliance-latest.qcow2',
    });
  });

  it('a stable branch with a pin gets its pinned image', () => {
    expect(job(only(planEvent(withLatest, patchsetCreated({ branch: 'stable/kilo' }))), 'dsvm').imageUrl).toBe(
      'https://cdn.example.org/akanda-appliance-stable-kilo.qcow2',
    );
    expect(prebuiltImage(withLatest, 'stable/kilo', 'https://d111.cloudfront.net')).toEqual({
      url: 'https://cdn.example.org/akanda-appliance-stable-kilo.qcow2',
    });
  });

  it("a stable branch without a pin gets the rolling image published from that branch, never master's", () => {
    const plan = planEvent(bare, patchsetCreated({ branch: 'stable/liberty' }), {
      imageBaseUrl: 'https://d111.cloudfront.net/',
    });
    expect(job(only(plan), 'dsvm')).toMatchObject({
      imageMode: 'prebuilt',
      imageUrl: 'https://d111.cloudfront.net/images/stable-liberty/akanda-appliance-latest.qcow2',
    });
    expect(job(only(plan), 'dsvm').imageUnavailable).toBeUndefined();
    // The image store the publisher writes to comes first, even when latestImageUrl is set.
    expect(prebuiltImageUrl(withLatest, 'stable/liberty', 'https://d111.cloudfront.net')).toBe(
      'https://d111.cloudfront.net/images/stable-liberty/akanda-appliance-latest.qcow2',
    );
    // Each path segment is percent-encoded: S3 would read a bare `+` as a space.
    expect(prebuiltImageUrl(bare, 'feature/c++', 'https://d111.cloudfront.net')).toBe(
      'https://d111.cloudfront.net/images/feature-c%2B%2B/akanda-appliance-latest.qcow2',
    );
  });

  it('without the image store, a stable branch derives it from latestImageUrl only when that is unambiguous', () => {
    expect(job(only(planEvent(withLatest, patchsetCreated({ branch: 'stable/liberty' }))), 'dsvm').imageUrl).toBe(
      'https://cdn.example.org/images/stable-liberty/akanda-appliance-latest.qcow2',
    );
    const below = smallConfig('appliance: { latestImageUrl: "https://example.org/ci/akanda-appliance-latest.qcow2" }');
    expect(prebuiltImageUrl(below, 'stable/liberty')).toBe(
      'https://example.org/ci/images/stable-liberty/akanda-appliance-latest.qcow2',
    );
    const elsewhere = smallConfig('appliance: { latestImageUrl: "https://tarballs.example.org/appliance.qcow2" }');
    const dsvm = job(only(planEvent(elsewhere, patchsetCreated({ branch: 'stable/liberty' }))), 'dsvm');
    expect(dsvm.imageMode).toBe('prebuilt');
    expect(dsvm.imageUrl).toBeUndefined();
    expect(dsvm.imageUnavailable).toBe(
      "no appliance image for branch stable/liberty: appliance.latestImageUrl does not end in /akanda-appliance-latest.qcow2, so the image store holding the branch's images is unknown; pin one in appliance.pinnedImages in akanda-ci.yaml",
    );
    const queried = smallConfig(
      'appliance: { latestImageUrl: "https://example.org/get?f=/akanda-appliance-latest.qcow2" }',
    );
    expect(prebuiltImage(queried, 'stable/liberty')).toHaveProperty('unavailable');
    // On master the configured URL itself is the image.
    expect(prebuiltImageUrl(elsewhere, 'master')).toBe('https://tarballs.example.org/appliance.qcow2');
  });

  it('with nothing configured a stable branch says why', () => {
    expect(prebuiltImage(bare, 'stable/liberty')).toEqual({
      unavailable:
        'no appliance image for branch stable/liberty: the image store is not deployed; pin one in appliance.pinnedImages in akanda-ci.yaml',
    });
  });

  it('without latestImageUrl the image store base from the inputs is used', () => {
    const plan = planEvent(bare, patchsetCreated(), { imageBaseUrl: 'https://d111.cloudfront.net/' });
    expect(job(only(plan), 'dsvm').imageUrl).toBe('https://d111.cloudfront.net/akanda-appliance-latest.qcow2');
  });

  it('with no URL known at all the plan still succeeds and says why', () => {
    const dsvm = job(only(planEvent(bare, patchsetCreated())), 'dsvm');
    expect(dsvm.imageMode).toBe('prebuilt');
    expect(dsvm.imageUrl).toBeUndefined();
    expect(dsvm.imageUnavailable).toBe(
      'no appliance image URL is known: set appliance.latestImageUrl in akanda-ci.yaml or deploy the image store',
    );
  });

  it('a change in an appliance project builds the image from source', () => {
    const dsvm = job(only(planEvent(withLatest, patchsetCreated({ project: APPLIANCE }))), 'dsvm');
    expect(dsvm).toMatchObject({ imageMode: 'build' });
    expect(dsvm.imageUrl).toBeUndefined();
    expect(job(only(planEvent(bare, patchsetCreated({ project: BUILDER }))), 'dsvm').imageMode).toBe('build');
  });

  it('a change that depends on an appliance change builds the image; other dependencies do not', () => {
    const building = planEvent(withLatest, patchsetCreated(), { dependencies: [dependency(BUILDER)] });
    expect(job(only(building), 'dsvm').imageMode).toBe('build');
    const notBuilding = planEvent(withLatest, patchsetCreated(), {
      dependencies: [dependency('stackforge/akanda-neutron')],
    });
    expect(job(only(notBuilding), 'dsvm').imageMode).toBe('prebuilt');
  });

  it('follows the configured appliance projects', () => {
    const custom = smallConfig('appliance: { projects: [stackforge/akanda-neutron] }');
    expect(job(only(planEvent(custom, patchsetCreated({ project: APPLIANCE }))), 'dsvm').imageMode).toBe('prebuilt');
  });

  it('post: the publishing job builds its own image (none); other post jobs follow the rule', () => {
    const appliancePost = only(planEvent(withLatest, refUpdated('refs/heads/master')));
    expect(job(appliancePost, 'image').imageMode).toBe('none');
    expect(job(appliancePost, 'smoke').imageMode).toBe('build');
    const rugPost = only(planEvent(withLatest, refUpdated('refs/heads/stable/kilo', RUG)));
    expect(job(rugPost, 'smoke')).toMatchObject({
      imageMode: 'prebuilt',
      imageUrl: 'https://cdn.example.org/akanda-appliance-stable-kilo.qcow2',
    });
  });

  it('prebuiltImageUrl does not read inherited keys as pinned branches', () => {
    expect(prebuiltImageUrl(bare, 'constructor')).toBeUndefined();
    expect(prebuiltImageUrl(bare, '__proto__', 'https://x.example')).toBe(
      'https://x.example/images/__proto__/akanda-appliance-latest.qcow2',
    );
  });
});

describe('planned job fields', () => {
  it('carries node, voting, run and the timeout capped by limits.buildTimeLimit', () => {
    const config = smallConfig('limits: { buildTimeLimit: 2h }');
    const buildset = only(planEvent(config, patchsetCreated()));
    expect(job(buildset, 'dsvm')).toMatchObject({
      node: 'devstack',
      timeoutSeconds: 7200,
      voting: true,
      run: './dsvm.sh',
    });
    expect(job(buildset, 'pep8')).toMatchObject({ node: 'small', timeoutSeconds: 1800 });
    expect(job(buildset, 'docs').voting).toBe(false);
  });
});

describe('invalid events', () => {
  const config: Config = smallConfig();
  const cases: [string, unknown, string][] = [
    ['not JSON', '{"type":', 'event is not valid JSON'],
    ['a list', [], 'event must be a JSON object, got a list'],
    ['null', null, 'event must be a JSON object, got null'],
    ['no type', {}, 'event.type: required string'],
    ['a hostile type', { type: 'x; rm -rf /' }, 'event.type "x; rm -rf /" is not a Gerrit event type'],
    ['no change', { type: 'patchset-created' }, 'change: required'],
    [
      'a shell in the project',
      patchsetCreated({ project: 'akanda/$(curl evil)' }),
      'change.project: project "akanda/$(curl evil)" may contain only letters, digits, ".", "_", "/", "+" and "-"',
    ],
    [
      'a branch that is an option',
      patchsetCreated({ branch: '--upload-pack=touch' }),
      'change.branch: branch "--upload-pack=touch" may contain only letters, digits, ".", "_", "/", "+" and "-"',
    ],
    [
      'a newline in the branch',
      patchsetCreated({ branch: 'master\nrm' }),
      'change.branch: branch "master\\nrm" may contain only letters, digits, ".", "_", "/", "+" and "-"',
    ],
    [
      'a path escape',
      patchsetCreated({ project: '../../etc' }),
      'change.project: project "../../etc" must not contain ".."',
    ],
    [
      'a change ref for another change',
      { ...patchsetCreated(), patchSet: { number: 2, revision: REVISION, ref: 'refs/changes/99/9999/2' } },
      'patchSet.ref: ref "refs/changes/99/9999/2" does not match change 4321 patchset 2 (expected refs/changes/21/4321/2)',
    ],
    [
      'a ref that is not a change ref',
      { ...patchsetCreated(), patchSet: { number: 2, revision: REVISION, ref: 'refs/heads/master' } },
      'patchSet.ref: ref "refs/heads/master" is not a change ref (expected refs/changes/21/4321/2)',
    ],
    [
      'a short revision',
      { ...patchsetCreated(), patchSet: { number: 2, revision: 'abc123' } },
      'patchSet.revision: revision "abc123" must be 40 lowercase hex digits',
    ],
    [
      'a change number with junk',
      patchsetCreated({ extra: { number: '12abc' } }),
      'change.number: expected a number from 1 to 2147483647, got "12abc"',
    ],
    [
      'a negative change number',
      patchsetCreated({ extra: { number: -5 } }),
      'change.number: expected a number from 1 to 2147483647, got -5',
    ],
    ['an unknown status', patchsetCreated({ status: 'SUBMITTED' }), 'change.status: unknown status "SUBMITTED"'],
    [
      'a bad Change-Id',
      patchsetCreated({ extra: { id: 'I123' } }),
      'change.id: changeId "I123" must be "I" followed by 40 lowercase hex digits',
    ],
    [
      'approvals not a list',
      { ...comment('recheck'), approvals: { type: 'Workflow' } },
      'approvals: expected a list, got object',
    ],
    [
      'an approval value that is not a number',
      comment('x', [{ type: 'Workflow', value: 'yes', oldValue: '0' }]),
      'approvals[0].value: expected a vote like "-1" or "2", got "yes"',
    ],
    ['ref-updated without refUpdate', { type: 'ref-updated' }, 'refUpdate: required'],
    [
      'a hostile ref name',
      refUpdated('refs/heads/a b'),
      'refUpdate.refName: ref "refs/heads/a b" may contain only letters, digits, ".", "_", "/", "+" and "-"',
    ],
    [
      'a ref-updated without newRev',
      { type: 'ref-updated', refUpdate: { project: RUG, refName: 'master' } },
      'refUpdate.newRev: required',
    ],
  ];

  it.each(cases)('%s gives a one-line EventError', (_why, raw, message) => {
    let thrown: unknown;
    try {
      planEvent(config, raw);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(EventError);
    expect((thrown as Error).message).toBe(message);
    expect((thrown as Error).message).not.toMatch(/[\n\r]/);
  });

  it('accepts the event as JSON text as well as an object', () => {
    expect(planEvent(config, JSON.stringify(patchsetCreated()))).toEqual(planEvent(config, patchsetCreated()));
  });
});

describe('the benchmark stream', () => {
  it('is made of valid events, and some of them trigger', async () => {
    const { mixedStream } = await import('../../scripts/bench/planner');
    const config = shippedConfig();
    const plans = mixedStream(500).map((event) => planEvent(config, event));
    const pipelines = new Set(plans.flatMap((p) => p.triggered.map((b) => b.pipeline)));
    expect([...pipelines].sort()).toEqual(['check', 'gate', 'post']);
    expect(plans.filter((p) => p.triggered.length === 0).length).toBeGreaterThan(plans.length / 2);
  });
});
