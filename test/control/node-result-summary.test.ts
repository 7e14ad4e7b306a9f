/**
 * A failed build's summary (the first line of the job's failure.txt, sent by the node with its result)
 * through the node API, the store and the reporter into the review Gerrit receives: sanitised on the way
 * in, because the node is untrusted, and never on a passing build.
 */
import { handleNodeRequest } from '../../lambda/control/node-api';
import type { BuildRecord, BuildsetRecord } from '../../lambda/control/records';
import { reportBuildset } from '../../lambda/control/reporter';
import { type Emulator, startDynalite } from '../../lambda/local/emulators';
import { GerritStandin } from '../support/gerrit-standin';
import { claimLatest, controlHarness, LaunchOnlyFleet, PROJECT } from './harness';

const TOKEN = 'summary-test-webhook-token';

let dynamo: Emulator;
let gerrit: GerritStandin;

async function setup() {
  const { store, ports, fleet, reports, drain, ingest } = await controlHarness({
    dynamo,
    gerrit,
    table: 'summary',
    webhookToken: TOKEN,
    now: () => 2_000_000,
    fleet: new LaunchOnlyFleet(),
    config: {
      jobs: [{ name: 'dsvm-tempest-akanda', node: 'small', run: 'scripts/jobs/dsvm-tempest-akanda.sh', timeout: '2h' }],
      projects: [{ name: PROJECT, check: ['dsvm-tempest-akanda'] }],
      limits: { maxConcurrentNodes: 4, timeoutGrace: '1m' },
    },
  });

  /** A new change's build, claimed: its id and result token, ready for a result. */
  const claimedBuild = async () => {
    const change = gerrit.createChange({ project: PROJECT });
    const buildsetId = await ingest(gerrit.patchsetCreatedEvent(change.number));
    await drain();
    const buildset = await store.getBuildset<BuildsetRecord>(buildsetId);
    const buildId = buildset!.buildIds[0]!;
    const resultToken = await claimLatest(ports, fleet, buildId);
    return { change: change.number, buildsetId, buildId, resultToken };
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
