/**
 * The control plane's single DynamoDB table (docs/design.md, "Storage").
 *
 * Items:
 * - event dedupe   pk `EVENT#<canonical key>`  sk `EVENT`     written once (attribute_not_exists)
 * - buildset       pk `BUILDSET#<id>`          sk `BUILDSET`  gsi1 `change#<project>#<change>` / `<createdAt>#<id>`
 * - buildset sweep pk `BUILDSET#<id>`          sk `SWEEP`     gsi1 `sweep#buildset` / `<dueAt>#<id>` while open
 * - instance       pk `INSTANCE#<id>`          sk `INSTANCE`  the build a node was launched for
 * - launch lease   pk `LEASE#launch`           sk `LEASE`     one launcher at a time
 * - build          pk `BUILD#<id>`             sk `BUILD`     gsi1 `build#<state>` / `<createdAt>#<id>` while not terminal
 *
 * Every build and buildset write is conditional on the `version` the writer read, so two handlers
 * racing on one item cannot both win: the loser gets `false` and re-reads. No transactions are
 * used (dynalite has none); writes are ordered so a crash between two of them is repaired by a
 * retry (ids are deterministic, puts are create-if-absent).
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DeleteCommand,
  type BatchGetCommandOutput,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { type BuildState, isTerminal } from '../core/lifecycle';

/** The states a build waits or works in; only these are in the state index. */
export type ActiveBuildState = 'queued' | 'launching' | 'running';

/** What the store itself needs to know about a build; the control plane keeps more fields. */
export interface StoredBuild {
  buildId: string;
  buildsetId: string;
  state: BuildState;
  /** Epoch seconds (fractions allowed) the build was created: the FIFO order of the queue. */
  createdAt: number;
  /** Epoch seconds it became terminal; sets the TTL. */
  finishedAt?: number;
  version: number;
}

export interface StoredBuildset {
  buildsetId: string;
  project: string;
  change?: number;
  /** Epoch seconds. */
  createdAt: number;
  /** Epoch seconds the buildset was done with (reported, dropped, cancelled): sets the TTL. */
  closedAt?: number;
  version: number;
}

/** A buildset's sweep marker: when the reaper should next look whether the buildset is stuck. */
export interface BuildsetSweep {
  buildsetId: string;
  /** Epoch seconds. */
  dueAt: number;
  /** Messages the sweep has re-sent for this buildset so far. */
  nudges: number;
}

/** A new buildset is first swept this long after it was recorded (the reaper's bound for `pending`). */
export const FIRST_SWEEP_AFTER_SECONDS = 30 * 60;

/** How long finished items stay (the logs themselves live in S3 with their own retention). */
const FINISHED_TTL_SECONDS = 30 * 24 * 3600;
/** Gerrit redelivers within minutes; a week is ample. */
const EVENT_TTL_SECONDS = 7 * 24 * 3600;
/** Longer than any build may run (limits.buildTimeLimit is at most a day in practice). */
const INSTANCE_TTL_SECONDS = 2 * 24 * 3600;

