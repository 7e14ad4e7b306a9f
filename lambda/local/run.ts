/**
 * `akanda-ci local` wiring: the same control-plane code as the Lambdas, with local adapters
 * (docs/design.md and the architecture table): dynalite and s3rver under the data directory, the
 * node agent as child processes, in-process queues, a timer for the reaper, and Gerrit REST at
 * `gerrit.url` with the real client.
 */
import { join } from 'node:path';
import { createLogArtifacts, createS3Client } from '../adapters/artifacts';
import { GerritClient, REVIEW_MAX_ATTEMPTS, reviewRetryDelayFor } from '../adapters/gerrit-client';
import type { Fleet } from '../adapters/fleet';
import { s3ImagePublisher } from '../adapters/image-publisher';
import { LocalFleet } from '../adapters/local-fleet';
import { LocalQueue } from '../adapters/queue';
import { runtimeConfig } from '../adapters/runtime-config';
import { Store } from '../adapters/store';
import type { Config } from '../core/config';
import { nodeLost } from '../control/instance-events';
import type { ControlPorts, LoggerPort, ReportMessage, ScheduleMessage } from '../control/ports';
import { NO_METRICS } from '../control/ports';
import { reap } from '../control/reaper';
import { reportBuildset } from '../control/reporter';
import { handleScheduleMessage } from '../control/scheduler';
import { ensureTable, LOCAL_CREDENTIALS, LOCAL_REGION, startDynalite, startS3rver, type Emulator } from './emulators';
import { startLocalServer, type LocalServer } from './server';

export const LOCAL_TABLE = 'akanda-ci';
export const LOCAL_LOGS_BUCKET = 'akanda-ci-logs';
export const LOCAL_IMAGES_BUCKET = 'akanda-ci-images';
/** Per uploaded file; a devstack log directory holds a few large files. */
const MAX_UPLOAD_BYTES = 2 * 1024 * 1024 * 1024;

export interface LocalOptions {
  config: Config;
  /** 0 = any free port. */
  port: number;
  dataDir: string;
  webhookToken: string;
  gerritPassword: string;
  /** Seconds between reaper runs. */
  reaperIntervalSeconds: number;
  /** Multiplies the review retry delays (tests use a small one; 1 in real use). */
  retryScale: number;
  /** Where the log lines go (stdout for the command). */
  write(line: string): void;
  /** When set, every node agent watches this IMDS for the spot interruption notice (`--node-imds-url`). */
  nodeImdsUrl?: string;
  /** When set, the node agent entry point (default: this checkout's). */
  agentEntry?: string;
  /** Nodes from elsewhere instead of node-agent child processes (the control-plane benchmark). */
  fleet?: Fleet;
}

export interface LocalRuntime {
  url: string;
  ports: ControlPorts;
  /** Resolves when queues are idle (for the benchmark). */
  idle(): Promise<void>;
  fleet: Fleet;
  /** The in-process queues (the benchmark pauses the scheduler to time the ingest alone). */
  queues: { schedule: LocalQueue<ScheduleMessage>; report: LocalQueue<ReportMessage> };
  stop(): Promise<void>;
}

export function consoleLogger(write: (line: string) => void): LoggerPort {
  const line = (level: string, message: string, fields?: Record<string, unknown>) => {
    const detail = level !== 'info' && fields?.error !== undefined ? ` (${String(fields.error)})` : '';
    write(`${new Date().toISOString()} ${level.padEnd(5)} ${message}${detail}`);
  };
  return {
    info: (message, fields) => line('info', message, fields),
    warn: (message, fields) => line('warn', message, fields),
    error: (message, fields) => line('error', message, fields),
  };
}

