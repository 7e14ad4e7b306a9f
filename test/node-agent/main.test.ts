import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeImds, type FakeImds } from './fake-imds';
import {
  CLAIM_TOKEN,
  jobSpec,
  keyPrefixFor,
  processAlive,
  RESULT_TOKEN,
  startHarness,
  waitFor,
  type Harness,
} from './harness';

const MAIN = path.resolve(__dirname, '../../lambda/node-agent/main.ts');

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The agent as the local fleet and the user data start it: a real child process. */
function runMain(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Exit> {
  return startMain(args, env).exit;
}

function startMain(args: string[], env: NodeJS.ProcessEnv = process.env): { pid: number; exit: Promise<Exit> } {
  let pid = 0;
  const exit = new Promise<Exit>((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { env }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
    pid = child.pid ?? 0;
  });
  return { pid, exit };
}

let harness: Harness;
let workDir: string;

beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness.close();
});
beforeEach(async () => {
  harness.api.calls.length = 0;
  workDir = await mkdtemp(path.join(tmpdir(), 'akanda-ci-main-'));
});
afterEach(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** Makes the node API answer the claim for `job`, and the upload request after it (a refusal uploads nothing). */
async function serveClaim(job: Record<string, unknown>): Promise<string> {
  const buildId = String(job.buildId);
  const upload = await harness.logs.presign(keyPrefixFor(buildId));
  harness.api.onClaim = (body) =>
    body.buildId === buildId && body.claimToken === CLAIM_TOKEN
      ? { status: 200, body: { job, upload, resultToken: RESULT_TOKEN } }
      : { status: 401, body: { error: 'wrong claim token' } };
  harness.api.onUpload = async (body) =>
    body.buildId === buildId && body.resultToken === RESULT_TOKEN
      ? { status: 200, body: { upload: await harness.logs.presign(keyPrefixFor(buildId)) } }
      : { status: 401, body: { error: 'wrong result token' } };
  return buildId;
}

describe('node-agent command line', () => {
  it('local mode: runs the build from its arguments, the claim token from the environment, and exits 0', async () => {
    const buildId = await serveClaim(jobSpec(harness, { run: 'echo local-mode' }));
    const exit = await runMain(['--api-url', harness.api.url, '--build-id', buildId, '--work-dir', workDir], {
      ...process.env,
      AKANDA_CI_CLAIM_TOKEN: CLAIM_TOKEN,
    });
    expect(exit.code).toBe(0);
    expect(harness.api.results()).toEqual([
      { buildId, resultToken: RESULT_TOKEN, result: 'SUCCESS', elapsedSeconds: expect.any(Number) },
    ]);
    const objects = await harness.logs.objects(keyPrefixFor(buildId));
    expect(objects.get(`${keyPrefixFor(buildId)}job-output.txt`)?.body.toString('utf8')).toContain('| local-mode\n');
    expect(exit.stderr).not.toContain(CLAIM_TOKEN);
    expect(exit.stderr).not.toContain(RESULT_TOKEN);
  });

  it('local mode: exits 1 with a clear line when the claim is refused', async () => {
    const buildId = await serveClaim(jobSpec(harness));
    const exit = await runMain([
      '--api-url',
      harness.api.url,
      '--build-id',
      buildId,
      '--claim-token',
      'not-the-token',
      '--work-dir',
      workDir,
    ]);
    expect(exit.code).toBe(1);
    expect(exit.stderr).toContain(`cannot claim build ${buildId}: claim refused (401): wrong claim token`);
    expect(harness.api.results()).toEqual([]);
  });

  it('local mode: SIGTERM stops the job process group, publishes the logs and reports nothing', async () => {
    const buildId = await serveClaim(
      jobSpec(harness, {
        run: 'echo $$ > "$AKANDA_CI_LOG_DIR/pids.txt"; sleep 300 & echo $! >> "$AKANDA_CI_LOG_DIR/pids.txt"; wait',
      }),
    );
    const pidsFile = path.join(workDir, 'logs', 'pids.txt');
    const agent = startMain(['--api-url', harness.api.url, '--build-id', buildId, '--work-dir', workDir], {
      ...process.env,
      AKANDA_CI_CLAIM_TOKEN: CLAIM_TOKEN,
    });
    await waitFor(() => existsSync(pidsFile) && readFileSync(pidsFile, 'utf8').trim().split('\n').length === 2);
    const pids = readFileSync(pidsFile, 'utf8').trim().split('\n').map(Number);
    process.kill(agent.pid, 'SIGTERM');
    const exit = await agent.exit;
    expect(exit.code).toBe(0);
    expect(exit.stderr).toContain('SIGTERM received');
    for (const pid of pids) {
      expect(processAlive(pid)).toBe(false);
    }
    expect(harness.api.results()).toEqual([]);
    const objects = await harness.logs.objects(keyPrefixFor(buildId));
    expect(objects.get(`${keyPrefixFor(buildId)}job-output.txt`)?.body.toString('utf8')).toContain(
      'akanda-ci: the agent was asked to stop; stopping the job',
    );
  });

  it('rejects incomplete or unknown arguments with usage and status 2', async () => {
    const missing = await runMain(['--api-url', harness.api.url, '--build-id', 'abc']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('local mode needs --claim-token, --work-dir');
    const unknown = await runMain(['--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('usage:');
    expect(harness.api.calls).toEqual([]);
  });

  describe('EC2 mode', () => {
    let imds: FakeImds | undefined;
    afterEach(async () => {
      await imds?.close();
      imds = undefined;
    });

    it('reads build id, claim token and API URL from the instance tags through IMDSv2', async () => {
      const buildId = await serveClaim(jobSpec(harness, { run: 'echo on-ec2' }));
      imds = await startFakeImds({
        'akanda-ci:build': buildId,
        'akanda-ci:claim': CLAIM_TOKEN,
        'akanda-ci:api': harness.api.url,
        'akanda-ci:managed': 'true',
      });
      const exit = await runMain(['--ec2', '--imds-url', imds.url, '--work-dir', workDir, '--no-poweroff']);
      expect(exit.code).toBe(0);
      expect(harness.api.calls[0]).toEqual({ path: '/node/claim', body: { buildId, claimToken: CLAIM_TOKEN } });
      expect(harness.api.results()).toEqual([
        { buildId, resultToken: RESULT_TOKEN, result: 'SUCCESS', elapsedSeconds: expect.any(Number) },
      ]);
      expect(imds.unauthorized).toBe(0);
      expect(exit.stderr).not.toContain(CLAIM_TOKEN);
    });
  });
});
