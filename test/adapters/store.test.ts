import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  FIRST_SWEEP_AFTER_SECONDS,
  hashToken,
  newToken,
  Store,
  type StoredBuild,
  type StoredBuildset,
  tokenMatches,
} from '../../lambda/adapters/store';
import { canonicalEventKey } from '../../lambda/control/event-key';
import {
  type Emulator,
  ensureTable,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  startDynalite,
} from '../../lambda/local/emulators';

interface Build extends StoredBuild {
  jobName: string;
}
interface Buildset extends StoredBuildset {
  state: string;
}

let dynamo: Emulator;
let store: Store;

beforeAll(async () => {
  dynamo = await startDynalite();
  await ensureTable(dynamo.endpoint, 'akanda-ci');
  store = new Store('akanda-ci', { endpoint: dynamo.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
});

afterAll(async () => {
  store.destroy();
  await dynamo.close();
});

function build(id: string, createdAt: number, state: Build['state'] = 'queued'): Build {
  return { buildId: id, buildsetId: 'bs1', state, createdAt, version: 0, jobName: 'pep8' };
}

describe('event dedupe', () => {
  it('accepts an event key once', async () => {
    expect(await store.eventSeen('k1')).toBe(false);
    expect(await store.recordEvent('k1', ['bs1'], 1000)).toBe(true);
    expect(await store.eventSeen('k1')).toBe(true);
    expect(await store.recordEvent('k1', ['bs2'], 2000)).toBe(false);
    expect(await store.recordEvent('k2', [], 2000)).toBe(true);
  });

  it('gives the webhook and the SSH shape of one event the same key, and two rechecks different keys', () => {
    const webhook = {
      type: 'patchset-created',
      project: { name: 'p' },
      change: { project: 'p', branch: 'master', number: 654 },
      patchSet: { number: 2, revision: 'a'.repeat(40) },
      eventCreatedOn: 1,
    };
    const ssh = {
      type: 'patchset-created',
      project: 'p',
      change: { project: 'p', branch: 'master', number: '654' },
      patchSet: { number: '2', revision: 'a'.repeat(40) },
      eventCreatedOn: 2,
    };
    expect(canonicalEventKey(webhook)).toBe(canonicalEventKey(ssh));
    const recheck = (at: number) => ({ ...webhook, type: 'comment-added', comment: 'recheck', eventCreatedOn: at });
    expect(canonicalEventKey(recheck(5))).not.toBe(canonicalEventKey(recheck(6)));
    expect(canonicalEventKey(recheck(5))).toBe(canonicalEventKey(recheck(5)));
    expect(canonicalEventKey(null)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('versioned builds', () => {
  it('lets exactly one of two writers holding the same version win', async () => {
    const b = build('b-race', 10);
    expect(await store.putBuild(b)).toBe(true);
    expect(await store.putBuild(b)).toBe(false); // create-if-absent
    const read = await store.getBuild<Build>('b-race');
    expect(read).toEqual(b);
    const first = store.putBuild({ ...read!, state: 'launching', version: 1 });
    const second = store.putBuild({ ...read!, state: 'cancelled', finishedAt: 20, version: 1 });
    const outcomes = await Promise.all([first, second]);
    expect(outcomes.filter(Boolean)).toHaveLength(1);
    const after = await store.getBuild<Build>('b-race');
    expect(after?.version).toBe(1);
    expect(['launching', 'cancelled']).toContain(after?.state);
  });

  it('lists queued builds first-in first-out and drops terminal ones from the index', async () => {
    await store.putBuild(build('fifo-c', 300));
    await store.putBuild(build('fifo-a', 100));
    await store.putBuild(build('fifo-b', 200));
    const queued = await store.buildsInState<Build>('queued');
    const ids = queued.map((b) => b.buildId).filter((id) => id.startsWith('fifo-'));
    expect(ids).toEqual(['fifo-a', 'fifo-b', 'fifo-c']);
    expect((await store.buildsInState<Build>('queued', 1))[0]?.createdAt).toBeLessThanOrEqual(100);

    const a = (await store.getBuild<Build>('fifo-a'))!;
    expect(await store.putBuild({ ...a, state: 'running', version: a.version + 1 })).toBe(true);
    expect(await store.countBuildsInState('running')).toBe(1);
    const running = (await store.getBuild<Build>('fifo-a'))!;
    expect(
      await store.putBuild({ ...running, state: 'succeeded', finishedAt: 400, version: running.version + 1 }),
    ).toBe(true);
    expect(await store.countBuildsInState('running')).toBe(0);
    expect((await store.getBuilds<Build>(['fifo-a', 'missing', 'fifo-b'])).map((b) => [b.buildId, b.state])).toEqual([
      ['fifo-a', 'succeeded'],
      ['fifo-b', 'queued'],
    ]);
  });
});

describe('buildsets', () => {
  it('finds the buildsets of a change, oldest first, and writes them conditionally', async () => {
    const bs = (id: string, createdAt: number): Buildset => ({
      buildsetId: id,
      project: 'stackforge/akanda-rug',
      change: 42,
      createdAt,
      version: 0,
      state: 'pending',
    });
    expect(await store.putBuildset(bs('bs-new', 20))).toBe(true);
    expect(await store.putBuildset(bs('bs-old', 10))).toBe(true);
    expect(await store.putBuildset(bs('bs-old', 10))).toBe(false);
    const found = await store.buildsetsOfChange<Buildset>('stackforge/akanda-rug', 42);
    expect(found.map((b) => b.buildsetId)).toEqual(['bs-old', 'bs-new']);
    const old = (await store.getBuildset<Buildset>('bs-old'))!;
    expect(await store.putBuildset({ ...old, state: 'cancelled', version: 1 })).toBe(true);
    expect(await store.putBuildset({ ...old, state: 'reported', version: 1 })).toBe(false);
    expect((await store.getBuildset<Buildset>('bs-old'))?.state).toBe('cancelled');
  });

  it('keeps a sweep marker per open buildset, due oldest first, found without a scan and dropped on close', async () => {
    await ensureTable(dynamo.endpoint, 'akanda-ci-sweep');
    const sweeps = new Store('akanda-ci-sweep', {
      endpoint: dynamo.endpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    });
    const bs = (id: string, createdAt: number): Buildset => ({
      buildsetId: id,
      project: 'stackforge/akanda-appliance',
      createdAt,
      version: 0,
      state: 'pending',
    });
    for (const [id, at] of [
      ['post-b', 200],
      ['post-a', 100],
      ['post-c', 300],
    ] as const) {
      expect(await sweeps.putBuildset(bs(id, at))).toBe(true);
    }
    // A redelivered create neither wins nor moves the marker.
    expect(await sweeps.putBuildset(bs('post-a', 250))).toBe(false);
    expect(await sweeps.dueBuildsetSweeps(100 + FIRST_SWEEP_AFTER_SECONDS - 1, 10)).toEqual([]);
    expect(await sweeps.dueBuildsetSweeps(200 + FIRST_SWEEP_AFTER_SECONDS, 10)).toEqual([
      { buildsetId: 'post-a', dueAt: 100 + FIRST_SWEEP_AFTER_SECONDS, nudges: 0 },
      { buildsetId: 'post-b', dueAt: 200 + FIRST_SWEEP_AFTER_SECONDS, nudges: 0 },
    ]);
    const later = 10_000;
    expect((await sweeps.dueBuildsetSweeps(later, 2)).map((s) => s.buildsetId)).toEqual(['post-a', 'post-b']);

    await sweeps.putBuildsetSweep({ buildsetId: 'post-a', dueAt: later + 60, nudges: 1 });
    const b = (await sweeps.getBuildset<Buildset>('post-b'))!;
    expect(await sweeps.putBuildset({ ...b, state: 'scheduled', version: 1 })).toBe(true);
    const c = (await sweeps.getBuildset<Buildset>('post-c'))!;
    expect(await sweeps.putBuildset({ ...c, state: 'reported', closedAt: 400, version: 1 })).toBe(true);
    expect(await sweeps.dueBuildsetSweeps(later + 60, 10)).toEqual([
      { buildsetId: 'post-b', dueAt: 200 + FIRST_SWEEP_AFTER_SECONDS, nudges: 0 },
      { buildsetId: 'post-a', dueAt: later + 60, nudges: 1 },
    ]);
    await sweeps.deleteBuildsetSweep('post-b');
    expect((await sweeps.dueBuildsetSweeps(later + 60, 10)).map((s) => s.buildsetId)).toEqual(['post-a']);
    // The buildset items themselves are untouched by their markers.
    expect((await sweeps.getBuildset<Buildset>('post-c'))?.state).toBe('reported');
    sweeps.destroy();
  });
});

describe('retried writes', () => {
  /** Applies a PutItem, then loses the answer the way a reset keep-alive connection does; the SDK retries. */
  class LostAnswers extends NodeHttpHandler {
    lose = 0;
    override async handle(...args: Parameters<NodeHttpHandler['handle']>) {
      const [request] = args;
      const response = await super.handle(...args);
      if (this.lose > 0 && String(request.headers['x-amz-target']).endsWith('.PutItem')) {
        this.lose--;
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      }
      return response;
    }
  }

  it('counts a conditional write whose answer was lost and whose retry met our own write as won', async () => {
    const handler = new LostAnswers();
    const flaky = new Store('akanda-ci', {
      endpoint: dynamo.endpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      requestHandler: handler,
    });
    handler.lose = 1;
    expect(await flaky.putBuild(build('b-lost', 1))).toBe(true);
    handler.lose = 1;
    expect(await flaky.putBuild({ ...build('b-lost', 1), state: 'launching', version: 1 })).toBe(true);
    expect(handler.lose).toBe(0);
    expect(await flaky.getBuild<Build>('b-lost')).toEqual({ ...build('b-lost', 1), state: 'launching', version: 1 });
    // Someone else's write still makes ours lose.
    expect(await flaky.putBuild({ ...build('b-lost', 1), state: 'cancelled', version: 1 })).toBe(false);
    handler.lose = 1;
    expect(await flaky.recordEvent('lost-event', [], 1)).toBe(true);
    expect(await flaky.recordEvent('lost-event', [], 1)).toBe(false);
    flaky.destroy();
  });
});

describe('instances', () => {
  it('remembers the build a node was launched for', async () => {
    expect(await store.buildOfInstance('i-0123456789abcdef0')).toBeUndefined();
    await store.recordInstance('i-0123456789abcdef0', 'b-1', 100);
    expect(await store.buildOfInstance('i-0123456789abcdef0')).toBe('b-1');
  });
});

describe('leases', () => {
  it('gives a lease to one holder until it is released or expires', async () => {
    expect(await store.acquireLease('launch', 'a', 100, 30)).toBe(true);
    expect(await store.acquireLease('launch', 'b', 110, 30)).toBe(false);
    await store.releaseLease('launch', 'b'); // not b's to release
    expect(await store.acquireLease('launch', 'b', 120, 30)).toBe(false);
    await store.releaseLease('launch', 'a');
    expect(await store.acquireLease('launch', 'b', 121, 30)).toBe(true);
    expect(await store.acquireLease('launch', 'c', 152, 30)).toBe(true); // b's lease ran out at 151
  });
});

describe('tokens', () => {
  it('matches only the token whose hash is stored', () => {
    const token = newToken();
    const stored = hashToken(token);
    expect(stored).not.toContain(token);
    expect(tokenMatches(token, stored)).toBe(true);
    expect(tokenMatches(newToken(), stored)).toBe(false);
    expect(tokenMatches('', stored)).toBe(false);
    expect(tokenMatches(42, stored)).toBe(false);
    expect(tokenMatches(token, undefined)).toBe(false);
  });
});
