import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GerritStandin } from './gerrit-standin';

const RUG = 'stackforge/akanda-rug';

let gerrit: GerritStandin;
let clock: number;

beforeEach(async () => {
  clock = Date.parse('2026-01-01T00:00:00Z');
  gerrit = await GerritStandin.start({ username: 'ci', password: 'sekrit', now: () => clock });
});

afterEach(async () => {
  await gerrit.close();
});

const auth = { Authorization: `Basic ${Buffer.from('ci:sekrit').toString('base64')}` };

async function get(path: string, headers: Record<string, string> = auth) {
  const response = await fetch(`${gerrit.url}${path}`, { headers });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

async function getJson(path: string): Promise<unknown> {
  const { status, text } = await get(path);
  expect(status).toBe(200);
  expect(text.startsWith(")]}'\n")).toBe(true);
  return JSON.parse(text.slice(5));
}

async function post(path: string, body: unknown, contentType = 'application/json; charset=UTF-8') {
  const response = await fetch(`${gerrit.url}${path}`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

function reviewPath(change: number, revision: string) {
  return `/a/changes/${change}/revisions/${revision}/review`;
}

describe('authentication', () => {
  it('serves only /a/ paths, and only with the right password', async () => {
    const change = gerrit.createChange({ project: RUG });
    expect((await get(`/changes/${change.number}`)).status).toBe(404);
    const wrong = await get(`/a/changes/${change.number}`, {
      Authorization: `Basic ${Buffer.from('ci:wrong').toString('base64')}`,
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="Gerrit Code Review"');
    expect((await get(`/a/changes/${change.number}`, {})).status).toBe(401);
    expect((await get(`/a/changes/${change.number}`)).status).toBe(200);
    expect(gerrit.requests.map((r) => [r.status, r.authenticated])).toEqual([
      [404, false],
      [401, false],
      [401, false],
      [200, true],
    ]);
  });

  it('makes up a password when none is given', async () => {
    const other = await GerritStandin.start();
    try {
      expect(other.password).toMatch(/^pw-[0-9a-f]{16}$/);
      expect(other.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await other.close();
    }
  });
});

describe('changes', () => {
  it('answers ChangeInfo with the current revision, ref and commit as Gerrit does', async () => {
    const change = gerrit.createChange({ project: RUG, branch: 'stable/kilo', number: 305, subject: 'Fix' });
    const ps2 = gerrit.addPatchset(305, { files: ['a.py'] });

    const info = (await getJson('/a/changes/305?o=CURRENT_REVISION&o=CURRENT_COMMIT')) as Record<string, unknown>;

    expect(info).toMatchObject({
      project: RUG,
      branch: 'stable/kilo',
      change_id: change.changeId,
      _number: 305,
      status: 'NEW',
      subject: 'Fix',
      current_revision: ps2.revision,
      revisions: {
        [ps2.revision]: {
          _number: 2,
          ref: 'refs/changes/05/305/2',
          commit: { message: `Fix\n\nChange-Id: ${change.changeId}\n`, subject: 'Fix' },
        },
      },
    });
    expect(Object.keys(info.revisions as object)).toEqual([ps2.revision]);
    const bare = (await getJson('/a/changes/305')) as Record<string, unknown>;
    expect(bare.revisions).toBeUndefined();
    const all = (await getJson('/a/changes/305?o=ALL_REVISIONS')) as { revisions: object };
    expect(Object.keys(all.revisions)).toHaveLength(2);
  });

  it('finds a change by number, Change-Id, encoded triplet and project~number', async () => {
    const change = gerrit.createChange({ project: RUG, branch: 'stable/kilo' });
    const ids = [
      String(change.number),
      change.changeId,
      `stackforge%2Fakanda-rug~stable%2Fkilo~${change.changeId}`,
      `stackforge%2Fakanda-rug~${change.number}`,
    ];
    for (const id of ids)
      expect(((await getJson(`/a/changes/${id}`)) as { _number: number })._number).toBe(change.number);
    // Unencoded slashes split the path, as on a real server.
    expect((await get(`/a/changes/${RUG}~stable/kilo~${change.changeId}`)).status).toBe(404);
    expect((await get(`/a/changes/other%2Fproject~stable%2Fkilo~${change.changeId}`)).status).toBe(404);
  });

  it('answers 400 to malformed escapes and 404 to unknown paths, and keeps serving', async () => {
    const change = gerrit.createChange({ project: RUG });
    expect((await get('/a/changes/%E0%A4%A')).status).toBe(400);
    expect((await get(`/a/changes/${change.number}/revisions/%ZZ/files`)).status).toBe(400);
    expect((await get('/a/projects/')).status).toBe(404);
    expect((await get(`/a/changes/${change.number}/revisions/current/files/x`)).status).toBe(404);
    expect(gerrit.changeUrl(change.number)).toBe(`${gerrit.url}/c/${RUG}/+/${change.number}`);
    expect((await get(`/a/changes/${change.number}`)).status).toBe(200);
  });

  it('answers 404 for a Change-Id on several branches, as Gerrit does', async () => {
    const changeId = `I${'d'.repeat(40)}`;
    gerrit.createChange({ project: RUG, changeId });
    gerrit.createChange({ project: RUG, branch: 'stable/kilo', changeId });
    expect((await get(`/a/changes/${changeId}`)).status).toBe(404);
  });

  it('lists files of a revision by sha, number or current, with /COMMIT_MSG', async () => {
    const change = gerrit.createChange({ project: RUG, files: ['a.py'] });
    const ps2 = gerrit.addPatchset(change.number, { files: ['b.py', 'doc/c.rst'] });
    const rev1 = change.patchsets[0]!.revision;
    expect(Object.keys((await getJson(`/a/changes/${change.number}/revisions/${rev1}/files`)) as object)).toEqual([
      '/COMMIT_MSG',
      'a.py',
    ]);
    for (const rev of ['2', 'current', ps2.revision]) {
      expect(Object.keys((await getJson(`/a/changes/${change.number}/revisions/${rev}/files`)) as object)).toEqual([
        '/COMMIT_MSG',
        'b.py',
        'doc/c.rst',
      ]);
    }
    expect((await get(`/a/changes/${change.number}/revisions/3/files`)).status).toBe(404);
  });

  it('queries with status, project, branch and change operators, paging with n and S', async () => {
    for (let i = 0; i < 5; i++) gerrit.createChange({ project: i < 3 ? RUG : 'stackforge/akanda-neutron' });
    gerrit.setStatus(2, 'ABANDONED');
    const numbers = async (q: string, extra = '') =>
      ((await getJson(`/a/changes/?q=${encodeURIComponent(q)}${extra}`)) as { _number: number }[]).map(
        (c) => c._number,
      );

    expect(await numbers(`status:open project:${RUG}`)).toEqual([3, 1]);
    expect(await numbers('status:abandoned')).toEqual([2]);
    expect(await numbers(`change:${gerrit.change(4).changeId}`)).toEqual([4]);
    expect(await numbers('branch:master', '&n=2')).toEqual([5, 4]);
    expect(await numbers('branch:master', '&n=2&S=2')).toEqual([3, 2]);
    const page = (await getJson('/a/changes/?q=status:open&n=2')) as { _more_changes?: boolean }[];
    expect(page.map((c) => c._more_changes)).toEqual([undefined, true]);
    expect((await get('/a/changes/?q=owner:self')).status).toBe(400);
  });
});

describe('reviews', () => {
  it('records every review POST and answers 200 with the labels', async () => {
    const change = gerrit.createChange({ project: RUG });
    const rev = change.patchsets[0]!.revision;
    const input = { message: 'Build succeeded (check pipeline).', labels: { Verified: 1 }, tag: 'autogenerated:ci' };

    const answer = await post(reviewPath(change.number, rev), input);

    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text.slice(5))).toEqual({ labels: { Verified: 1 } });
    expect(gerrit.reviews).toEqual([
      {
        changeNumber: change.number,
        patchset: 1,
        revision: rev,
        changeLocator: String(change.number),
        input,
        status: 200,
        accepted: true,
      },
    ]);
  });

  it('answers like Gerrit for closed changes, bad labels, non-JSON and oversized bodies', async () => {
    const small = await GerritStandin.start({ username: 'ci', password: 'sekrit', maxBodyBytes: 100 });
    try {
      const change = gerrit.createChange({ project: RUG });
      const rev = change.patchsets[0]!.revision;
      const path = reviewPath(change.number, rev);
      expect((await post(path, { labels: { Verified: 2 } })).status).toBe(403);
      expect((await post(path, { labels: { Unknown: 1 } })).status).toBe(400);
      expect((await post(path, '[1]')).status).toBe(400);
      expect((await post(path, 'not json')).status).toBe(400);
      expect((await post(path, { labels: { Verified: 1 } }, 'text/plain')).status).toBe(415);
      gerrit.setStatus(change.number, 'ABANDONED');
      const closed = await post(path, { labels: { Verified: 1 } });
      expect([closed.status, closed.text.trim()]).toEqual([409, 'change is closed']);
      expect(gerrit.reviews).toEqual([]);
      expect(gerrit.reviewPosts.map((r) => r.status)).toEqual([403, 400, 409]);

      small.createChange({ project: RUG, number: 1 });
      const response = await fetch(`${small.url}/a/changes/1/revisions/current/review`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ message: 'x'.repeat(1000) }),
      }).catch(() => undefined);
      // Either the 413 arrives or the server hung up while the client was still sending.
      if (response) expect(response.status).toBe(413);
      expect(small.reviewPosts).toEqual([]);
    } finally {
      await small.close();
    }
  });

  it('answers the next N review POSTs with a scripted status, then accepts', async () => {
    const change = gerrit.createChange({ project: RUG });
    const path = reviewPath(change.number, change.patchsets[0]!.revision);
    gerrit.failNextReviews(2, 503);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(path, { labels: { Verified: -1 } })).status);
    expect(statuses).toEqual([503, 503, 200]);
    expect(gerrit.reviewPosts.map((r) => r.status)).toEqual([503, 503, 200]);
    expect(gerrit.reviews).toHaveLength(1);
  });

  it('answers review POSTs with a scripted status for a time window by its clock, reads unaffected', async () => {
    const change = gerrit.createChange({ project: RUG });
    const path = reviewPath(change.number, change.patchsets[0]!.revision);
    gerrit.failRequests({ status: 429, forMs: 60_000, retryAfterSeconds: 7 });

    const limited = await post(path, {});
    expect([limited.status, limited.headers.get('retry-after')]).toEqual([429, '7']);
    expect((await get(`/a/changes/${change.number}`)).status).toBe(200);
    clock += 59_999;
    expect((await post(path, {})).status).toBe(429);
    clock += 1;
    expect((await post(path, {})).status).toBe(200);
  });

  it('lists saved reviews as change messages, the way Gerrit words them', async () => {
    const change = gerrit.createChange({ project: RUG });
    await post(reviewPath(change.number, 'current'), {
      message: 'Build failed.',
      labels: { Verified: -1 },
      tag: 'autogenerated:ci',
    });
    await post(reviewPath(change.number, 'current'), { labels: { Verified: 2 } });
    const messages = (await getJson(`/a/changes/${change.number}/messages`)) as Record<string, unknown>[];
    expect(messages).toEqual([
      expect.objectContaining({
        tag: 'autogenerated:ci',
        message: 'Patch Set 1: Verified-1\n\nBuild failed.',
        _revision_number: 1,
        author: expect.objectContaining({ username: 'ci' }),
      }),
    ]);
    const info = (await getJson(`/a/changes/${change.number}?o=MESSAGES`)) as { messages: unknown[] };
    expect(info.messages).toEqual(messages);
  });

  it('can save a review and then lose the answer', async () => {
    const change = gerrit.createChange({ project: RUG });
    gerrit.failRequests({ status: 'reset', count: 1, afterApplying: true });
    gerrit.failRequests({ status: 502, count: 1, afterApplying: true });
    gerrit.failNextReviews(1, 503);
    await expect(post(reviewPath(change.number, 'current'), { labels: { Verified: 1 } })).rejects.toThrow();
    expect((await post(reviewPath(change.number, 'current'), { labels: { Verified: 1 } })).status).toBe(502);
    expect((await post(reviewPath(change.number, 'current'), { labels: { Verified: 1 } })).status).toBe(503);
    expect(gerrit.reviewPosts.map((r) => [r.status, r.accepted])).toEqual([
      ['reset', true],
      [502, true],
      [503, false],
    ]);
    expect(gerrit.reviews).toHaveLength(2);
    expect(gerrit.change(change.number).messages).toHaveLength(2);
  });

  it('can fail reads, reset connections and hang', async () => {
    const change = gerrit.createChange({ project: RUG });
    gerrit.failRequests({ status: 503, only: 'read', count: 1 });
    expect((await get(`/a/changes/${change.number}`)).status).toBe(503);
    expect((await get(`/a/changes/${change.number}`)).status).toBe(200);

    gerrit.failRequests({ status: 'reset', only: 'all', count: 1 });
    await expect(get(`/a/changes/${change.number}`)).rejects.toThrow();

    gerrit.failRequests({ status: 'hang', only: 'all', count: 1 });
    const before = gerrit.requests.length;
    const hung = get(`/a/changes/${change.number}`);
    const outcome = hung.then(
      () => 'answered',
      () => 'failed',
    );
    await gerrit.waitForRequests(before + 1);
    expect(gerrit.requests[gerrit.requests.length - 1]?.status).toBe('hang');
    await gerrit.close();
    expect(await outcome).toBe('failed');
  });

  it('waits for accepted reviews, per change, and explains a timeout', async () => {
    const a = gerrit.createChange({ project: RUG });
    const b = gerrit.createChange({ project: RUG });
    const waitingForB = gerrit.waitForReviews(1, { change: b.number });
    await post(reviewPath(a.number, 'current'), { labels: { Verified: 1 } });
    gerrit.failNextReviews(1);
    await post(reviewPath(b.number, 'current'), { labels: { Verified: 1 } });
    await post(reviewPath(b.number, 'current'), { labels: { Verified: -1 } });

    const reviews = await waitingForB;
    expect(reviews.map((r) => [r.changeNumber, r.input.labels])).toEqual([[b.number, { Verified: -1 }]]);

    await expect(gerrit.waitForReviews(3, { timeoutMs: 50 })).rejects.toThrow(
      `review POSTs seen: ${a.number},1: HTTP 200; ${b.number},1: HTTP 503; ${b.number},1: HTTP 200`,
    );
  });
});

