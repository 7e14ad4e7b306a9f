/**
 * Embedded stand-ins for DynamoDB (dynalite) and S3 (s3rver) on 127.0.0.1, so local mode and the
 * tests use the same SDK clients as AWS with only an endpoint override.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { join } from 'node:path';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** Credentials the emulators accept; they are not secrets. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
export const LOCAL_REGION = 'us-east-1';

interface DynaliteOptions {
  path?: string;
  createTableMs?: number;
}
type DynaliteFactory = (options: DynaliteOptions) => Server;

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

export interface Emulator {
  endpoint: string;
  close(): Promise<void>;
}

/** dynalite, persisted under `dataDir` when given (in memory otherwise). */
export async function startDynalite(dataDir?: string): Promise<Emulator> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dynalite = require('dynalite') as DynaliteFactory;
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const server = dynalite(dataDir ? { path: dataDir, createTableMs: 0 } : { createTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** s3rver with the given buckets, data under `dataDir`. */
export async function startS3rver(dataDir: string, buckets: readonly string[]): Promise<Emulator> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as S3rverClass;
  mkdirSync(dataDir, { recursive: true });
  const instance = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dataDir,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const address = await instance.run();
  return { endpoint: `http://127.0.0.1:${address.port}`, close: () => instance.close() };
}

/** Creates the control-plane table with the keys of docs/design.md, if it does not exist. */
export async function ensureTable(endpoint: string, tableName: string): Promise<void> {
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (error) {
    if ((error as { name?: string }).name !== 'ResourceNotFoundException') throw error;
  }
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'gsi1pk', AttributeType: 'S' },
        { AttributeName: 'gsi1sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byState',
          KeySchema: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    }),
  );
  client.destroy();
}

export function dataPath(dataDir: string, name: string): string {
  return join(dataDir, name);
}
