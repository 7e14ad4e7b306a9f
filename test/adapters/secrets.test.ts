import {
  GetSecretValueCommand,
  GetSecretValueCommandInput,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { createSecretReader, SecretError } from '../../lambda/adapters/secrets';

const PASSWORD_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:akanda-ci/gerrit-password-AbCdEf';
const TOKEN_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:akanda-ci/webhook-token-GhIjKl';

const secretsManager = mockClient(SecretsManagerClient);
let clock: number;

beforeEach(() => {
  secretsManager.reset();
  clock = 1_000_000;
});

function reader(ttlMs = 60_000) {
  return createSecretReader({ client: new SecretsManagerClient({ region: 'eu-west-1' }), ttlMs, now: () => clock });
}

function inputs(): GetSecretValueCommandInput[] {
  return secretsManager.commandCalls(GetSecretValueCommand).map((call) => call.args[0].input);
}

it('reads the secret string by ARN', async () => {
  secretsManager.on(GetSecretValueCommand, { SecretId: PASSWORD_ARN }).resolves({ SecretString: 'hunter2' });
  expect(await reader()(PASSWORD_ARN)).toBe('hunter2');
  const expected: GetSecretValueCommandInput[] = [{ SecretId: PASSWORD_ARN }];
  expect(inputs()).toEqual(expected);
});

it('serves from the cache within the TTL and reads again after it, per secret', async () => {
  secretsManager
    .on(GetSecretValueCommand, { SecretId: PASSWORD_ARN })
    .resolvesOnce({ SecretString: 'old' })
    .resolves({ SecretString: 'rotated' });
  secretsManager.on(GetSecretValueCommand, { SecretId: TOKEN_ARN }).resolves({ SecretString: 'token' });
  const read = reader(60_000);

  expect(await read(PASSWORD_ARN)).toBe('old');
  clock += 59_999;
  expect(await read(PASSWORD_ARN)).toBe('old');
  expect(await read(TOKEN_ARN)).toBe('token');
  clock += 1;
  expect(await read(PASSWORD_ARN)).toBe('rotated');
  expect(inputs()).toEqual([{ SecretId: PASSWORD_ARN }, { SecretId: TOKEN_ARN }, { SecretId: PASSWORD_ARN }]);
});

it('shares one request between concurrent readers', async () => {
  secretsManager.on(GetSecretValueCommand).resolves({ SecretString: 'hunter2' });
  const read = reader();
  expect(await Promise.all([read(PASSWORD_ARN), read(PASSWORD_ARN), read(PASSWORD_ARN)])).toEqual([
    'hunter2',
    'hunter2',
    'hunter2',
  ]);
  expect(inputs()).toHaveLength(1);
});

it('does not cache failures, and names the ARN and error but no value', async () => {
  secretsManager
    .on(GetSecretValueCommand)
    .rejectsOnce(new ResourceNotFoundException({ message: 'not found', $metadata: {} }))
    .resolves({ SecretString: 'hunter2' });
  const read = reader();

  const error = await read(PASSWORD_ARN).catch((e: unknown) => e as Error);
  expect(error).toBeInstanceOf(SecretError);
  expect((error as Error).message).toBe(`cannot read secret ${PASSWORD_ARN}: ResourceNotFoundException`);
  expect(await read(PASSWORD_ARN)).toBe('hunter2');
  expect(inputs()).toHaveLength(2);
});

it('refuses binary and empty secrets', async () => {
  secretsManager
    .on(GetSecretValueCommand)
    .resolvesOnce({ SecretBinary: new Uint8Array([1, 2]) })
    .resolvesOnce({ SecretString: '' });
  const read = reader();
  await expect(read(PASSWORD_ARN)).rejects.toThrow(`secret ${PASSWORD_ARN} has no string value`);
  await expect(read(PASSWORD_ARN)).rejects.toThrow('has no string value');
});

it.each(['', 'akanda-ci/gerrit-password', 'arn:aws:s3:::bucket', `${PASSWORD_ARN}\nX-Injected: 1`])(
  'refuses %j without calling Secrets Manager',
  async (arn) => {
    await expect(reader()(arn)).rejects.toThrow(SecretError);
    expect(inputs()).toEqual([]);
  },
);