describe('events', () => {
  const fixture = JSON.parse(
    readFileSync(join(__dirname, '..', 'fixtures', 'gerrit-events', 'webhook-patchset-created.json'), 'utf8'),
  ) as Record<string, Record<string, unknown>>;

  it('produces patchset-created in the shape of a real webhook delivery', () => {
    const change = gerrit.createChange({ project: RUG, number: 1234 });
    const ps2 = gerrit.addPatchset(1234);
    const event = gerrit.patchsetCreatedEvent(1234) as Record<string, Record<string, unknown>>;

    expect(Object.keys(event).sort()).toEqual(Object.keys(fixture).sort());
    expect(Object.keys(event.patchSet!).sort()).toEqual(Object.keys(fixture.patchSet!).sort());
    expect(Object.keys(event.change!).sort()).toEqual(Object.keys(fixture.change!).sort());
    expect(event).toMatchObject({
      type: 'patchset-created',
      change: { project: RUG, branch: 'master', id: change.changeId, number: 1234, status: 'NEW' },
      patchSet: { number: 2, revision: ps2.revision, ref: 'refs/changes/34/1234/2' },
      project: { name: RUG },
      changeKey: { key: change.changeId },
      eventCreatedOn: clock / 1000,
    });
    expect((gerrit.patchsetCreatedEvent(1234, 1).patchSet as { number: number }).number).toBe(1);
  });

  it('produces comment-added, change-merged, change-abandoned and ref-updated', () => {
    gerrit.createChange({ project: RUG, number: 9 });
    expect(gerrit.commentAddedEvent(9, 'recheck', [{ type: 'Workflow', value: '1', oldValue: '0' }])).toMatchObject({
      type: 'comment-added',
      comment: 'Patch Set 1:\n\nrecheck',
      approvals: [{ type: 'Workflow', description: 'Workflow', value: '1', oldValue: '0' }],
    });
    expect(gerrit.changeMergedEvent(9)).toMatchObject({ type: 'change-merged', change: { status: 'MERGED' } });
    expect(gerrit.change(9).status).toBe('MERGED');
    gerrit.createChange({ project: RUG, number: 10 });
    expect(gerrit.changeAbandonedEvent(10)).toMatchObject({
      type: 'change-abandoned',
      change: { status: 'ABANDONED' },
    });
    expect(gerrit.refUpdatedEvent(RUG, 'master', 'a'.repeat(40), 'b'.repeat(40))).toMatchObject({
      type: 'ref-updated',
      refUpdate: { refName: 'refs/heads/master', project: RUG, newRev: 'b'.repeat(40) },
    });
  });
});
