/**
 * `POST /node/upload` over the store on dynalite: a fresh presigned POST for the build's logs,
 * only for the node holding the current attempt's result token, only while the build runs or just
 * after it ended, and only for the build's own key prefix (the POST policy is decoded and checked).
 * The presigned POSTs are real ones (createLogArtifacts); signing needs no S3 server.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { createLogArtifacts } from '../../lambda/adapters/artifacts';
import { FRESH_UPLOAD_SECONDS, handleNodeRequest, UPLOAD_AFTER_FINISH_SECONDS } from '../../lambda/control/node-api';
import type { BuildRecord } from '../../lambda/control/records';
import { type Emulator, startDynalite } from '../../lambda/local/emulators';
import { GerritStandin } from '../support/gerrit-standin';
import { controlHarness, LaunchOnlyFleet, PROJECT } from './harness';

const TOKEN = 'node-upload-test-webhook-token';
const BUCKET = 'akanda-ci-logs';

interface PostPolicy {
  expiration: string;
  conditions: unknown[];
}

function decodePolicy(fields: Record<string, string>): PostPolicy {
  expect(typeof fields.Policy).toBe('string');
  return JSON.parse(Buffer.from(fields.Policy!, 'base64').toString('utf8')) as PostPolicy;
}

let dynamo: Emulator;
let gerrit: GerritStandin;
let s3: S3Client;
let clock = 3_000_000;

beforeAll(async () => {
  dynamo = await startDynalite();
  gerrit = await GerritStandin.start();
  // Never contacted: presigning is local computation.
  s3 = new S3Client({
    endpoint: 'http://127.0.0.1:9',
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIDNODEUPLOADTEST', secretAccessKey: 'node-upload-test-secret' },
  });
});

afterAll(async () => {
  s3.destroy();
  await gerrit.close();
  await dynamo.close();
});

/** One check buildset with one build, launched: the test plays its nodes. */
async function launchedBuild() {
  const { store, ports, fleet, drain, ingest, buildOf } = await controlHarness({
    dynamo,
    gerrit,
    table: 'node-upload',
    webhookToken: TOKEN,
    now: () => clock,
    fleet: new LaunchOnlyFleet(),
    config: {
      jobs: [{ name: 'pep8', node: 'small', run: 'tox -e pep8', timeout: '10m' }],
      projects: [{ name: PROJECT, check: ['pep8'] }],
      limits: { maxConcurrentNodes: 5, maxAttempts: 3, timeoutGrace: '1m' },
    },
    ports: { artifacts: createLogArtifacts({ client: s3, bucket: BUCKET, publicBaseUrl: 'https://logs.example' }) },
  });
  const change = gerrit.createChange({ project: PROJECT });
  clock += 1;
  const buildsetId = await ingest(gerrit.patchsetCreatedEvent(change.number));
  await drain();
  const { buildId } = await buildOf(buildsetId);
  const build = async () => (await store.getBuild<BuildRecord>(buildId))!;
  /** Claims the latest launch; resolves to its result token. */
  const claimLatest = async () => {
    const claimToken = fleet.launches.at(-1)!.claimToken;
    const claim = await handleNodeRequest(ports, '/node/claim', { buildId, claimToken });
    expect(claim.status).toBe(200);
    return { claimToken, resultToken: claim.body.resultToken as string };
  };
  const upload = (body: Record<string, unknown>) => handleNodeRequest(ports, '/node/upload', { buildId, ...body });
  return { store, ports, fleet, drain, buildId, build, claimLatest, upload };
}

