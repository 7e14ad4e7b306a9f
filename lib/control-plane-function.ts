import { join } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Config } from '../lambda/core/config';

/** The entry points of docs/design.md: lambda/handlers/<name>.ts, each exporting `handler`. */
export type HandlerName = 'ingest' | 'scheduler' | 'node-api' | 'ec2-events' | 'reaper' | 'reporter';

/** The Lambda runtime of every handler (cdk-nag AwsSolutions-L1 wants the latest Node.js). */
export const CONTROL_PLANE_RUNTIME = lambda.Runtime.NODEJS_24_X;

const REPOSITORY_ROOT = join(__dirname, '..');

/**
 * The esbuild `define` that inlines the config: `process.env.AKANDA_CI_CONFIG_JSON` becomes a string
 * literal holding the config's JSON. `appliance.latestImageUrl` stays as configured; when it is unset
 * the handlers derive it from `PUBLIC_BASE_URL` (a deploy-time token cannot be inlined at synth).
 */
export function configDefine(config: Config): Record<string, string> {
  return { 'process.env.AKANDA_CI_CONFIG_JSON': JSON.stringify(JSON.stringify(config)) };
}

export interface ControlPlaneFunctionProps {
  readonly handlerName: HandlerName;
  /** The validated config, inlined into the bundle as `process.env.AKANDA_CI_CONFIG_JSON`. */
  readonly config: Config;
  readonly environment: Readonly<Record<string, string>>;
  /** Where failed asynchronous invocations go. */
  readonly deadLetterQueue: sqs.IQueue;
  /** @default 30 seconds */
  readonly timeout?: Duration;
  /** @default 512 */
  readonly memorySize?: number;
  /** Caps what a runaway (a flood of requests, a retry loop) can cost. @default no reservation */
  readonly reservedConcurrentExecutions?: number;
  /** @default one month */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * One control-plane handler: bundled locally by esbuild (never Docker), minified and tree-shaken
 * with the AWS SDK clients inside (predictable cold starts), arm64, JSON logs with retention.
 */
export class ControlPlaneFunction extends Construct {
  readonly function: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: ControlPlaneFunctionProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An own role instead of AWSLambdaBasicExecutionRole: it may write to this log group only.
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `akanda-ci ${props.handlerName} handler`,
    });
    logGroup.grantWrite(role);
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      role,
      entry: join(REPOSITORY_ROOT, 'lambda', 'handlers', `${props.handlerName}.ts`),
      handler: 'handler',
      projectRoot: REPOSITORY_ROOT,
      depsLockFilePath: join(REPOSITORY_ROOT, 'package-lock.json'),
      runtime: CONTROL_PLANE_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(30),
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      environment: { ...props.environment },
      deadLetterQueueEnabled: true,
      deadLetterQueue: props.deadLetterQueue,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      description: `akanda-ci ${props.handlerName}`,
      bundling: {
        minify: true,
        sourceMap: false,
        format: nodejs.OutputFormat.CJS,
        // Prefer ES module entry points so esbuild can drop unused SDK code.
        mainFields: ['module', 'main'],
        externalModules: [],
        forceDockerBundling: false,
        logLevel: nodejs.LogLevel.WARNING,
        define: configDefine(props.config),
      },
    });
  }
}
