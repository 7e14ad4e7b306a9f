/**
 * The upload right the agent publishes with (docs/design.md "Node API", `/node/upload`): a fresh
 * presigned POST asked for after the job and before the first file goes up, retried through
 * transient failures, and the claim's POST as the fallback only when the API could not answer and
 * only while its policy has not expired; a refusal (401, 409) uploads nothing.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { PresignedUpload } from '../../lambda/node-agent/job-spec';
import { policyExpiresAt } from '../../lambda/node-agent/publish-logs';
import { startFakeImds } from './fake-imds';
import { jobSpec, RESULT_TOKEN, startAgent, startHarness, waitFor, type AgentRun, type Harness } from './harness';

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness.close();
});
beforeEach(() => {
  harness.api.calls.length = 0;
  harness.api.resultFailures = [];
  harness.api.heartbeatState = 'running';
});

/** An upload endpoint nothing should reach: counts requests and refuses them as S3 would. */
async function startRefusingS3(): Promise<{ url: string; requests: number; close(): Promise<void> }> {
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    req.resume();
    req.on('end', () => {
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/akanda-ci-logs`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The claim answers with `claimUpload(real)` in place of the real presigned POST. */
function replaceClaimUpload(transform: (upload: PresignedUpload) => PresignedUpload): void {
  const onClaim = harness.api.onClaim;
  harness.api.onClaim = (body) => {
    const reply = onClaim(body);
    const answer = reply.body as { upload?: PresignedUpload };
    if (answer.upload) answer.upload = transform(answer.upload);
    return reply;
  };
}

function expiredPolicy(upload: PresignedUpload, url: string): PresignedUpload {
  const policy = { expiration: '2020-01-01T00:00:00.000Z', conditions: [['starts-with', '$key', upload.keyPrefix]] };
  return {
    ...upload,
    url,
    fields: { ...upload.fields, Policy: Buffer.from(JSON.stringify(policy)).toString('base64') },
  };
}

async function finish(started: ReturnType<typeof startAgent>): Promise<AgentRun> {
  return { ...started, outcome: await started.outcome };
}

async function consoleLogOf(run: AgentRun): Promise<string | undefined> {
  return (await harness.logs.objects(run.keyPrefix)).get(`${run.keyPrefix}job-output.txt`)?.body.toString('utf8');
}

it('asks for a fresh upload after the job, before any file goes up, and publishes through it', async () => {
  const dead = await startRefusingS3();
  try {
    const started = startAgent(harness, jobSpec(harness, { run: 'echo hello' }));
    // The claim's POST has expired by the end of the job (its signing credentials are gone).
    replaceClaimUpload((upload) => ({ ...upload, url: dead.url }));
    const onUpload = harness.api.onUpload;
    let filesBeforeRequest = -1;
    harness.api.onUpload = async (body) => {
      filesBeforeRequest = (await harness.logs.objects(started.keyPrefix)).size;
      return onUpload(body);
    };
    const run = await finish(started);

    expect(run.outcome).toMatchObject({ result: 'SUCCESS', reported: true });
    expect(run.outcome.error).toBeUndefined();
    expect(harness.api.uploadRequests()).toEqual([{ buildId: run.buildId, resultToken: RESULT_TOKEN }]);
    expect(harness.api.calls.map((call) => call.path).filter((p) => p !== '/node/heartbeat')).toEqual([
      '/node/claim',
      '/node/upload',
      '/node/result',
    ]);
    expect(filesBeforeRequest).toBe(0);
    expect(dead.requests).toBe(0);
    expect(await consoleLogOf(run)).toContain('| hello\n');
    expect(run.logLines.join('\n')).not.toContain('using the one from the claim');
  } finally {
    await dead.close();
  }
});

it('retries the upload request through server errors', async () => {
  const dead = await startRefusingS3();
  try {
    const started = startAgent(harness, jobSpec(harness), { uploadRequestRetrySeconds: 5 });
    replaceClaimUpload((upload) => ({ ...upload, url: dead.url }));
    const onUpload = harness.api.onUpload;
    const failures = [503, 502];
    harness.api.onUpload = async (body) => {
      const status = failures.shift();
      return status === undefined ? onUpload(body) : { status };
    };
    const run = await finish(started);
    expect(run.outcome).toMatchObject({ result: 'SUCCESS', reported: true });
    expect(harness.api.uploadRequests()).toHaveLength(3);
    expect(dead.requests).toBe(0);
    expect(await consoleLogOf(run)).toBeDefined();
    expect(run.logLines.filter((line) => line.startsWith('upload request failed (POST '))).toHaveLength(2);
  } finally {
    await dead.close();
  }
});

it.each([
  [409, 'requeued after an interruption', { error: 'build is queued', state: 'queued' }],
  [401, 'relaunched with a new result token', { error: 'wrong token' }],
])(
  'uploads nothing when the upload request is refused with %i (%s), never falling back to the claim upload',
  async (status, _why, body) => {
    // The claim's POST still works: only the refusal may keep the agent from using it.
    const started = startAgent(harness, jobSpec(harness, { run: 'echo stale attempt' }), {
      uploadRequestRetrySeconds: 5,
    });
    harness.api.onUpload = () => ({ status, body });
    const run = await finish(started);
    const refusal =
      `not uploading the logs: the node API refused the upload (${status}); ` +
      'this attempt is over and its log prefix may belong to the next attempt';
    expect(run.outcome).toMatchObject({ result: 'ERROR', reported: true, error: refusal });
    expect(harness.api.uploadRequests()).toHaveLength(1);
    expect((await harness.logs.objects(run.keyPrefix)).size).toBe(0);
    expect(run.logLines).toContain(refusal);
    expect(run.logLines.join('\n')).not.toContain('using the one from the claim');
  },
);

it('ignores a fresh upload for another key prefix and uses the claim one', async () => {
  const started = startAgent(harness, jobSpec(harness));
  const other = 'logs/99/9999/1/check/pep8/0000000/';
  harness.api.onUpload = async () => ({ status: 200, body: { upload: await harness.logs.presign(other) } });
  const run = await finish(started);
  expect(run.outcome).toMatchObject({ result: 'SUCCESS', reported: true });
  expect((await harness.logs.objects(other)).size).toBe(0);
  expect(await consoleLogOf(run)).toBeDefined();
  expect(run.logLines).toContain(
    'no fresh upload (the fresh upload is for another key prefix); using the one from the claim',
  );
});

it('reports ERROR without trying when there is no fresh upload and the claim one has expired', async () => {
  const dead = await startRefusingS3();
  try {
    const started = startAgent(harness, jobSpec(harness), { uploadRequestRetrySeconds: 1 });
    replaceClaimUpload((upload) => expiredPolicy(upload, dead.url));
    harness.api.onUpload = () => ({ status: 503 });
    const run = await finish(started);
    expect(run.outcome).toMatchObject({ result: 'ERROR', reported: true });
    expect(run.outcome.error).toMatch(
      /^no upload right: no fresh one \(POST .* answered 503\) and the claim's expired at 2020-01-01T00:00:00.000Z$/,
    );
    expect(harness.api.results().map((body) => body.result)).toEqual(['ERROR']);
    expect(harness.api.uploadRequests().length).toBeGreaterThan(1);
    expect(dead.requests).toBe(0);
  } finally {
    await dead.close();
  }
});

it('after a spot notice asks only briefly, then publishes with the claim upload and reports INTERRUPTED', async () => {
  const imds = await startFakeImds({});
  try {
    const started = startAgent(
      harness,
      jobSpec(harness, { run: 'echo working; touch "$AKANDA_CI_LOG_DIR/started"; sleep 300' }),
      // A long budget for the normal path: the interrupted path must not use it (the test would time out).
      {
        imdsUrl: imds.url,
        interruptionPollSeconds: 0.05,
        uploadRequestRetrySeconds: 3600,
        interruptedUploadRequestSeconds: 1,
      },
    );
    harness.api.onUpload = () => ({ status: 503 });
    await waitFor(() => started.workDir !== '' && existsSync(path.join(started.workDir, 'logs', 'started')));
    imds.interrupt();
    const run = await finish(started);
    expect(run.outcome).toMatchObject({ result: 'INTERRUPTED', reported: true });
    expect(harness.api.uploadRequests().length).toBeGreaterThan(0);
    expect(await consoleLogOf(run)).toContain('| working\n');
    expect(run.logLines).toContainEqual(expect.stringMatching(/answered 503\); using the one from the claim$/));
  } finally {
    await imds.close();
  }
});

it('reads the expiry of a presigned POST from its policy, and nothing from a missing or broken one', async () => {
  const upload = await harness.logs.presign('logs/00/100/1/check/pep8/abcdef0/');
  const expiresAt = policyExpiresAt(upload);
  expect(expiresAt).toBeGreaterThan(Date.now());
  expect(expiresAt).toBeLessThanOrEqual(Date.now() + 600 * 1000);
  expect(policyExpiresAt(expiredPolicy(upload, upload.url))).toBe(Date.parse('2020-01-01T00:00:00.000Z'));
  expect(policyExpiresAt({ ...upload, fields: {} })).toBeUndefined();
  expect(policyExpiresAt({ ...upload, fields: { Policy: 'not base64 json' } })).toBeUndefined();
});
