import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startFakeImds } from './fake-imds';
import type { Reply } from './fake-node-api';
import {
  CLAIM_TOKEN,
  DEPENDENCY,
  execFileAsync,
  jobSpec,
  processAlive,
  PROJECT,
  RESULT_TOKEN,
  runAgent,
  startAgent,
  startHarness,
  waitFor,
  type AgentRun,
  type Harness,
} from './harness';

const TIMESTAMPED = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| /;

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

/** No token, password or signature in anything the agent logged or published. */
async function expectNoSecrets(run: AgentRun): Promise<void> {
  const published = [...(await harness.logs.objects(run.keyPrefix)).values()].map((o) => o.body.toString('utf8'));
  for (const text of [run.logLines.join('\n'), ...published]) {
    for (const secret of [
      CLAIM_TOKEN,
      RESULT_TOKEN,
      'gerrit-password-secret',
      'webhook-token-secret',
      'X-Amz-Signature',
    ]) {
      expect(text).not.toContain(secret);
    }
  }
}

async function consoleText(run: AgentRun): Promise<string> {
  const objects = await harness.logs.objects(run.keyPrefix);
  const output = objects.get(`${run.keyPrefix}job-output.txt`);
  expect(output?.contentType).toBe('text/plain; charset=utf-8');
  return output?.body.toString('utf8') ?? '';
}

