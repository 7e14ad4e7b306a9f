/**
 * The Lambda entry points as AWS calls them: DynamoDB is dynalite (through the SDK's endpoint
 * environment variable), Gerrit is the REST stand-in; SQS, Secrets Manager and EC2 have no local
 * stand-in here and are mocked, with the exact command inputs asserted.
 */
import {
  CreateFleetCommand,
  type CreateFleetCommandInput,
  EC2Client,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  ChangeMessageVisibilityCommand,
  type ChangeMessageVisibilityCommandInput,
  SendMessageCommand,
  type SendMessageCommandInput,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { LambdaFunctionURLEvent, SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { validateConfig } from '../../lambda/core/config';
import { type Emulator, ensureTable, LOCAL_CREDENTIALS, startDynalite } from '../../lambda/local/emulators';
import { GerritStandin } from '../support/gerrit-standin';

const WEBHOOK_TOKEN = 'webhook-token-0123456789abcdef';
const GERRIT_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:gerrit-AbCdEf';
const WEBHOOK_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook-AbCdEf';
const SCHEDULE_QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/schedule';
const REPORT_QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/report';
const PROJECT = 'stackforge/akanda-rug';

const sqs = mockClient(SQSClient);
const secrets = mockClient(SecretsManagerClient);
const ec2 = mockClient(EC2Client);

let dynamo: Emulator;
let gerrit: GerritStandin;
let handlers: {
  ingest: typeof import('../../lambda/handlers/ingest');
  scheduler: typeof import('../../lambda/handlers/scheduler');
  nodeApi: typeof import('../../lambda/handlers/node-api');
  reporter: typeof import('../../lambda/handlers/reporter');
  ec2Events: typeof import('../../lambda/handlers/ec2-events');
};

beforeAll(async () => {
  dynamo = await startDynalite();
  await ensureTable(dynamo.endpoint, 'akanda-ci-test');
  gerrit = await GerritStandin.start();
  const config = validateConfig({
    gerrit: { url: gerrit.url, username: gerrit.username },
    nodes: { small: { instanceTypes: ['c8i.large', 'm8i.large'] } },
    jobs: [{ name: 'pep8', node: 'small', run: 'tox -e pep8', timeout: '30m' }],
    projects: [{ name: PROJECT, check: ['pep8'] }],
    report: { footer: 'contact: https://ci.example.org' },
  });
  Object.assign(process.env, {
    AKANDA_CI_CONFIG_JSON: JSON.stringify(config),
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    POWERTOOLS_LOG_LEVEL: 'SILENT',
    TABLE_NAME: 'akanda-ci-test',
    SCHEDULE_QUEUE_URL,
    REPORT_QUEUE_URL,
    LOGS_BUCKET: 'logs-bucket',
    IMAGES_BUCKET: 'images-bucket',
    PUBLIC_BASE_URL: 'https://d111111abcdef8.cloudfront.net',
    NODE_API_URL: 'https://abc.lambda-url.us-east-1.on.aws',
    GERRIT_PASSWORD_SECRET_ARN: GERRIT_ARN,
    WEBHOOK_TOKEN_SECRET_ARN: WEBHOOK_ARN,
    LAUNCH_TEMPLATES: JSON.stringify({
      small: {
        launchTemplateId: 'lt-0123456789abcdef0',
        instanceTypes: ['c8i.large', 'm8i.large'],
        metalFallbackTypes: [],
        onDemandFallback: true,
      },
    }),
    SUBNET_IDS: 'subnet-0123456789abcdef0,subnet-0123456789abcdef1',
    DISTRIBUTION_ID: 'E1234567890ABC',
  });
  secrets.on(GetSecretValueCommand, { SecretId: WEBHOOK_ARN }).resolves({ SecretString: WEBHOOK_TOKEN });
  secrets.on(GetSecretValueCommand, { SecretId: GERRIT_ARN }).resolves({ SecretString: gerrit.password });
  handlers = {
    ingest: await import('../../lambda/handlers/ingest'),
    scheduler: await import('../../lambda/handlers/scheduler'),
    nodeApi: await import('../../lambda/handlers/node-api'),
    reporter: await import('../../lambda/handlers/reporter'),
    ec2Events: await import('../../lambda/handlers/ec2-events'),
  };
});

afterAll(async () => {
  await gerrit.close();
  await dynamo.close();
});

beforeEach(() => {
  sqs.reset();
  ec2.reset();
  sqs.on(SendMessageCommand).resolves({ MessageId: 'm' });
});

function functionUrlEvent(method: string, rawPath: string, body: string): LambdaFunctionURLEvent {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    isBase64Encoded: false,
    body,
    requestContext: { http: { method, path: rawPath } } as LambdaFunctionURLEvent['requestContext'],
  };
}

function sqsEvent(bodies: unknown[]): SQSEvent {
  return {
    Records: bodies.map(
      (body, i) => ({ messageId: `msg-${i}`, receiptHandle: `receipt-${i}`, body: JSON.stringify(body) }) as SQSRecord,
    ),
  };
}

function sentMessages(): SendMessageCommandInput[] {
  return sqs.commandCalls(SendMessageCommand).map((call) => call.args[0].input);
}

it('ingests a webhook, hands the buildset to the schedule queue, and launches it from the scheduler', async () => {
  const change = gerrit.createChange({ project: PROJECT, files: ['akanda/rug/main.py'] });
  const body = JSON.stringify(gerrit.patchsetCreatedEvent(change.number));

  const refused = await handlers.ingest.handler(functionUrlEvent('POST', '/webhook/wrong-token', body));
  expect(refused.statusCode).toBe(401);
  expect(sentMessages()).toEqual([]);

  const accepted = await handlers.ingest.handler(functionUrlEvent('POST', `/webhook/${WEBHOOK_TOKEN}`, body));
  expect(accepted.statusCode).toBe(202);
  const { buildsets } = JSON.parse(String(accepted.body)) as { buildsets: string[] };
  expect(buildsets).toHaveLength(1);
  const expected: SendMessageCommandInput = {
    QueueUrl: SCHEDULE_QUEUE_URL,
    MessageBody: JSON.stringify({
      kind: 'buildset',
      buildsetId: buildsets[0],
      supersedes: [],
    }),
    DelaySeconds: 0,
  };
  expect(sentMessages()).toEqual([expected]);

  const again = await handlers.ingest.handler(functionUrlEvent('POST', `/webhook/${WEBHOOK_TOKEN}`, body));
  expect(again.statusCode).toBe(200);
  expect(JSON.parse(String(again.body))).toEqual({ duplicate: true });
  expect(sentMessages()).toHaveLength(1);

  ec2
    .on(CreateFleetCommand)
    .resolves({ Instances: [{ InstanceIds: ['i-0123456789abcdef0'], InstanceType: 'c8i.large', Lifecycle: 'spot' }] });
  const result = await handlers.scheduler.handler(sqsEvent([JSON.parse(String(expected.MessageBody))]));
  expect(result).toEqual({ batchItemFailures: [] });
  const fleetInputs = ec2.commandCalls(CreateFleetCommand).map((call): CreateFleetCommandInput => call.args[0].input);
  expect(fleetInputs).toHaveLength(1);
  const tags = fleetInputs[0]!.TagSpecifications?.find((spec) => spec.ResourceType === 'instance')?.Tags ?? [];
  const tag = (key: string) => tags.find((t) => t.Key === key)?.Value;
  expect(tag('akanda-ci:managed')).toBe('true');
  expect(tag('akanda-ci:api')).toBe('https://abc.lambda-url.us-east-1.on.aws');
  const buildId = tag('akanda-ci:build')!;
  const claimToken = tag('akanda-ci:claim')!;
  expect(claimToken).toMatch(/^[A-Za-z0-9_-]{43}$/);

  // The node claims with the tag's token, once.
  const claimBody = JSON.stringify({ buildId, claimToken });
  const claim = await handlers.nodeApi.handler(functionUrlEvent('POST', '/node/claim', claimBody));
  expect(claim.statusCode).toBe(200);
  const claimed = JSON.parse(String(claim.body)) as {
    job: Record<string, unknown>;
    upload: { keyPrefix: string };
    resultToken: string;
  };
  expect(claimed.job).toMatchObject({
    buildId,
    project: PROJECT,
    change: change.number,
    patchset: 1,
    jobName: 'pep8',
    run: 'tox -e pep8',
  });
  expect(claimed.upload.keyPrefix).toBe(
    `logs/${String(change.number % 100).padStart(2, '0')}/${change.number}/1/check/pep8/${buildId.slice(0, 7)}/`,
  );
  expect((await handlers.nodeApi.handler(functionUrlEvent('POST', '/node/claim', claimBody))).statusCode).toBe(401);
  // Right before uploading, the node gets a freshly signed POST for the same prefix with its result token.
  const fresh = await handlers.nodeApi.handler(
    functionUrlEvent('POST', '/node/upload', JSON.stringify({ buildId, resultToken: claimed.resultToken })),
  );
  expect(fresh.statusCode).toBe(200);
  expect((JSON.parse(String(fresh.body)) as { upload: { keyPrefix: string } }).upload.keyPrefix).toBe(
    claimed.upload.keyPrefix,
  );
  expect((await handlers.nodeApi.handler(functionUrlEvent('POST', '/node/upload', claimBody))).statusCode).toBe(401);

  ec2.on(TerminateInstancesCommand).resolves({});
  const resultBody = JSON.stringify({
    buildId,
    resultToken: claimed.resultToken,
    result: 'SUCCESS',
    elapsedSeconds: 42,
  });
  const reported = await handlers.nodeApi.handler(functionUrlEvent('POST', '/node/result', resultBody));
  expect(reported.statusCode).toBe(200);
  expect(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input)).toEqual([
    { InstanceIds: ['i-0123456789abcdef0'] },
  ]);
  const reportMessage: SendMessageCommandInput = {
    QueueUrl: REPORT_QUEUE_URL,
    MessageBody: JSON.stringify({ buildsetId: buildsets[0] }),
    DelaySeconds: 0,
  };
  expect(sentMessages()).toContainEqual(reportMessage);

  // Gerrit is overloaded: the reporter keeps the message and hides it for the backoff delay.
  gerrit.failNextReviews(1, 503);
  sqs.on(ChangeMessageVisibilityCommand).resolves({});
  const first = await handlers.reporter.handler(sqsEvent([{ buildsetId: buildsets[0] }]));
  expect(first).toEqual({ batchItemFailures: [{ itemIdentifier: 'msg-0' }] });
  const visibility: ChangeMessageVisibilityCommandInput = {
    QueueUrl: REPORT_QUEUE_URL,
    ReceiptHandle: 'receipt-0',
    VisibilityTimeout: 2,
  };
  expect(sqs.commandCalls(ChangeMessageVisibilityCommand).map((c) => c.args[0].input)).toEqual([visibility]);
  expect(gerrit.reviews).toHaveLength(0);

  await new Promise((resolve) => setTimeout(resolve, 2100)); // the visibility delay the reporter asked for
  const second = await handlers.reporter.handler(sqsEvent([{ buildsetId: buildsets[0] }]));
  expect(second).toEqual({ batchItemFailures: [] });
  expect(gerrit.reviews).toHaveLength(1);
  expect(gerrit.reviews[0]!.input).toEqual({
    message: expect.stringMatching(
      /^Build succeeded \(check pipeline\)\.\n\n- pep8 https:\/\/d111111abcdef8\.cloudfront\.net\/logs\/\S+ : SUCCESS in 42s\n\ncontact: https:\/\/ci\.example\.org$/,
    ),
    labels: { Verified: 1 },
    tag: 'autogenerated:akanda-ci',
  });
  // A redelivered message after the report changes nothing.
  expect(await handlers.reporter.handler(sqsEvent([{ buildsetId: buildsets[0] }]))).toEqual({ batchItemFailures: [] });
  expect(gerrit.reviews).toHaveLength(1);
});

