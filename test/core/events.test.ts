import { EventError, GerritEvent, parseGerritEvent } from '../../lambda/core/events';
import { fixture, fixtureNames, fixtureText } from './support';

function parse(name: string): GerritEvent {
  return parseGerritEvent(fixtureText(name));
}

function expectType<T extends GerritEvent['type']>(event: GerritEvent, type: T): GerritEvent & { type: T } {
  expect(event.type).toBe(type);
  return event as GerritEvent & { type: T };
}

describe('parseGerritEvent on the recorded events (kept verbatim)', () => {
  it('webhooks patchset-created: project object, integer numbers', () => {
    const event = expectType(parse('webhook-patchset-created.json'), 'patchset-created');
    expect(event.change).toEqual({
      project: 'TestRepo1',
      branch: 'patch_create',
      number: 2,
      changeId: 'Ie10fd901201c53e9fe3b9766343060763ac81dc6',
      status: 'NEW',
      open: true,
      wip: false,
      private: false,
      commitMessage: 'test.file added\n\nChange-Id: Ie10fd901201c53e9fe3b9766343060763ac81dc6\n',
      subject: 'test.file added',
      url: 'http://959be7129610/c/TestRepo1/+/2',
      owner: { name: 'Administrator', email: 'admin@example.com', username: 'admin' },
    });
    expect(event.patchSet).toEqual({
      number: 1,
      revision: 'b59138869113bfd9d3e7fbf9439d74e1ae6c54b8',
      ref: 'refs/changes/02/2/1',
      kind: 'REWORK',
      draft: false,
    });
    expect(event.uploader?.username).toBe('admin');
    expect(event.eventCreatedOn).toBe(1700478732);
  });

  it('webhooks comment-added: approval values as strings, oldValue when the vote changed', () => {
    const event = expectType(parse('webhook-comment-added.json'), 'comment-added');
    expect(event.approvals).toEqual([{ label: 'Code-Review', value: 2, oldValue: 1 }]);
    expect(event.comment).toBe('Patch Set 2: Code-Review+2');
    expect(event.author?.username).toBe('admin');
    expect(event.patchSet.kind).toBe('NO_CODE_CHANGE');
  });

  it('Gerrit 2 change-restored over SSH: numbers as strings, isDraft', () => {
    const event = expectType(parse('ssh-gerrit2-change-restored.json'), 'change-restored');
    expect(event.change.number).toBe(654);
    expect(event.patchSet).toEqual({
      number: 1,
      revision: 'b2b5f7c8fb8f96312d629d4d4f379f34f5b9b651',
      ref: 'refs/changes/54/654/1',
      draft: false,
    });
    expect(event.restorer?.username).toBe('scott');
  });

  it('SSH wip-state-changed: project string, changeKey.id, wip true', () => {
    const event = expectType(parse('ssh-wip-state-changed.json'), 'wip-state-changed');
    expect(event.change).toMatchObject({ project: 'snix', branch: 'canon', number: 30628, wip: true });
    expect(event.changer?.username).toBe('flokli');
  });
});

describe('parseGerritEvent on every fixture', () => {
  it.each(fixtureNames())('%s parses, and the parsed object equals the text parsed', (name) => {
    expect(parseGerritEvent(fixture(name))).toEqual(parseGerritEvent(fixtureText(name)));
  });

  it('the SSH and webhooks forms of the same kind of event agree on what matters', () => {
    const ssh = expectType(parse('ssh-new-patchset-created.json'), 'patchset-created');
    const webhook = expectType(parse('webhook-new-patchset-created-appliance.json'), 'patchset-created');
    for (const event of [ssh, webhook]) {
      expect(typeof event.change.project).toBe('string');
      expect(typeof event.change.number).toBe('number');
      expect(typeof event.patchSet.number).toBe('number');
    }
  });
});

