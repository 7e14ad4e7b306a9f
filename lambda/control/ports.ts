/**
 * Everything the control plane touches, as one object. The Lambda handlers build it from AWS
 * clients and env; `akanda-ci local` builds it from dynalite, s3rver, child processes and an
 * in-process queue. The logic in lambda/control/* sees only this.
 */
import type { Fleet } from '../adapters/fleet';
import type { ImagePublisher } from '../adapters/image-publisher';
import type { GerritClient } from '../adapters/gerrit-client';
import type { Store } from '../adapters/store';
import type { Config } from '../core/config';

/** `kind: 'buildset'`: plan and start a recorded buildset. `kind: 'launch'`: capacity may have freed up. */
export type ScheduleMessage =
  | { kind: 'buildset'; buildsetId: string; supersedes: { project: string; change: number; belowPatchset: number }[] }
  | { kind: 'supersede'; supersedes: { project: string; change: number; belowPatchset: number }[] }
  | { kind: 'launch' };

export interface ReportMessage {
  buildsetId: string;
}

export interface QueuePort<T> {
  send(message: T, delaySeconds?: number): Promise<void>;
}

/** The Gerrit REST calls the control plane makes (GerritClient has them). */
export type GerritPort = Pick<
  GerritClient,
  'getChange' | 'getChangedFiles' | 'resolveDependency' | 'postReview' | 'hasReview' | 'queryOpenChanges'
>;

export interface LogUpload {
  url: string;
  fields: Record<string, string>;
  keyPrefix: string;
  /** Where the uploaded logs are read (the URL in the report). */
  publicUrl: string;
}

export interface ArtifactsPort {
  /** A presigned POST limited to `keyPrefix`, valid for about `expiresSeconds`. */
  logUpload(keyPrefix: string, expiresSeconds: number): Promise<LogUpload>;
  publicUrl(keyPrefix: string): string;
}

/** Structured logs: `fields` must never hold a secret, a token or a token-bearing URL. */
export interface LoggerPort {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * The custom metrics of docs/design.md (Metrics), read by lib/ci-dashboard.ts and lib/ci-alarms.ts
 * under the names of lib/ci-metrics.ts. Dimensions stay low-cardinality: a result word or a node
 * label, never a build, buildset or change.
 */
export type MetricDimensions = {
  BuildsFinished: { Result: string };
  LaunchFailures: Record<string, never>;
  TimeToVoteSeconds: Record<string, never>;
  NodeSeconds: { Label: string };
  RunningNodes: Record<string, never>;
  QueuedBuilds: Record<string, never>;
  ReportsDeadLettered: Record<string, never>;
};
export type MetricName = keyof MetricDimensions;
export type CountMetric = 'BuildsFinished' | 'LaunchFailures' | 'RunningNodes' | 'QueuedBuilds' | 'ReportsDeadLettered';
export type SecondsMetric = 'TimeToVoteSeconds' | 'NodeSeconds';

/**
 * Records metrics for the end of the invocation (the AWS adapter flushes them as EMF lines).
 * Implementations never throw: a metric lost is better than a build lost.
 */
export interface MetricsPort {
  count<N extends CountMetric>(name: N, value: number, dimensions: MetricDimensions[N]): void;
  seconds<N extends SecondsMetric>(name: N, value: number, dimensions: MetricDimensions[N]): void;
}

/** Local mode and tests that do not look at metrics: nothing is recorded. */
export const NO_METRICS: MetricsPort = { count: () => {}, seconds: () => {} };

export interface ReportRetryPolicy {
  /** Seconds before the attempt after failed attempt `attempt` (1-based). */
  delaySeconds(attempt: number, retryAfterSeconds?: number): number;
  /** After this many failed attempts the report is dead-lettered. */
  maxAttempts: number;
}

export interface ControlPorts {
  config: Config;
  store: Store;
  scheduleQueue: QueuePort<ScheduleMessage>;
  reportQueue: QueuePort<ReportMessage>;
  fleet: Fleet;
  gerrit: GerritPort;
  artifacts: ArtifactsPort;
  /** Epoch seconds (fractions allowed). */
  now(): number;
  logger: LoggerPort;
  /** The secret in `POST /webhook/<token>`. */
  webhookToken(): Promise<string>;
  reportRetry: ReportRetryPolicy;
  /** Base URL of the image store, for prebuilt images when the config has no latestImageUrl. */
  imageBaseUrl?: string;
  /** Where post-merge image builds are published; without it nothing is published. */
  images?: ImagePublisher;
  /** Custom metrics (docs/design.md, Metrics); without it none are recorded. */
  metrics?: MetricsPort;
}