it('requeues a build whose spot instance gets an interruption warning, and terminates that instance', async () => {
  const change = gerrit.createChange({ project: PROJECT });
  const body = JSON.stringify(gerrit.patchsetCreatedEvent(change.number));
  const accepted = await handlers.ingest.handler(functionUrlEvent('POST', `/webhook/${WEBHOOK_TOKEN}`, body));
  expect(accepted.statusCode).toBe(202);
  ec2
    .on(CreateFleetCommand)
    .resolves({ Instances: [{ InstanceIds: ['i-0aaaaaaaaaaaaaaa1'], InstanceType: 'c8i.large', Lifecycle: 'spot' }] });
  ec2.on(TerminateInstancesCommand).resolves({});
  const [message] = sentMessages();
  expect(await handlers.scheduler.handler(sqsEvent([JSON.parse(String(message!.MessageBody))]))).toEqual({
    batchItemFailures: [],
  });
  sqs.resetHistory();

  const warning = {
    version: '0',
    id: 'e1',
    'detail-type': 'EC2 Spot Instance Interruption Warning',
    source: 'aws.ec2',
    account: '123456789012',
    time: '2026-11-25T10:00:00Z',
    region: 'us-east-1',
    resources: ['arn:aws:ec2:us-east-1:123456789012:instance/i-0aaaaaaaaaaaaaaa1'],
    detail: { 'instance-id': 'i-0aaaaaaaaaaaaaaa1', 'instance-action': 'terminate' },
  };
  await handlers.ec2Events.handler(warning);
  expect(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input)).toEqual([
    { InstanceIds: ['i-0aaaaaaaaaaaaaaa1'] },
  ]);
  const launchAgain: SendMessageCommandInput = {
    QueueUrl: SCHEDULE_QUEUE_URL,
    MessageBody: '{"kind":"launch"}',
    DelaySeconds: 0,
  };
  expect(sentMessages()).toEqual([launchAgain]);
  // The same warning again (EventBridge delivers at least once) changes nothing.
  await handlers.ec2Events.handler(warning);
  expect(sentMessages()).toEqual([launchAgain]);
  // An instance we never launched is not ours to act on.
  await handlers.ec2Events.handler({ ...warning, detail: { 'instance-id': 'i-0bbbbbbbbbbbbbbb2' } });
  expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(1);
});

it('answers malformed node and webhook calls with 4xx', async () => {
  expect((await handlers.nodeApi.handler(functionUrlEvent('POST', '/node/claim', 'not json'))).statusCode).toBe(400);
  expect((await handlers.nodeApi.handler(functionUrlEvent('GET', '/node/claim', ''))).statusCode).toBe(405);
  expect(
    (
      await handlers.nodeApi.handler(
        functionUrlEvent('POST', '/node/result', JSON.stringify({ buildId: 'ab12', resultToken: 'x' })),
      )
    ).statusCode,
  ).toBe(401);
  expect((await handlers.ingest.handler(functionUrlEvent('GET', `/webhook/${WEBHOOK_TOKEN}`, ''))).statusCode).toBe(
    404,
  );
  expect((await handlers.ingest.handler(functionUrlEvent('POST', `/webhook/${WEBHOOK_TOKEN}`, '{'))).statusCode).toBe(
    400,
  );
  expect(sentMessages()).toEqual([]);
});