export async function startLocal(options: LocalOptions): Promise<LocalRuntime> {
  // The handlers read the config the way they do in AWS.
  process.env.AKANDA_CI_CONFIG_JSON = JSON.stringify(options.config);
  const config = runtimeConfig();
  const logger = consoleLogger(options.write);

  const started: { close(): Promise<void> }[] = [];
  const dynamo: Emulator = await startDynalite(join(options.dataDir, 'dynamodb'));
  started.push(dynamo);
  const s3rver = await startS3rver(join(options.dataDir, 's3'), [LOCAL_LOGS_BUCKET, LOCAL_IMAGES_BUCKET]);
  started.push(s3rver);
  await ensureTable(dynamo.endpoint, LOCAL_TABLE);

  const store = new Store(LOCAL_TABLE, {
    endpoint: dynamo.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  const s3 = createS3Client({ endpoint: s3rver.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  const gerrit = new GerritClient({
    baseUrl: config.gerrit.url,
    username: config.gerrit.username,
    password: options.gerritPassword,
  });

  // The queues, the server and the fleet call back into the ports they are part of.
  const wired: { ports?: ControlPorts } = {};
  const getPorts = (): ControlPorts => {
    if (!wired.ports) throw new Error('local mode is not started yet');
    return wired.ports;
  };
  let stopping = false;

  const scheduleQueue = new LocalQueue<ScheduleMessage>({
    name: 'schedule',
    concurrency: 1, // the scheduler counts nodes against the limit: one at a time, as in AWS
    consume: (message) => handleScheduleMessage(getPorts(), message),
    onDeadLetter: (message, error) =>
      logger.error(`schedule message dead-lettered (${message.kind})`, { error: String(error) }),
  });
  const reportQueue = new LocalQueue<ReportMessage>({
    name: 'report',
    concurrency: 4,
    consume: async (message) => {
      const step = await reportBuildset(getPorts(), message.buildsetId);
      return step.kind === 'retry' ? { retryAfterSeconds: step.delaySeconds } : undefined;
    },
    onDeadLetter: (message, error) =>
      logger.error(`report of buildset ${message.buildsetId} dead-lettered`, { error: String(error) }),
  });

  const server: LocalServer = await startLocalServer({
    port: options.port,
    ports: getPorts,
    s3,
    logsBucket: LOCAL_LOGS_BUCKET,
    imagesBucket: LOCAL_IMAGES_BUCKET,
    rootImageFiles: [config.appliance.latestImageName, `${config.appliance.latestImageName}.sha256`, 'latest.json'],
  });
  const url = server.url;

  const fleet: Fleet =
    options.fleet ??
    new LocalFleet({
      apiUrl: url,
      workRoot: join(options.dataDir, 'nodes'),
      ...(options.agentEntry ? { agentEntry: options.agentEntry } : {}),
      ...(options.nodeImdsUrl ? { imdsUrl: options.nodeImdsUrl } : {}),
      onExit: ({ instanceId, buildId, code, signal }) => {
        if (stopping) return;
        logger.info(`node ${instanceId} (build ${buildId}) exited (${signal ?? `status ${code}`})`);
        // Status 0: the agent reported, or deliberately did not (its job timed out: the reaper's call).
        // Killed or failed before reporting: like an instance that vanished, the attempt is lost.
        if (code === 0) return;
        nodeLost(getPorts(), buildId, instanceId, signal ? `killed by ${signal}` : `exited with status ${code}`).catch(
          (error: unknown) => logger.error(`build ${buildId}: node exit not handled`, { error: String(error) }),
        );
      },
    });

  const ports: ControlPorts = {
    config,
    store,
    scheduleQueue,
    reportQueue,
    fleet,
    gerrit,
    artifacts: createLogArtifacts({
      client: s3,
      bucket: LOCAL_LOGS_BUCKET,
      publicBaseUrl: url,
      maxBytes: MAX_UPLOAD_BYTES,
    }),
    now: () => Date.now() / 1000,
    logger,
    // No CloudWatch here, and the console keeps one line per state change.
    metrics: NO_METRICS,
    webhookToken: async () => options.webhookToken,
    reportRetry: {
      delaySeconds: (attempt, retryAfter) => reviewRetryDelayFor(attempt, retryAfter) * options.retryScale,
      maxAttempts: REVIEW_MAX_ATTEMPTS,
    },
    // The rolling image is at the root of the public site, as behind CloudFront.
    imageBaseUrl: url,
    images: s3ImagePublisher({ s3, logsBucket: LOCAL_LOGS_BUCKET, imagesBucket: LOCAL_IMAGES_BUCKET }),
  };
  wired.ports = ports;

  let reaping = false;
  const reaper = setInterval(() => {
    if (reaping) return;
    reaping = true;
    reap(getPorts())
      .catch((error: unknown) => logger.error('reaper failed', { error: String(error) }))
      .finally(() => {
        reaping = false;
      });
  }, options.reaperIntervalSeconds * 1000);

  // Builds left queued or launching by a previous run are picked up (or timed out) by the reaper.
  await scheduleQueue.send({ kind: 'launch' });

  return {
    url,
    ports,
    fleet,
    queues: { schedule: scheduleQueue, report: reportQueue },
    idle: async () => {
      await scheduleQueue.drained();
      await reportQueue.drained();
    },
    stop: async () => {
      stopping = true;
      clearInterval(reaper);
      scheduleQueue.close();
      reportQueue.close();
      if (fleet instanceof LocalFleet) await fleet.terminateAll();
      await server.close();
      store.destroy();
      s3.destroy();
      for (const emulator of started.reverse()) await emulator.close();
    },
  };
}