describe('old servers', () => {
  it('translates legacy approval codes to label names', () => {
    const event = expectType(parse('ssh-old-comment-added-approved.json'), 'comment-added');
    expect(event.approvals).toEqual([
      { label: 'Code-Review', value: 2, oldValue: 0 },
      { label: 'Workflow', value: 1, oldValue: 0 },
    ]);
    const recheck = expectType(parse('ssh-old-comment-added-recheck.json'), 'comment-added');
    expect(recheck.approvals.map((a) => a.label)).toEqual(['Code-Review', 'Verified']);
  });

  it('reads bare branch names in refUpdate.refName as refs/heads/<name>', () => {
    const event = expectType(parse('ssh-old-ref-updated.json'), 'ref-updated');
    expect(event.refUpdate.refName).toBe('refs/heads/master');
    const stable = expectType(parse('ssh-old-ref-updated-appliance-builder.json'), 'ref-updated');
    expect(stable.refUpdate).toMatchObject({
      refName: 'refs/heads/stable/kilo',
      project: 'stackforge/akanda-appliance-builder',
    });
  });

  it('reads draft status and isDraft', () => {
    const event = expectType(parse('ssh-old-patchset-created-draft.json'), 'patchset-created');
    expect(event.change.status).toBe('DRAFT');
    expect(event.change.open).toBe(true);
    expect(event.patchSet.draft).toBe(true);
  });

  it('accepts "true"/"false" strings for booleans and string timestamps', () => {
    const raw = fixture('ssh-old-patchset-created.json');
    (raw.change as Record<string, unknown>).open = 'false';
    raw.eventCreatedOn = '1418090036';
    const event = expectType(parseGerritEvent(raw), 'patchset-created');
    expect(event.change.open).toBe(false);
    expect(event.eventCreatedOn).toBe(1418090036);
  });
});

describe('field by field', () => {
  const base = () => fixture('ssh-new-patchset-created.json');

  it('falls back to the top-level project (string over SSH, object from webhooks) when change.project is missing', () => {
    const ssh = base();
    delete (ssh.change as Record<string, unknown>).project;
    expect(expectType(parseGerritEvent(ssh), 'patchset-created').change.project).toBe('stackforge/akanda-rug');
    const webhook = { ...ssh, project: { name: 'stackforge/akanda-neutron' } };
    expect(expectType(parseGerritEvent(webhook), 'patchset-created').change.project).toBe('stackforge/akanda-neutron');
  });

  it('prefers change.project over the top-level project', () => {
    const event = { ...base(), project: 'something/else' };
    expect(expectType(parseGerritEvent(event), 'patchset-created').change.project).toBe('stackforge/akanda-rug');
  });

  it('derives the change ref when the patchset has none', () => {
    const event = base();
    delete (event.patchSet as Record<string, unknown>).ref;
    expect(expectType(parseGerritEvent(event), 'patchset-created').patchSet.ref).toBe('refs/changes/40/187040/3');
  });

  it('lowercases an uppercase revision', () => {
    const event = base();
    (event.patchSet as Record<string, unknown>).revision = 'ABCDEF0123456789ABCDEF0123456789ABCDEF01';
    expect(expectType(parseGerritEvent(event), 'patchset-created').patchSet.revision).toBe(
      'abcdef0123456789abcdef0123456789abcdef01',
    );
  });

  it('derives open from status when open is missing', () => {
    const event = base();
    const change = event.change as Record<string, unknown>;
    delete change.open;
    change.status = 'MERGED';
    expect(expectType(parseGerritEvent(event), 'patchset-created').change.open).toBe(false);
    delete change.status;
    expect(expectType(parseGerritEvent(event), 'patchset-created').change.open).toBeUndefined();
  });

  it('treats null like a missing optional field', () => {
    const event = {
      type: 'comment-added',
      change: { project: 'p', branch: 'b', number: 1, id: null, status: null, commitMessage: null, wip: null },
      patchSet: { number: 1, revision: 'a'.repeat(40), ref: null, kind: null },
      comment: null,
      approvals: [{ type: 'Workflow', value: '1', oldValue: null }],
    };
    const parsed = expectType(parseGerritEvent(event), 'comment-added');
    expect(parsed.comment).toBe('');
    expect(parsed.change.commitMessage).toBe('');
    expect(parsed.change.changeId).toBeUndefined();
    expect(parsed.approvals).toEqual([{ label: 'Workflow', value: 1 }]);
  });

  it('accepts vote values as "+1", "-2" and integers', () => {
    const event = {
      ...fixture('ssh-new-comment-added-workflow.json'),
      approvals: [
        { type: 'Verified', value: '+1', oldValue: '-1' },
        { type: 'Code-Review', value: -2, oldValue: 0 },
      ],
    };
    expect(expectType(parseGerritEvent(event), 'comment-added').approvals).toEqual([
      { label: 'Verified', value: 1, oldValue: -1 },
      { label: 'Code-Review', value: -2, oldValue: 0 },
    ]);
  });

  it('a change-abandoned may lack a patchset', () => {
    const event = fixture('ssh-new-change-abandoned.json');
    delete event.patchSet;
    const parsed = expectType(parseGerritEvent(event), 'change-abandoned');
    expect(parsed.patchSet).toBeUndefined();
    expect(parsed.reason).toBe('Superseded by a different approach');
  });

  it('change-merged keeps newRev', () => {
    const parsed = expectType(parse('ssh-new-change-merged.json'), 'change-merged');
    expect(parsed.newRev).toMatch(/^[0-9a-f]{40}$/);
  });

  it('unknown event types come back as "other" with their name', () => {
    expect(parse('webhook-new-vote-deleted.json')).toEqual({
      type: 'other',
      eventType: 'vote-deleted',
      eventCreatedOn: 1433001400,
    });
    expect(parseGerritEvent({ type: 'project-created', projectName: 'x' })).toEqual({
      type: 'other',
      eventType: 'project-created',
    });
  });

  it('ignores unknown fields and account junk', () => {
    const event = { ...base(), uploader: 'not an account', extra: { nested: [1, 2] } };
    const parsed = expectType(parseGerritEvent(event), 'patchset-created');
    expect(parsed.uploader).toBeUndefined();
  });
});

