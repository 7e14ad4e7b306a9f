/**
 * Plain-string secrets (the Gerrit HTTP password, the webhook token) from Secrets Manager.
 *
 * A warm Lambda serves many events: a short in-memory cache saves a Secrets Manager call (and its
 * latency and cost) per event, while a rotated secret is picked up within the TTL. Concurrent
 * reads of one secret share one request. Failures are not cached, and error messages name the
 * secret's ARN and the SDK error name only, never a value.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

export interface SecretReaderOptions {
  client?: SecretsManagerClient;
  /** Default 60 s. */
  ttlMs?: number;
  /** For tests: the clock the TTL is measured with. */
  now?: () => number;
}

export class SecretError extends Error {
  override readonly name = 'SecretError';
}

export type SecretReader = (secretArn: string) => Promise<string>;

interface CacheEntry {
  value: Promise<string>;
  /** Set once the value arrived; until then concurrent callers share `value`. */
  expiresAt?: number;
}

export function createSecretReader(options: SecretReaderOptions = {}): SecretReader {
  const client = options.client ?? new SecretsManagerClient({});
  const ttlMs = options.ttlMs ?? 60_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();

  return async (secretArn: string) => {
    if (!/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/.test(secretArn)) {
      throw new SecretError(`not a Secrets Manager secret ARN: ${JSON.stringify(secretArn.slice(0, 200))}`);
    }
    const cached = cache.get(secretArn);
    if (cached && (cached.expiresAt === undefined || now() < cached.expiresAt)) return cached.value;

    const entry: CacheEntry = { value: fetchSecret(client, secretArn) };
    cache.set(secretArn, entry);
    try {
      const value = await entry.value;
      entry.expiresAt = now() + ttlMs;
      return value;
    } catch (error) {
      if (cache.get(secretArn) === entry) cache.delete(secretArn);
      throw error;
    }
  };
}

async function fetchSecret(client: SecretsManagerClient, secretArn: string): Promise<string> {
  let secretString: string | undefined;
  try {
    const output = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
    secretString = output.SecretString;
  } catch (error) {
    const name = error instanceof Error ? error.name : 'unknown error';
    throw new SecretError(`cannot read secret ${secretArn}: ${name}`);
  }
  if (secretString === undefined || secretString === '') {
    throw new SecretError(`secret ${secretArn} has no string value`);
  }
  return secretString;
}