describe('runNodeAgent', () => {
  it('claims, prepares the change and its Depends-On, runs the job with its environment, publishes the logs and reports SUCCESS', async () => {
    const job = jobSpec(harness, {
      run: [
        'printenv | grep "^AKANDA_CI_" | sort > "$AKANDA_CI_LOG_DIR/env.txt"',
        'echo "gerrit password: ${GERRIT_HTTP_PASSWORD:-unset}, webhook token: ${WEBHOOK_TOKEN:-unset}"',
        'echo "head $(git rev-parse HEAD)"',
        'echo "describe $(git describe --tags)"',
        'echo "cwd $PWD"',
        'echo "to stderr" >&2',
        'echo image-bytes > "$AKANDA_CI_ARTIFACT_DIR/appliance.qcow2"',
        "printf 'last line without newline'",
      ].join('\n'),
    });
    const run = await runAgent(harness, job);

    expect(run.outcome).toEqual({
      result: 'SUCCESS',
      reported: true,
      elapsedSeconds: expect.any(Number),
      logsUrl: `http://127.0.0.1/${run.keyPrefix}`,
    });
    expect(harness.api.calls[0]).toEqual({
      path: '/node/claim',
      body: { buildId: run.buildId, claimToken: CLAIM_TOKEN },
    });
    expect(harness.api.results()).toEqual([
      { buildId: run.buildId, resultToken: RESULT_TOKEN, result: 'SUCCESS', elapsedSeconds: expect.any(Number) },
    ]);

    const workspace = path.join(run.workDir, 'workspace');
    const logDir = path.join(run.workDir, 'logs');
    const objects = await harness.logs.objects(run.keyPrefix);
    expect([...objects.keys()].sort()).toEqual(
      ['artifacts/appliance.qcow2', 'artifacts/index.html', 'env.txt', 'index.html', 'job-output.txt'].map(
        (name) => `${run.keyPrefix}${name}`,
      ),
    );
    expect(objects.get(`${run.keyPrefix}env.txt`)?.body.toString('utf8')).toBe(
      [
        `AKANDA_CI_ARTIFACT_DIR=${path.join(logDir, 'artifacts')}`,
        `AKANDA_CI_BRANCH=master`,
        `AKANDA_CI_CHANGE=1234`,
        `AKANDA_CI_GIT_URL=${harness.repos.gitUrl}`,
        `AKANDA_CI_IMAGE_MODE=none`,
        `AKANDA_CI_IMAGE_URL=`,
        `AKANDA_CI_JOB=pep8`,
        `AKANDA_CI_LOG_DIR=${logDir}`,
        `AKANDA_CI_PATCHSET=2`,
        `AKANDA_CI_PIPELINE=check`,
        `AKANDA_CI_PREPARED_PROJECTS=${PROJECT} ${DEPENDENCY}`,
        `AKANDA_CI_PROJECT=${PROJECT}`,
        `AKANDA_CI_REF=refs/changes/34/1234/2`,
        `AKANDA_CI_REVISION=${harness.change.revision}`,
        `AKANDA_CI_SCRIPTS=${path.resolve(__dirname, '../../scripts')}`,
        `AKANDA_CI_TIMEOUT=60`,
        `AKANDA_CI_WORKSPACE=${workspace}`,
        '',
      ].join('\n'),
    );
    const artifact = objects.get(`${run.keyPrefix}artifacts/appliance.qcow2`);
    expect(artifact?.body.toString('utf8')).toBe('image-bytes\n');
    expect(artifact?.contentType).toBe('application/octet-stream');
    const index = objects.get(`${run.keyPrefix}index.html`);
    expect(index?.contentType).toBe('text/html; charset=utf-8');
    expect(index?.body.toString('utf8')).toContain('<a href="artifacts/index.html">artifacts/</a>');
    expect(index?.body.toString('utf8')).toContain('<a href="job-output.txt">job-output.txt</a>');

    const output = await consoleText(run);
    const lines = output.trimEnd().split('\n');
    expect(lines.filter((line) => !TIMESTAMPED.test(line))).toEqual([]);
    const text = lines.map((line) => line.replace(TIMESTAMPED, ''));
    expect(text).toContain('gerrit password: unset, webhook token: unset');
    expect(text).toContain(`head ${harness.change.revision}`);
    expect(text).toContain(`describe 2015.1.0-1-g${harness.change.revision.slice(0, 7)}`);
    expect(text).toContain(`cwd ${path.join(workspace, 'stackforge', 'akanda-rug')}`);
    expect(text).toContain('to stderr');
    expect(text).toContain('last line without newline');
    expect(text).toContain('akanda-ci: the job exited with status 0');

    const { stdout } = await execFileAsync('git', ['rev-parse', 'HEAD'], { cwd: path.join(workspace, DEPENDENCY) });
    expect(stdout.trim()).toBe(harness.dependency.revision);
    await expectNoSecrets(run);
  });

  it('reports FAILURE when the job exits non-zero, with the exit status in the console log', async () => {
    const run = await runAgent(harness, jobSpec(harness, { run: 'echo about to fail; exit 3' }));
    expect(run.outcome).toMatchObject({ result: 'FAILURE', reported: true });
    expect(harness.api.results()).toEqual([
      { buildId: run.buildId, resultToken: RESULT_TOKEN, result: 'FAILURE', elapsedSeconds: expect.any(Number) },
    ]);
    const output = await consoleText(run);
    expect(output).toContain('| about to fail\n');
    expect(output).toContain('| akanda-ci: the job exited with status 3\n');
  });

  it("sends the first line of the job's failure.txt, sanitised, as the summary of a FAILURE", async () => {
    const run = await runAgent(
      harness,
      jobSpec(harness, {
        run: `printf 'phase:\\t devstack\\001 (exit 1)\\342\\200\\250forged line\\nstatus: 1\\n' >"$AKANDA_CI_LOG_DIR/failure.txt"; exit 1`,
      }),
    );
    expect(run.outcome).toMatchObject({ result: 'FAILURE', reported: true });
    expect(harness.api.results()).toEqual([
      {
        buildId: run.buildId,
        resultToken: RESULT_TOKEN,
        result: 'FAILURE',
        elapsedSeconds: expect.any(Number),
        summary: 'phase: devstack (exit 1)',
      },
    ]);
  });

  it('sends no summary with a SUCCESS, even when a failure.txt is left behind', async () => {
    const run = await runAgent(
      harness,
      jobSpec(harness, { run: `echo 'phase: devstack' >"$AKANDA_CI_LOG_DIR/failure.txt"` }),
    );
    expect(run.outcome).toMatchObject({ result: 'SUCCESS', reported: true });
    expect(harness.api.results()).toEqual([
      { buildId: run.buildId, resultToken: RESULT_TOKEN, result: 'SUCCESS', elapsedSeconds: expect.any(Number) },
    ]);
  });

  it('kills the whole process tree at the job timeout, TERM then KILL, publishes the logs and leaves TIMED_OUT to the control plane', async () => {
    const run = await runAgent(
      harness,
      jobSpec(harness, {
        timeoutSeconds: 1,
        run: [
          'pids="$AKANDA_CI_LOG_DIR/pids.txt"',
          'echo $$ > "$pids"',
          // A subshell and its sleep that ignore SIGTERM: only SIGKILL ends them.
          '( trap \'\' TERM; sleep 300 & echo $! >> "$pids"; wait ) &',
          'echo $! >> "$pids"',
          "bash -c 'sleep 300' &",
          'echo $! >> "$pids"',
          'echo started',
          'sleep 300',
        ].join('\n'),
      }),
    );
    expect(run.outcome).toMatchObject({ result: 'TIMED_OUT', reported: false });
    expect(harness.api.results()).toEqual([]);
    const objects = await harness.logs.objects(run.keyPrefix);
    const pids = (objects.get(`${run.keyPrefix}pids.txt`)?.body.toString('utf8') ?? '').trim().split('\n').map(Number);
    expect(pids).toHaveLength(4);
    for (const pid of pids) {
      expect(processAlive(pid)).toBe(false);
    }
    const output = await consoleText(run);
    expect(output).toContain('| started\n');
    expect(output).toContain('| akanda-ci: job timeout of 1 s reached; stopping the job\n');
  });

  it('stops the job on a spot interruption notice, publishes the logs so far and reports INTERRUPTED', async () => {
    const imds = await startFakeImds({});
    try {
      const started = startAgent(
        harness,
        jobSpec(harness, { run: 'echo working; touch "$AKANDA_CI_LOG_DIR/started"; sleep 300' }),
        { imdsUrl: imds.url, interruptionPollSeconds: 0.05 },
      );
      await waitFor(() => started.workDir !== '' && existsSync(path.join(started.workDir, 'logs', 'started')));
      imds.interrupt();
      const outcome = await started.outcome;
      expect(outcome).toMatchObject({ result: 'INTERRUPTED', reported: true });
      expect(harness.api.results()).toEqual([
        {
          buildId: started.buildId,
          resultToken: RESULT_TOKEN,
          result: 'INTERRUPTED',
          elapsedSeconds: expect.any(Number),
        },
      ]);
      const output = await consoleText({ ...started, outcome });
      expect(output).toContain('| working\n');
      expect(output).toContain('| akanda-ci: spot interruption notice (terminate at ');
      expect(imds.unauthorized).toBe(0);
    } finally {
      await imds.close();
    }
  });

  it('writes escaped index pages for hostile file names and never uploads symbolic links', async () => {
    const script = path.join(harness.repos.root, 'hostile-logs.sh');
    await writeFile(
      script,
      [
        'cd "$AKANDA_CI_LOG_DIR"',
        "printf x > '<img src=x onerror=alert(1)>.txt'",
        `printf y > $'a"b\\'c&d.log'`,
        "mkdir '<i>dir'",
        "printf z > '<i>dir/ü space.conf'",
        "printf n > $'new\\nline.txt'",
        "printf q > $'not-utf8-\\xff.txt'",
        'ln -s /etc/passwd passwd-link.txt',
        'ln -s / root-link',
      ].join('\n'),
    );
    const run = await runAgent(harness, jobSpec(harness, { run: `bash ${script}` }));
    expect(run.outcome).toMatchObject({ result: 'SUCCESS', reported: true });

    const objects = await harness.logs.objects(run.keyPrefix);
    const names = [...objects.keys()].map((key) => key.slice(run.keyPrefix.length)).sort();
    expect(names).toEqual(
      [
        '<i>dir/index.html',
        '<i>dir/ü space.conf',
        '<img src=x onerror=alert(1)>.txt',
        'a"b\'c&d.log',
        'artifacts/index.html',
        'index.html',
        'job-output.txt',
        'new\nline.txt',
      ].sort(),
    );
    expect(objects.get(`${run.keyPrefix}<i>dir/ü space.conf`)?.contentType).toBe('text/plain; charset=utf-8');
    const index = objects.get(`${run.keyPrefix}index.html`)?.body.toString('utf8') ?? '';
    expect(index).not.toMatch(/<img|<i>|passwd|root-link/);
    expect(index).toContain(
      '<a href="%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.txt">&lt;img src=x onerror=alert(1)&gt;.txt</a>',
    );
    expect(index).toContain('<a href="a%22b\'c%26d.log">a&quot;b&#39;c&amp;d.log</a>');
    expect(index).toContain('<a href="%3Ci%3Edir/index.html">&lt;i&gt;dir/</a>');
    expect(index).toContain('<a href="new%0Aline.txt">new\nline.txt</a>');
    const subIndex = objects.get(`${run.keyPrefix}<i>dir/index.html`)?.body.toString('utf8') ?? '';
    expect(subIndex).toContain('<a href="%C3%BC%20space.conf">ü space.conf</a>');
    expect(subIndex).toContain('<a href="../index.html">../</a>');
  });

  it('streams a large artifact byte for byte', async () => {
    const run = await runAgent(
      harness,
      jobSpec(harness, {
        run: 'head -c 12000000 /dev/urandom > "$AKANDA_CI_ARTIFACT_DIR/image.qcow2" && sha256sum "$AKANDA_CI_ARTIFACT_DIR/image.qcow2"',
      }),
    );
    expect(run.outcome).toMatchObject({ result: 'SUCCESS', reported: true });
    const image = (await harness.logs.objects(run.keyPrefix)).get(`${run.keyPrefix}artifacts/image.qcow2`);
    expect(image?.body.length).toBe(12000000);
    const digest = createHash('sha256')
      .update(image?.body ?? Buffer.alloc(0))
      .digest('hex');
    expect(await consoleText(run)).toContain(
      `| ${digest}  ${path.join(run.workDir, 'logs', 'artifacts', 'image.qcow2')}\n`,
    );
  });

  it('reports ERROR without running the job when the fetched change is not the planned revision', async () => {
    const planned = 'f'.repeat(40);
    const run = await runAgent(
      harness,
      jobSpec(harness, {
        run: 'touch "$AKANDA_CI_LOG_DIR/ran"',
        repositories: [{ project: PROJECT, ref: harness.change.ref, revision: planned }],
      }),
    );
    expect(run.outcome).toMatchObject({ result: 'ERROR', reported: true });
    expect(harness.api.results()).toEqual([
      { buildId: run.buildId, resultToken: RESULT_TOKEN, result: 'ERROR', elapsedSeconds: expect.any(Number) },
    ]);
    const objects = await harness.logs.objects(run.keyPrefix);
    expect(objects.has(`${run.keyPrefix}ran`)).toBe(false);
    const output = await consoleText(run);
    expect(output).toContain(`is at ${harness.change.revision}, expected ${planned}`);
  });

  it('reports ERROR with a clear console line when git cannot fetch the ref', async () => {
    const run = await runAgent(
      harness,
      jobSpec(harness, { repositories: [{ project: PROJECT, ref: 'refs/changes/99/99/1' }] }),
    );
    expect(run.outcome).toMatchObject({ result: 'ERROR', reported: true });
    expect(await consoleText(run)).toContain(
      `akanda-ci: preparing the repositories failed: git fetch of refs/changes/99/99/1 from ${harness.repos.gitUrl}/${PROJECT} failed`,
    );
  });

  it.each([
    ['a project escaping the workspace', { project: '../../etc' }],
    [
      'a project that is a git option',
      { project: '-oops', repositories: [{ project: '-oops', ref: 'refs/heads/master' }] },
    ],
    ['a ref that is a git option', { ref: '--upload-pack=touch /tmp/akanda-pwned' }],
    ['a change ref whose NN does not match', { repositories: [{ project: PROJECT, ref: 'refs/changes/12/1234/2' }] }],
    ['a git transport running commands', { gitUrl: 'ext::sh -c touch% /tmp/akanda-pwned' }],
    ['a revision that is not 40 hex', { revision: 'HEAD' }],
    ['a missing run command', { run: '' }],
  ])('refuses a job with %s and reports ERROR with the result token', async (_what, overrides) => {
    const run = await runAgent(harness, jobSpec(harness, { run: 'touch "$AKANDA_CI_LOG_DIR/ran"', ...overrides }));
    expect(run.outcome).toMatchObject({
      result: 'ERROR',
      reported: true,
      error: expect.stringMatching(/^invalid claim response: /),
    });
    expect(harness.api.results()).toEqual([
      { buildId: run.buildId, resultToken: RESULT_TOKEN, result: 'ERROR', elapsedSeconds: expect.any(Number) },
    ]);
    expect(existsSync(path.join(run.workDir, 'logs'))).toBe(false);
    expect(existsSync('/tmp/akanda-pwned')).toBe(false);
  });

  it.each([
    [401, 'claim refused (401): wrong claim token'],
    [409, 'claim refused (409): build already claimed or not claimable'],
  ])('gives up at once when the claim is refused with %d', async (status, message) => {
    const started = startAgent(harness, jobSpec(harness));
    harness.api.onClaim = () => ({ status, body: { error: 'no' } });
    const outcome = await started.outcome;
    expect(outcome).toEqual({ reported: false, elapsedSeconds: expect.any(Number), error: message });
    expect(harness.api.calls.map((call) => call.path)).toEqual(['/node/claim']);
    expect(started.logLines).toContain(`cannot claim build ${started.buildId}: ${message}`);
  });

  it('ends with a clear error, not a hang, when the node API is unreachable', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const run = await runAgent(harness, jobSpec(harness), {
      apiUrl: `http://127.0.0.1:${port}`,
      claimRetrySeconds: 0.3,
    });
    expect(run.outcome).toMatchObject({ reported: false, error: expect.stringContaining('ECONNREFUSED') });
    expect(run.outcome.result).toBeUndefined();
    expect(run.logLines.some((line) => line.startsWith('claim failed (ECONNREFUSED: connect ECONNREFUSED'))).toBe(true);
  });

  it('retries the result report through server errors until it is accepted', async () => {
    harness.api.resultFailures = [503, 502];
    const run = await runAgent(harness, jobSpec(harness));
    expect(run.outcome).toMatchObject({ result: 'SUCCESS', reported: true });
    expect(harness.api.results().map((body) => body.result)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
  });

  it('heartbeats with the result token while the job runs', async () => {
    const started = startAgent(
      harness,
      jobSpec(harness, { run: 'while [ ! -e "$AKANDA_CI_LOG_DIR/go" ]; do sleep 0.05; done' }),
      { heartbeatSeconds: 0.05 },
    );
    await waitFor(() => harness.api.heartbeats().length >= 2 && started.workDir !== '');
    await writeFile(path.join(started.workDir, 'logs', 'go'), '');
    expect(await started.outcome).toMatchObject({ result: 'SUCCESS', reported: true });
    expect(harness.api.heartbeats()[0]).toEqual({ buildId: started.buildId, resultToken: RESULT_TOKEN });
  });

  it('stops the job without reporting when a heartbeat answer says the build was cancelled', async () => {
    harness.api.heartbeatState = 'cancelled';
    const run = await runAgent(harness, jobSpec(harness, { run: 'echo waiting; sleep 300' }), {
      heartbeatSeconds: 0.05,
    });
    expect(run.outcome).toMatchObject({ result: 'CANCELLED', reported: false });
    expect(harness.api.results()).toEqual([]);
    expect(await consoleText(run)).toContain(
      'akanda-ci: the build is cancelled on the control plane; stopping the job',
    );
  });
});

