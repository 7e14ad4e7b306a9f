/**
 * Control-plane overhead in local mode (the same handlers, dynalite, s3rver and in-process queues):
 *
 * - webhook request -> node launch: from sending the webhook to the fleet's launch call;
 * - node result -> review POST: from sending `POST /node/result` to Gerrit receiving the review;
 * - ingest throughput with dedupe: events/s answered by the webhook, every event sent twice.
 *
 * Nodes are simulated (they claim and report over the real node API at once) and Gerrit is a
 * minimal REST server, so the figures are the control plane's own. Targets: p99 < 50 ms each,
 * >= 200 events/s.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet, LaunchOutcome, LaunchRequest } from '../../lambda/adapters/fleet';
import { validateConfig } from '../../lambda/core/config';
import { startLocal } from '../../lambda/local/run';

/** AKANDA_CI_BENCH_EVENTS makes a shorter run (profiling); the figures of record use 1,000. */
const EVENTS = Number(process.env.AKANDA_CI_BENCH_EVENTS ?? 1000);
const THROUGHPUT_EVENTS = EVENTS;
const THROUGHPUT_CONCURRENCY = 16;
const PROJECT = 'bench/project';

interface Timings {
  webhookSent: Map<number, number>;
  launched: Map<string, number>;
  resultSent: Map<number, number>;
  reviewed: Map<number, number>;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function summary(name: string, samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const f = (n: number) => n.toFixed(1).padStart(7);
  return `${name.padEnd(34)} n=${sorted.length}  p50 ${f(percentile(sorted, 50))} ms  p99 ${f(percentile(sorted, 99))} ms  max ${f(sorted.at(-1) ?? NaN)} ms`;
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** What the simulated Gerrit knows of each change the bench has sent an event for. */
const knownChanges = new Map<number, { changeId: string; revision: string }>();

function patchsetCreated(change: number): Record<string, unknown> {
  const changeId = `I${hex(20)}`;
  const revision = hex(20);
  knownChanges.set(change, { changeId, revision });
  return {
    type: 'patchset-created',
    uploader: { name: 'Bench', username: 'bench' },
    change: {
      project: PROJECT,
      branch: 'master',
      id: changeId,
      number: change,
      subject: 'bench',
      owner: { name: 'Bench', username: 'bench' },
      url: `http://gerrit.invalid/c/${PROJECT}/+/${change}`,
      commitMessage: `bench\n\nChange-Id: ${changeId}\n`,
      status: 'NEW',
    },
    patchSet: {
      number: 1,
      revision,
      ref: `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/1`,
      uploader: { name: 'Bench', username: 'bench' },
      createdOn: 1700000000,
      kind: 'REWORK',
    },
    project: { name: PROJECT },
    refName: 'refs/heads/master',
    eventCreatedOn: 1700000000 + change,
  };
}

/** A ChangeInfo for `GET /a/changes/<n>`: the scheduler checks the change is open and current. */
function changeInfo(change: number): string | undefined {
  const known = knownChanges.get(change);
  if (!known) return undefined;
  const ref = `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/1`;
  return JSON.stringify({
    project: PROJECT,
    branch: 'master',
    change_id: known.changeId,
    _number: change,
    status: 'NEW',
    subject: 'bench',
    current_revision: known.revision,
    revisions: {
      [known.revision]: { _number: 1, ref, commit: { message: `bench\n\nChange-Id: ${known.changeId}\n` } },
    },
  });
}

/**
 * Enough Gerrit for the scheduler and reporter: the change, its changed files, and review POSTs
 * timed on arrival.
 */
async function startGerrit(timings: Timings): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const review = /^\/a\/changes\/[^/]+\/revisions\/[0-9a-f]{40}\/review$/.test(req.url ?? '');
      if (req.method === 'POST' && review) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: string };
        const change = /\/logs\/\d\d\/(\d+)\//.exec(body.message ?? '')?.[1];
        if (change) timings.reviewed.set(Number(change), performance.now());
        res.writeHead(200, { 'content-type': 'application/json' }).end(")]}'\n{}");
        return;
      }
      const changeGet = /^\/a\/changes\/(\d+)(?:\?|$)/.exec(req.url ?? '');
      if (req.method === 'GET' && changeGet) {
        const info = changeInfo(Number(changeGet[1]));
        if (info) res.writeHead(200, { 'content-type': 'application/json' }).end(`)]}'\n${info}`);
        else res.writeHead(404).end('Not found');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(`)]}'\n{"/COMMIT_MSG":{},"a.py":{}}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Nodes that claim and report over the real node API the moment they are launched. */
class SimulatedFleet implements Fleet {
  apiUrl = '';
  private next = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly timings: Timings) {}

  async launch(request: LaunchRequest): Promise<LaunchOutcome> {
    this.timings.launched.set(request.buildId, performance.now());
    const run = this.node(request).catch((error: unknown) => {
      process.stderr.write(`node: ${String(error)}\n`);
    });
    this.pending.add(run);
    void run.finally(() => {
      this.pending.delete(run);
    });
    return { status: 'launched', instanceId: `sim-${++this.next}`, lifecycle: 'local' };
  }

  private async node(request: LaunchRequest): Promise<void> {
    const claim = await post(`${this.apiUrl}/node/claim`, { buildId: request.buildId, claimToken: request.claimToken });
    const { job, resultToken } = claim as { job: { change: number }; resultToken: string };
    this.timings.launched.set(`change:${job.change}`, this.timings.launched.get(request.buildId) ?? NaN);
    this.timings.resultSent.set(job.change, performance.now());
    await post(`${this.apiUrl}/node/result`, {
      buildId: request.buildId,
      resultToken,
      result: 'SUCCESS',
      elapsedSeconds: 1,
    });
  }

  async terminateInstances(): Promise<void> {}

  async listManagedInstances() {
    return [];
  }
}

async function post(url: string, body: unknown): Promise<unknown> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const parsed: unknown = await response.json();
  if (response.status >= 300) throw new Error(`${url}: HTTP ${response.status} ${JSON.stringify(parsed)}`);
  return parsed;
}

async function waitUntil(ready: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!ready()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

export async function run(): Promise<void> {
  const timings: Timings = { webhookSent: new Map(), launched: new Map(), resultSent: new Map(), reviewed: new Map() };
  const gerrit = await startGerrit(timings);
  const dataDir = await mkdtemp(join(tmpdir(), 'akanda-ci-bench-'));
  const token = hex(16);
  const fleet = new SimulatedFleet(timings);
  const config = validateConfig({
    gerrit: { url: gerrit.url, username: 'akanda-ci' },
    nodes: { small: { instanceTypes: ['c8i.large'] } },
    jobs: [{ name: 'unit', node: 'small', run: 'true' }],
    projects: [{ name: PROJECT, check: ['unit'] }],
    limits: { maxConcurrentNodes: 1000 },
  });
  const local = await startLocal({
    config,
    port: 0,
    dataDir,
    webhookToken: token,
    gerritPassword: 'bench',
    reaperIntervalSeconds: 3600,
    retryScale: 1,
    write: () => {},
    fleet,
  });
  fleet.apiUrl = local.url;
  const webhook = `${local.url}/webhook/${token}`;
  try {
    // Warm up the code paths (JIT, connection pools) before measuring.
    for (let change = 1; change <= 20; change++) {
      await post(webhook, patchsetCreated(change));
      await waitUntil(() => timings.reviewed.has(change), `warm-up review ${change}`);
    }

    // One event at a time, so each figure is overhead and not queueing behind the others.
    const launchLatency: number[] = [];
    const baseline = timings.reviewed.size;
    const reportLatency: number[] = [];
    for (let change = 1001; change < 1001 + EVENTS; change++) {
      const sent = performance.now();
      await post(webhook, patchsetCreated(change));
      await waitUntil(() => timings.reviewed.has(change), `review of change ${change}`);
      launchLatency.push((timings.launched.get(`change:${change}`) ?? NaN) - sent);
      reportLatency.push((timings.reviewed.get(change) ?? NaN) - (timings.resultSent.get(change) ?? NaN));
    }
    process.stdout.write(`${summary('webhook request -> node launch', launchLatency)}   (target p99 < 50 ms)\n`);
    process.stdout.write(`${summary('node result -> review POST', reportLatency)}   (target p99 < 50 ms)\n`);

    // Ingest alone (in AWS it is its own Lambda; the queue decouples it from scheduling): every event
    // twice, as a webhook retry would, 16 requests in flight, the scheduler paused meanwhile.
    const events = Array.from({ length: THROUGHPUT_EVENTS }, (_, i) => patchsetCreated(100_001 + i));
    const deliveries = events.flatMap((event) => [event, event]);
    let nextDelivery = 0;
    let duplicates = 0;
    local.queues.schedule.pause();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: THROUGHPUT_CONCURRENCY }, async () => {
        while (nextDelivery < deliveries.length) {
          const answer = (await post(webhook, deliveries[nextDelivery++])) as { duplicate?: boolean };
          if (answer.duplicate) duplicates++;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(
      `ingest with dedupe                 ${(deliveries.length / seconds).toFixed(0)} events/s ` +
        `(${deliveries.length} deliveries of ${THROUGHPUT_EVENTS} events, ${duplicates} answered as duplicates)   (target >= 200 events/s)\n`,
    );

    // Then the whole pipeline works off the backlog: sustained events/s from ingest to review.
    const drainStart = performance.now();
    local.queues.schedule.resume();
    await waitUntil(
      () => timings.reviewed.size >= baseline + EVENTS + THROUGHPUT_EVENTS,
      'the backlog reviews',
      300_000,
    );
    const drained = (performance.now() - drainStart) / 1000;
    process.stdout.write(
      `backlog through the pipeline       ${(THROUGHPUT_EVENTS / drained).toFixed(0)} events/s scheduled, launched, reported\n`,
    );
  } finally {
    await local.stop();
    await new Promise<void>((resolve) => gerrit.server.close(() => resolve()));
    await rm(dataDir, { recursive: true, force: true });
  }
}
