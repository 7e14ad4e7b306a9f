/**
 * The control plane as the control tests drive it: a fresh table on dynalite behind a Store, the
 * Gerrit stand-in through the real client, queues that are arrays the test delivers itself, a
 * logger that keeps warnings and errors, and the clock and fleet the test file owns. What differs
 * between files (jobs, projects, limits, fleet behaviour, any port) is passed in.
 */
import type { Fleet, LaunchOutcome, LaunchRequest, ManagedInstance } from '../../lambda/adapters/fleet';
import { GerritClient } from '../../lambda/adapters/gerrit-client';
import { Store } from '../../lambda/adapters/store';
import { type ConfigInput, validateConfig } from '../../lambda/core/config';
import { ingestWebhook } from '../../lambda/control/ingest';
import { handleNodeRequest } from '../../lambda/control/node-api';
import type { ArtifactsPort, ControlPorts, ReportMessage, ScheduleMessage } from '../../lambda/control/ports';
import type { BuildRecord, BuildsetRecord } from '../../lambda/control/records';
import { handleScheduleMessage } from '../../lambda/control/scheduler';
import { type Emulator, ensureTable, LOCAL_CREDENTIALS, LOCAL_REGION } from '../../lambda/local/emulators';
import type { GerritStandin } from '../support/gerrit-standin';

export const PROJECT = 'stackforge/akanda-rug';

/** Presigned POSTs that are never used: the node in these tests uploads nothing. */
export const FAKE_ARTIFACTS: ArtifactsPort = {
  logUpload: async (keyPrefix) => ({
    url: 'https://s3.example/',
    fields: {},
    keyPrefix,
    publicUrl: `https://logs.example/${keyPrefix}`,
  }),
  publicUrl: (prefix) => `https://logs.example/${prefix}`,
};

export interface HarnessOptions<F extends Fleet> {
  dynamo: Emulator;
  gerrit: GerritStandin;
  /** Prefix of the table's name; each harness gets its own table. */
  table: string;
  webhookToken: string;
  now: () => number;
  fleet: F;
  /** The config's jobs, projects and limits; the Gerrit server and the one node label are the harness's. */
  config: Pick<ConfigInput, 'jobs' | 'projects' | 'limits'>;
  /** Ports that replace the harness's own (artifacts, logger, queues, metrics, reportRetry...). */
  ports?: Partial<ControlPorts>;
}

let tables = 0;

export async function controlHarness<F extends Fleet>(options: HarnessOptions<F>) {
  const { dynamo, gerrit, fleet } = options;
  const name = `${options.table}-${++tables}`;
  await ensureTable(dynamo.endpoint, name);
  const store = new Store(name, { endpoint: dynamo.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  const schedule: ScheduleMessage[] = [];
  const reports: ReportMessage[] = [];
  const warnings: string[] = [];
  const errors: string[] = [];
  const ports: ControlPorts = {
    config: validateConfig({
      gerrit: { url: gerrit.url, username: gerrit.username },
      nodes: { small: { instanceTypes: ['c8i.large'] } },
      ...options.config,
    }),
    store,
    scheduleQueue: { send: async (m) => void schedule.push(m) },
    reportQueue: { send: async (m) => void reports.push(m) },
    fleet,
    gerrit: new GerritClient({ baseUrl: gerrit.url, username: gerrit.username, password: gerrit.password }),
    artifacts: FAKE_ARTIFACTS,
    now: options.now,
    logger: {
      info: () => {},
      warn: (message) => void warnings.push(message),
      error: (message) => void errors.push(message),
    },
    webhookToken: async () => options.webhookToken,
    reportRetry: { delaySeconds: () => 1, maxAttempts: 3 },
    ...options.ports,
  };

  /** Delivers every schedule message, including those the deliveries send. */
  const drain = async () => {
    while (schedule.length > 0) await handleScheduleMessage(ports, schedule.shift()!);
  };
  /** Sends one Gerrit event to the webhook; it must be accepted. Resolves to its first buildset. */
  const ingest = async (event: unknown) => {
    const answer = await ingestWebhook(ports, { token: options.webhookToken, body: JSON.stringify(event) });
    expect(answer.status).toBe(202);
    return (answer.body as { buildsets: string[] }).buildsets[0]!;
  };
  /** The buildset's first build. */
  const buildOf = async (buildsetId: string) => {
    const buildset = await store.getBuildset<BuildsetRecord>(buildsetId);
    return (await store.getBuild<BuildRecord>(buildset!.buildIds[0]!))!;
  };
  return { store, ports, fleet, schedule, reports, warnings, errors, drain, ingest, buildOf };
}

/** Claims a build with the claim token of its latest launch; the claim must succeed. Resolves to the result token. */
export async function claimLatest(
  ports: ControlPorts,
  fleet: { launches: readonly { buildId: string; claimToken: string }[] },
  buildId: string,
) {
  const claimToken = fleet.launches.filter((l) => l.buildId === buildId).at(-1)!.claimToken;
  const answer = await handleNodeRequest(ports, '/node/claim', { buildId, claimToken });
  expect(answer.status).toBe(200);
  return answer.body.resultToken as string;
}

/** A fleet that launches every request and has no instances to list or terminate. */
export class LaunchOnlyFleet implements Fleet {
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