export class Store {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    private readonly tableName: string,
    clientConfig: DynamoDBClientConfig = {},
  ) {
    this.doc = DynamoDBDocumentClient.from(new DynamoDBClient(clientConfig), {
      marshallOptions: { removeUndefinedValues: true },
    });
  }

  destroy(): void {
    this.doc.destroy();
  }

  /** Records an event key once; false when it was seen before (a duplicate delivery). */
  async recordEvent(key: string, buildsetIds: readonly string[], now: number): Promise<boolean> {
    return this.conditionalPut(
      {
        pk: `EVENT#${key}`,
        sk: 'EVENT',
        buildsetIds,
        receivedAt: now,
        expiresAt: Math.floor(now) + EVENT_TTL_SECONDS,
      },
      'attribute_not_exists(pk)',
    );
  }

  /** Whether an event key was recorded (the fast path for repeats). */
  async eventSeen(key: string): Promise<boolean> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: `EVENT#${key}`, sk: 'EVENT' }, ConsistentRead: true }),
    );
    return out.Item !== undefined;
  }

  async getBuildset<T extends StoredBuildset>(buildsetId: string): Promise<T | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: `BUILDSET#${buildsetId}`, sk: 'BUILDSET' },
        ConsistentRead: true,
      }),
    );
    return out.Item ? (strip(out.Item) as T) : undefined;
  }

  /**
   * Writes a buildset whose `version` is one more than the version read (0 for a new one).
   * False when someone else wrote it first (or, for a new one, it exists already).
   *
   * A new buildset gets its sweep marker first (a crash in between leaves a marker the sweep drops),
   * so every open buildset is found by `dueBuildsetSweeps` without a scan; a closed one loses it after
   * the write (a crash in between leaves one the sweep drops).
   */
  async putBuildset<T extends StoredBuildset>(buildset: T): Promise<boolean> {
    if (buildset.version === 0) {
      await this.conditionalPut(
        sweepItem({
          buildsetId: buildset.buildsetId,
          dueAt: buildset.createdAt + FIRST_SWEEP_AFTER_SECONDS,
          nudges: 0,
        }),
        'attribute_not_exists(pk)',
      );
    }
    const won = await this.putBuildsetItem(buildset);
    if (won && buildset.closedAt !== undefined) await this.deleteBuildsetSweep(buildset.buildsetId);
    return won;
  }

  /** Open buildsets due for a look, the longest overdue first, at most `limit`. */
  async dueBuildsetSweeps(now: number, limit: number): Promise<BuildsetSweep[]> {
    const items = await this.queryAll<BuildsetSweep>(
      {
        TableName: this.tableName,
        IndexName: 'byState',
        KeyConditionExpression: 'gsi1pk = :pk AND gsi1sk <= :upTo',
        ExpressionAttributeValues: { ':pk': SWEEP_PARTITION, ':upTo': `${pad(now)}#~` },
        ScanIndexForward: true,
        Limit: limit,
      },
      limit,
    );
    return items.map(({ buildsetId, dueAt, nudges }) => ({ buildsetId, dueAt, nudges }));
  }

  /** Sets when the buildset is next swept (unconditionally: the reaper is the only sweeper). */
  async putBuildsetSweep(sweep: BuildsetSweep): Promise<void> {
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: sweepItem(sweep) }));
  }

  async deleteBuildsetSweep(buildsetId: string): Promise<void> {
    await this.doc.send(
      new DeleteCommand({ TableName: this.tableName, Key: { pk: `BUILDSET#${buildsetId}`, sk: 'SWEEP' } }),
    );
  }

  private async putBuildsetItem<T extends StoredBuildset>(buildset: T): Promise<boolean> {
    const item: Record<string, unknown> = {
      ...(buildset as StoredBuildset),
      pk: `BUILDSET#${buildset.buildsetId}`,
      sk: 'BUILDSET',
    };
    if (buildset.change !== undefined) {
      item.gsi1pk = `change#${buildset.project}#${buildset.change}`;
      item.gsi1sk = `${pad(buildset.createdAt)}#${buildset.buildsetId}`;
    }
    if (buildset.closedAt !== undefined) item.expiresAt = Math.floor(buildset.closedAt) + FINISHED_TTL_SECONDS;
    return this.versionedPut(item, buildset.version);
  }

  /** Every buildset recorded for a change, oldest first. */
  async buildsetsOfChange<T extends StoredBuildset>(project: string, change: number): Promise<T[]> {
    return this.queryAll<T>({
      TableName: this.tableName,
      IndexName: 'byState',
      KeyConditionExpression: 'gsi1pk = :pk',
      ExpressionAttributeValues: { ':pk': `change#${project}#${change}` },
    });
  }

  async getBuild<T extends StoredBuild>(buildId: string): Promise<T | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: `BUILD#${buildId}`, sk: 'BUILD' }, ConsistentRead: true }),
    );
    return out.Item ? (strip(out.Item) as T) : undefined;
  }

  async getBuilds<T extends StoredBuild>(buildIds: readonly string[]): Promise<T[]> {
    const found = new Map<string, T>();
    for (let i = 0; i < buildIds.length; i += 100) {
      let keys: Record<string, unknown>[] | undefined = buildIds
        .slice(i, i + 100)
        .map((id) => ({ pk: `BUILD#${id}`, sk: 'BUILD' }));
      while (keys && keys.length > 0) {
        const out: BatchGetCommandOutput = await this.doc.send(
          new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: keys, ConsistentRead: true } } }),
        );
        for (const item of out.Responses?.[this.tableName] ?? []) {
          const build = strip(item) as T;
          found.set(build.buildId, build);
        }
        keys = out.UnprocessedKeys?.[this.tableName]?.Keys;
      }
    }
    return buildIds.flatMap((id) => {
      const build = found.get(id);
      return build ? [build] : [];
    });
  }

  /** Conditional write of a build (see putBuildset); the build leaves the state index when terminal. */
  async putBuild<T extends StoredBuild>(build: T): Promise<boolean> {
    const item: Record<string, unknown> = { ...(build as StoredBuild), pk: `BUILD#${build.buildId}`, sk: 'BUILD' };
    if (isTerminal(build.state)) {
      item.expiresAt = Math.floor(build.finishedAt ?? build.createdAt) + FINISHED_TTL_SECONDS;
    } else {
      item.gsi1pk = `build#${build.state}`;
      item.gsi1sk = `${pad(build.createdAt)}#${build.buildId}`;
    }
    return this.versionedPut(item, build.version);
  }

  /** Builds in a non-terminal state, oldest queued first (the FIFO of the concurrency limit). */
  async buildsInState<T extends StoredBuild>(state: ActiveBuildState, limit?: number): Promise<T[]> {
    return this.queryAll<T>(
      {
        TableName: this.tableName,
        IndexName: 'byState',
        KeyConditionExpression: 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': `build#${state}` },
        ScanIndexForward: true,
      },
      limit,
    );
  }

  async countBuildsInState(state: ActiveBuildState): Promise<number> {
    let count = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: 'byState',
          KeyConditionExpression: 'gsi1pk = :pk',
          ExpressionAttributeValues: { ':pk': `build#${state}` },
          Select: 'COUNT',
          ExclusiveStartKey: start,
        }),
      );
      count += out.Count ?? 0;
      start = out.LastEvaluatedKey;
    } while (start);
    return count;
  }

  /** Remembers which build a node was launched for (EC2 events name only the instance). */
  async recordInstance(instanceId: string, buildId: string, now: number): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          pk: `INSTANCE#${instanceId}`,
          sk: 'INSTANCE',
          buildId,
          expiresAt: Math.ceil(now) + INSTANCE_TTL_SECONDS,
        },
      }),
    );
  }

  async buildOfInstance(instanceId: string): Promise<string | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: `INSTANCE#${instanceId}`, sk: 'INSTANCE' } }),
    );
    const buildId = out.Item?.buildId;
    return typeof buildId === 'string' ? buildId : undefined;
  }

  /**
   * A lease on `name` for `seconds`, so one holder at a time does a job that counts rather than
   * reserves (launching under the node limit). An expired lease is taken over.
   */
  async acquireLease(name: string, owner: string, now: number, seconds: number): Promise<boolean> {
    return this.conditionalPut(
      { pk: `LEASE#${name}`, sk: 'LEASE', owner, until: now + seconds, expiresAt: Math.ceil(now + seconds + 3600) },
      'attribute_not_exists(pk) OR #until < :now',
      { ':now': now },
      { '#until': 'until' },
    );
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: `LEASE#${name}`, sk: 'LEASE' },
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner },
        }),
      );
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
    }
  }

  private async versionedPut(item: Record<string, unknown>, version: number): Promise<boolean> {
    if (version === 0) return this.conditionalPut(item, 'attribute_not_exists(pk)');
    return this.conditionalPut(item, 'version = :previous', { ':previous': version - 1 });
  }

  /**
   * A put under a condition. Every write carries a fresh `writeId`: when the SDK retries a request
   * whose first try was applied (a reset keep-alive connection, a timeout), the retry fails its
   * condition against our own write, and reading the item back tells that it was ours after all.
   */
  private async conditionalPut(
    item: Record<string, unknown>,
    condition: string,
    values?: Record<string, unknown>,
    names?: Record<string, string>,
  ): Promise<boolean> {
    const writeId = randomUUID();
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...item, writeId },
          ConditionExpression: condition,
          ExpressionAttributeValues: values,
          ExpressionAttributeNames: names,
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
      const out = await this.doc.send(
        new GetCommand({ TableName: this.tableName, Key: { pk: item.pk, sk: item.sk }, ConsistentRead: true }),
      );
      return out.Item?.writeId === writeId;
    }
  }

  private async queryAll<T>(input: QueryCommandInput, limit?: number): Promise<T[]> {
    const items: T[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      for (const item of out.Items ?? []) items.push(strip(item) as T);
      start = out.LastEvaluatedKey;
    } while (start && (limit === undefined || items.length < limit));
    return limit === undefined ? items : items.slice(0, limit);
  }
}