it('gives the running node a fresh POST limited to its build prefix, short-lived; refuses wrong and used tokens', async () => {
  const t = await launchedBuild();
  const { claimToken, resultToken } = await t.claimLatest();
  const prefix = (await t.build()).logKeyPrefix;
  expect(prefix).toMatch(/^logs\/\d\d\/\d+\/1\/check\/pep8\/[0-9a-f]{7}\/$/);

  expect((await t.upload({ resultToken: 'not-the-token' })).status).toBe(401);
  expect((await t.upload({ resultToken: claimToken })).status).toBe(401); // the claim token, already used
  expect((await t.upload({})).status).toBe(401);
  const unknown = await handleNodeRequest(t.ports, '/node/upload', { buildId: 'ab'.repeat(16), resultToken });
  expect(unknown).toEqual({ status: 401, body: { error: 'wrong result token' } }); // nothing to probe
  expect((await handleNodeRequest(t.ports, '/node/upload', { buildId: '../x', resultToken })).status).toBe(400);

  const signedAt = Date.now();
  const fresh = await t.upload({ resultToken });
  expect(fresh.status).toBe(200);
  const upload = fresh.body.upload as {
    url: string;
    fields: Record<string, string>;
    keyPrefix: string;
    publicUrl: string;
  };
  expect(upload.keyPrefix).toBe(prefix);
  expect(upload.publicUrl).toBe(`https://logs.example/${prefix}`);
  const policy = decodePolicy(upload.fields);
  expect(policy.conditions).toEqual(
    expect.arrayContaining([
      { bucket: BUCKET },
      ['starts-with', '$key', prefix],
      ['content-length-range', 0, 2 * 1024 * 1024 * 1024],
      ['starts-with', '$Content-Type', ''],
      ['starts-with', '$Content-Encoding', ''],
    ]),
  );
  // No other key condition could widen the prefix.
  const keyConditions = policy.conditions.filter((c) => JSON.stringify(c).includes('$key'));
  expect(keyConditions).toEqual([['starts-with', '$key', prefix]]);
  // Expiry: FRESH_UPLOAD_SECONDS from signing (30 minutes), not the job's timeout plus an hour as at claim.
  const lifetime = (Date.parse(policy.expiration) - signedAt) / 1000;
  expect(FRESH_UPLOAD_SECONDS).toBe(30 * 60);
  expect(lifetime).toBeGreaterThan(FRESH_UPLOAD_SECONDS - 60);
  expect(lifetime).toBeLessThanOrEqual(FRESH_UPLOAD_SECONDS + 1);
  t.store.destroy();
});

it('serves the node that just finished the build, for a while, and no longer', async () => {
  const t = await launchedBuild();
  const { resultToken } = await t.claimLatest();
  const result = await handleNodeRequest(t.ports, '/node/result', {
    buildId: t.buildId,
    resultToken,
    result: 'FAILURE',
    elapsedSeconds: 90,
  });
  expect(result.status).toBe(200);
  expect((await t.build()).state).toBe('failed');
  expect((await t.upload({ resultToken })).status).toBe(200);
  clock += UPLOAD_AFTER_FINISH_SECONDS;
  expect((await t.upload({ resultToken })).status).toBe(200);
  clock += 1;
  expect(await t.upload({ resultToken })).toEqual({
    status: 409,
    body: { error: 'build is failed', state: 'failed' },
  });
  t.store.destroy();
});

it('refuses an interrupted attempt once the build is requeued, and the build another node finished', async () => {
  const t = await launchedBuild();
  const first = await t.claimLatest();
  const interrupted = await handleNodeRequest(t.ports, '/node/result', {
    buildId: t.buildId,
    resultToken: first.resultToken,
    result: 'INTERRUPTED',
  });
  expect(interrupted.status).toBe(200);
  expect((await t.build()).state).toBe('queued');
  // Still this attempt's token, but the attempt is over and the next one's logs take its place.
  expect(await t.upload({ resultToken: first.resultToken })).toEqual({
    status: 409,
    body: { error: 'build is queued', state: 'queued' },
  });

  await t.drain(); // relaunch
  expect(t.fleet.launches).toHaveLength(2);
  expect((await t.upload({ resultToken: first.resultToken })).status).toBe(401);
  const second = await t.claimLatest();
  expect((await t.upload({ resultToken: second.resultToken })).status).toBe(200);
  expect((await t.upload({ resultToken: first.resultToken })).status).toBe(401);
  const done = await handleNodeRequest(t.ports, '/node/result', {
    buildId: t.buildId,
    resultToken: second.resultToken,
    result: 'SUCCESS',
  });
  expect(done.status).toBe(200);
  expect((await t.build()).state).toBe('succeeded');
  expect((await t.upload({ resultToken: first.resultToken })).status).toBe(401);
  expect((await t.upload({ resultToken: second.resultToken })).status).toBe(200);
  t.store.destroy();
});