describe('invalid input is an EventError with one line', () => {
  const oversized = `{"type":"comment-added","comment":"${'x'.repeat(1024 * 1024)}"}`;
  it.each<[string, unknown, string]>([
    ['oversized text', oversized, 'event is larger than 1048576 bytes'],
    ['a number', 42, 'event must be a JSON object, got 42'],
    [
      'a string of JSON that is not an object',
      '"patchset-created"',
      'event must be a JSON object, got "patchset-created"',
    ],
    ['type not a string', { type: 7 }, 'event.type: required string'],
    ['change not an object', { type: 'patchset-created', change: 'x' }, 'change: expected an object, got "x"'],
    [
      'patchSet missing',
      { type: 'patchset-created', change: { project: 'p', branch: 'b', number: 1 } },
      'patchSet: required',
    ],
    [
      'a boolean that is not one',
      { type: 'patchset-created', change: { project: 'p', branch: 'b', number: 1, wip: 'maybe' } },
      'change.wip: expected true or false, got "maybe"',
    ],
    [
      'a patchset number of zero',
      { type: 'patchset-created', change: { project: 'p', branch: 'b', number: 1 }, patchSet: { number: 0 } },
      'patchSet.number: expected a number from 1 to 2147483647, got 0',
    ],
    [
      'a change number beyond 32 bits',
      { type: 'patchset-created', change: { project: 'p', branch: 'b', number: '99999999999' } },
      'change.number: expected a number from 1 to 2147483647, got "99999999999"',
    ],
    [
      'a comment that is not a string',
      { ...fixture('ssh-new-comment-added-recheck.json'), comment: ['recheck'] },
      'comment: expected a string, got a list',
    ],
    [
      'an approval label with a newline',
      { ...fixture('ssh-new-comment-added-recheck.json'), approvals: [{ type: 'Work\nflow', value: '1' }] },
      'approvals[0].type: expected a label name, got "Work\\nflow"',
    ],
    [
      'a ref-updated without refName',
      { type: 'ref-updated', refUpdate: { project: 'p' } },
      'refUpdate.refName: required string',
    ],
    [
      'a ref with ..',
      { type: 'ref-updated', refUpdate: { project: 'p', refName: 'refs/heads/../../x', newRev: 'a'.repeat(40) } },
      'refUpdate.refName: ref "refs/heads/../../x" must not contain ".."',
    ],
    [
      'an eventCreatedOn that is not a number',
      { type: 'dropped-output', eventCreatedOn: 'yesterday' },
      'eventCreatedOn: expected a number, got "yesterday"',
    ],
  ])('%s', (_why, raw, message) => {
    expect(() => parseGerritEvent(raw)).toThrow(new EventError(message));
    try {
      parseGerritEvent(raw);
    } catch (error) {
      expect(error).toBeInstanceOf(EventError);
      expect((error as Error).message.split('\n')).toHaveLength(1);
    }
  });

  it('never echoes a huge hostile value in full', () => {
    const project = `${'a'.repeat(5000)};`;
    try {
      parseGerritEvent({ type: 'ref-updated', refUpdate: { project, refName: 'master', newRev: 'a'.repeat(40) } });
      throw new Error('expected an EventError');
    } catch (error) {
      expect(error).toBeInstanceOf(EventError);
      expect((error as Error).message.length).toBeLessThan(200);
    }
  });
});