describe('runNodeAgent uploads', () => {
  /** Answers 503 to the first `failures` requests, 403 to all when `failures` is Infinity, else forwards to s3rver. */
  async function flakyUploadProxy(
    failures: number,
  ): Promise<{ url: string; requests: number; close(): Promise<void> }> {
    const target = new URL(harness.logs.endpoint);
    const state = { requests: 0 };
    const server = http.createServer((req, res) => {
      state.requests++;
      if (state.requests <= failures) {
        req.resume();
        req.on('end', () => {
          const status = failures === Infinity ? 403 : 503;
          res.writeHead(status, { 'content-type': 'application/xml' });
          res.end(`<Error><Code>${status === 403 ? 'AccessDenied' : 'SlowDown'}</Code></Error>`);
        });
        return;
      }
      const forward = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
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

  async function runThrough(proxyUrl: string, run = 'echo hello'): Promise<AgentRun> {
    const started = startAgent(harness, jobSpec(harness, { run }), { uploadRetrySeconds: 3 });
    // Both the claim's and the fresh upload go through the proxy.
    const throughProxy = (reply: Reply): Reply => {
      const answer = reply.body as { upload?: { url: string } };
      if (answer.upload) {
        answer.upload = { ...answer.upload, url: `${proxyUrl}${new URL(answer.upload.url).pathname}` };
      }
      return reply;
    };
    const { onClaim, onUpload } = harness.api;
    harness.api.onClaim = (body) => throughProxy(onClaim(body));
    harness.api.onUpload = async (body) => throughProxy(await onUpload(body));
    const outcome = await started.outcome;
    return { ...started, outcome };
  }

  it('retries uploads that fail transiently', async () => {
    const proxy = await flakyUploadProxy(2);
    try {
      const run = await runThrough(proxy.url);
      expect(run.outcome).toMatchObject({ result: 'SUCCESS', reported: true });
      const objects = await harness.logs.objects(run.keyPrefix);
      expect(objects.get(`${run.keyPrefix}job-output.txt`)?.body.toString('utf8')).toContain('| hello\n');
      expect(run.logLines.some((line) => line.includes('failed (upload answered 503 SlowDown); retrying'))).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('reports ERROR instead of SUCCESS when the logs cannot be published, and stops trying after a few files', async () => {
    const proxy = await flakyUploadProxy(Infinity);
    try {
      const run = await runThrough(
        proxy.url,
        'for i in $(seq 1 20); do echo $i > "$AKANDA_CI_LOG_DIR/file-$i.txt"; done',
      );
      expect(run.outcome).toMatchObject({
        result: 'ERROR',
        reported: true,
        error: '23 of 23 log files could not be uploaded',
      });
      expect(harness.api.results().map((body) => body.result)).toEqual(['ERROR']);
      expect(run.logLines).toContain('upload of "job-output.txt" failed: upload answered 403 AccessDenied');
      const consoleFailure = run.logLines.indexOf(
        'upload of "job-output.txt" failed: upload answered 403 AccessDenied',
      );
      const gaveUp = run.logLines.findIndex((line) => / files failed to upload; not attempting the rest$/.test(line));
      expect(consoleFailure).toBeGreaterThan(-1);
      expect(gaveUp).toBeGreaterThan(consoleFailure);
      expect(proxy.requests).toBeLessThan(23);
    } finally {
      await proxy.close();
    }
  });
});
