/**
 * The control plane's ports in AWS, built once per Lambda container from the environment the
 * stacks set (docs/design.md "Control-plane environment"). Secrets are read through Secrets
 * Manager with a short cache and never logged.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { CloudFrontClient } from '@aws-sdk/client-cloudfront';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createLogArtifacts, createS3Client } from '../adapters/artifacts';
import { s3ImagePublisher } from '../adapters/image-publisher';
import { Ec2Fleet, parseLaunchTemplates, parseSubnetIds } from '../adapters/ec2-fleet';
import { GerritClient, REVIEW_MAX_ATTEMPTS, reviewRetryDelayFor } from '../adapters/gerrit-client';
import { EmfMetrics, flushingMetrics } from '../adapters/metrics';
import { SqsQueue } from '../adapters/queue';
import { runtimeConfig } from '../adapters/runtime-config';
import { createSecretReader } from '../adapters/secrets';
import { Store } from '../adapters/store';
import type { ControlPorts, LoggerPort, ReportMessage, ScheduleMessage } from '../control/ports';

export const logger = new Logger({ serviceName: 'akanda-ci' });

/** The invocation's metrics; `withMetrics` writes them when the handler ends. */
export const metrics = new EmfMetrics({
  onError: (message, error) => logger.warn(message, { error: error instanceof Error ? error.message : String(error) }),
});

/** Wraps a handler so the metrics it recorded are flushed as EMF lines when it returns or throws. */
export function withMetrics<A extends unknown[], R>(handler: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return flushingMetrics(metrics, handler);
}

let ports: ControlPorts | undefined;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
}

function loggerPort(log: Logger): LoggerPort {
  return {
    info: (message, fields) => log.info(message, fields ?? {}),
    warn: (message, fields) => log.warn(message, fields ?? {}),
    error: (message, fields) => log.error(message, fields ?? {}),
  };
}

export function awsPorts(): ControlPorts {
  if (ports) return ports;
  const config = runtimeConfig();
  const secrets = createSecretReader();
  const sqs = new SQSClient({});
  const publicBaseUrl = env('PUBLIC_BASE_URL').replace(/\/+$/, '');
  const s3 = createS3Client();
  ports = {
    config,
    store: new Store(env('TABLE_NAME')),
    scheduleQueue: new SqsQueue<ScheduleMessage>(sqs, env('SCHEDULE_QUEUE_URL')),
    reportQueue: new SqsQueue<ReportMessage>(sqs, env('REPORT_QUEUE_URL')),
    fleet: new Ec2Fleet({
      client: new EC2Client({}),
      launchTemplates: parseLaunchTemplates(env('LAUNCH_TEMPLATES')),
      subnetIds: parseSubnetIds(env('SUBNET_IDS')),
      // The node API itself never launches (it only terminates), so it is not given its own URL.
      nodeApiUrl: process.env.NODE_API_URL ?? 'https://node-api.invalid',
    }),
    gerrit: new GerritClient({
      baseUrl: config.gerrit.url,
      username: config.gerrit.username,
      password: () => secrets(env('GERRIT_PASSWORD_SECRET_ARN')),
    }),
    artifacts: createLogArtifacts({ client: s3, bucket: env('LOGS_BUCKET'), publicBaseUrl }),
    now: () => Date.now() / 1000,
    logger: loggerPort(logger),
    webhookToken: () => secrets(env('WEBHOOK_TOKEN_SECRET_ARN')),
    reportRetry: { delaySeconds: reviewRetryDelayFor, maxAttempts: REVIEW_MAX_ATTEMPTS },
    imageBaseUrl: publicBaseUrl,
    metrics,
    images: s3ImagePublisher({
      s3,
      logsBucket: env('LOGS_BUCKET'),
      imagesBucket: env('IMAGES_BUCKET'),
      cloudFront: { client: new CloudFrontClient({}), distributionId: env('DISTRIBUTION_ID') },
    }),
  };
  return ports;
}