const SWEEP_PARTITION = 'sweep#buildset';

function sweepItem(sweep: BuildsetSweep): Record<string, unknown> {
  return {
    pk: `BUILDSET#${sweep.buildsetId}`,
    sk: 'SWEEP',
    gsi1pk: SWEEP_PARTITION,
    gsi1sk: `${pad(sweep.dueAt)}#${sweep.buildsetId}`,
    ...sweep,
    // A marker nobody reschedules any more (a crash between writes) goes in time on its own.
    expiresAt: Math.floor(sweep.dueAt) + FINISHED_TTL_SECONDS,
  };
}

/** Drops the table's key attributes so callers see only their own record. */
function strip(item: Record<string, unknown>): Record<string, unknown> {
  const { pk: _pk, sk: _sk, gsi1pk: _g1, gsi1sk: _g2, expiresAt: _e, writeId: _w, ...rest } = item;
  return rest;
}

/** Zero-padded epoch milliseconds, so the index sorts numerically. */
function pad(seconds: number): string {
  return String(Math.max(0, Math.floor(seconds * 1000))).padStart(15, '0');
}

/** A one-time token: 256 random bits, URL-safe. Only its hash is stored. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatches(token: unknown, storedHash: string | undefined): boolean {
  if (typeof token !== 'string' || token.length === 0 || token.length > 200 || !storedHash) return false;
  const presented = Buffer.from(hashToken(token), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}
