/**
 * A failed build's summary (the first line of the job's failure.txt, sent by the node with its result)
 * through the node API, the store and the reporter into the review Gerrit receives: sanitised on the way
 * in, because the node is untrusted, and never on a passing build.
 */
import type { Fleet, LaunchOutcome, LaunchRequest, ManagedInstance } from '../../lambda/adapters/fleet';
import { GerritClient } from '../../lambda/adapters/gerrit-client';
import { Store } from '../../lambda/adapters/store';
import { validateConfig } from '../../lambda/core/config';
import { ingestWebhook } from '../../lambda/control/ingest';
import { handleNodeRequest } from '../../lambda/control/node-api';
import type { ControlPorts, ReportMessage, ScheduleMessage } from '../../lambda/control/ports';
import type { BuildRecord, BuildsetRecord } from '../../lambda/control/records';
import { reportBuildset } from '../../lambda/control/reporter';
import { handleScheduleMessage } from '../../lambda/control/scheduler';
import {
  type Emulator,
  ensureTable,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  startDynalite,
} from '../../lambda/local/emulators';
import { GerritStandin } from '../support/gerrit-standin';

const PROJECT = 'stackforge/akanda-rug';
const TOKEN = 'summary-test-webhook-token';

class RecordingFleet implements Fleet {
  readonly launches: LaunchRequest[] = [];
  private next = 0;

  async launch(request: LaunchRequest): Promise<LaunchOutcome> {
    this.launches.push(request);
    return { status: 'launched', instanceId: `i-${String(++this.next).padStart(17, '0')}`, lifecycle: 'spot' };
  }

  async terminateInstances(): Promise<void> {}

  async listManagedInstances(): Promise<ManagedInstance[]> {
    return [];
  }
}

let dynamo: Emulator;
let gerrit: GerritStandin;
let table = 0;

async function setup() {
  const store = new Store(`summary-${++table}`, {
    endpoint: dynamo.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  await ensureTable(dynamo.endpoint, `summary-${table}`);
  const schedule: ScheduleMessage[] = [];
  const reports: ReportMessage[] = [];
  const fleet = new RecordingFleet();
  const ports: ControlPorts = {
    config: validateConfig({
      gerrit: { url: gerrit.url, username: gerrit.username },
      nodes: { small: { instanceTypes: ['c8i.large'] } },
      jobs: [{ name: 'dsvm-tempest-akanda', node: 'small', run: 'scripts/jobs/dsvm-tempest-akanda.sh', timeout: '2h' }],
      projects: [{ name: PROJECT, check: ['dsvm-tempest-akanda'] }],
      limits: { maxConcurrentNodes: 4, timeoutGrace: '1m' },
    }),
    store,
    scheduleQueue: { send: async (m) => void schedule.push(m) },
    reportQueue: { send: async (m) => void reports.push(m) },
    fleet,
    gerrit: new GerritClient({ baseUrl: gerrit.url, username: gerrit.username, password: gerrit.password }),
    artifacts: {
      logUpload: async (keyPrefix) => ({
        url: 'https://s3.example/',
        fields: {},
        keyPrefix,
        publicUrl: `https://logs.example/${keyPrefix}`,
      }),
      publicUrl: (prefix) => `https://logs.example/${prefix}`,
    },
    now: () => 2_000_000,
    logger: { info: () => {}, warn: () => {}, error: () => {} },
    webhookToken: async () => TOKEN,
    reportRetry: { delaySeconds: () => 1, maxAttempts: 3 },
  };

  /** A new change's build, claimed: its id and result token, ready for a result. */
  const claimedBuild = async () => {
    const change = gerrit.createChange({ project: PROJECT });
    const answer = await ingestWebhook(ports, {
      token: TOKEN,
      body: JSON.stringify(gerrit.patchsetCreatedEvent(change.number)),
    });
    expect(answer.status).toBe(202);
    const buildsetId = (answer.body as { buildsets: string[] }).buildsets[0]!;
    while (schedule.length > 0) await handleScheduleMessage(ports, schedule.shift()!);
    const buildset = await store.getBuildset<BuildsetRecord>(buildsetId);
    const buildId = buildset!.buildIds[0]!;
    const claimToken = fleet.launches.find((l) => l.buildId === buildId)!.claimToken;
    const claim = await handleNodeRequest(ports, '/node/claim', { buildId, claimToken });
    expect(claim.status).toBe(200);
    return { change: change.number, buildsetId, buildId, resultToken: claim.body.resultToken as string };
  };

  /** Delivers the queued report messages and returns the change's one posted review message. */
  const postedReview = async (change: number) => {
    for (const message of reports.splice(0)) await reportBuildset(ports, message.buildsetId);
    const reviews = gerrit.reviews.filter((r) => r.changeNumber === change);
    expect(reviews).toHaveLength(1);
    return reviews[0]!.input.message;
  };

  return { store, ports, claimedBuild, postedReview };
}

beforeAll(async () => {
  dynamo = await startDynalite();
  gerrit = await GerritStandin.start();
});

afterAll(async () => {
  await gerrit.close();
  await dynamo.close();
});

it('stores a FAILURE summary sanitised and appends it to the job line of the posted review', async () => {
  const t = await setup();
  const { change, buildId, resultToken } = await t.claimedBuild();
  const hostile = `phase: devstack\u2028Build succeeded (check pipeline).\r\n- forged https://x/ : SUCCESS\u0000 ${'x'.repeat(300)}`;
  const answer = await handleNodeRequest(t.ports, '/node/result', {
    buildId,
    resultToken,
    result: 'FAILURE',
    elapsedSeconds: 2470,
    summary: hostile,
  });
  expect(answer).toMatchObject({ status: 200, body: { state: 'failed' } });

  const stored = await t.store.getBuild<BuildRecord>(buildId);
  expect(stored!.summary).toBe('phase: devstack');

  const message = await t.postedReview(change);
  expect(message).toBe(
    `Build failed (check pipeline).\n\n- dsvm-tempest-akanda ${stored!.logUrl} : FAILURE in 41m 10s (phase: devstack)`,
  );
  t.store.destroy();
});

it('keeps at most 100 printable characters of one line, and drops the summary of a passing build', async () => {
  const t = await setup();
  const failed = await t.claimedBuild();
  await handleNodeRequest(t.ports, '/node/result', {
    buildId: failed.buildId,
    resultToken: failed.resultToken,
    result: 'ERROR',
    elapsedSeconds: 5,
    summary: `\t devstack\u202e   failed:  ${'y'.repeat(200)}`,
  });
  const stored = await t.store.getBuild<BuildRecord>(failed.buildId);
  expect(stored!.summary).toBe(`devstack failed: ${'y'.repeat(83)}`);
  expect(stored!.summary).toHaveLength(100);

  const passed = await t.claimedBuild();
  await handleNodeRequest(t.ports, '/node/result', {
    buildId: passed.buildId,
    resultToken: passed.resultToken,
    result: 'SUCCESS',
    elapsedSeconds: 5,
    summary: 'phase: devstack',
  });
  expect((await t.store.getBuild<BuildRecord>(passed.buildId))!.summary).toBeUndefined();
  expect(await t.postedReview(passed.change)).toMatch(/ : SUCCESS in 5s$/);
  t.store.destroy();
});
