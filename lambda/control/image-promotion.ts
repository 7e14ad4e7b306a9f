/**
 * Publishing the appliance image a post-merge build produced (docs/design.md "Image artifacts").
 * The build ran merged code on an untrusted node and could only write under its own log prefix;
 * the control plane checks the image against its `.sha256` (hashing the bytes itself) and only
 * then copies it to `images/<branch>/<revision>/`. The node's upload right may outlive its build, so
 * every copy is conditional on the ETag of the object that was hashed: a changed image publishes
 * nothing. A publish then replaces the branch's rolling image (`images/<branch>/<latestImageName>`,
 * its `.sha256`, `latest.json`), which jobs on that branch download (lambda/core/image-store.ts); a
 * merge to master also replaces the root `<latestImageName>`, its `.sha256` and `latest.json`. Post
 * builds can finish out of order, so a rolling image is replaced only when its `latest.json` records
 * an older (or the same) ref update than this build's. The CDN caches `/images/*` as immutable, so
 * the cached copies of every rolling path replaced are invalidated.
 */
import { SourceChangedError, type HashedObject, type ImagePublisher } from '../adapters/image-publisher';
import type { Config } from '../core/config';
import {
  branchRollingKeys,
  imageBranchDirectory,
  imageUrlPath,
  MASTER_BRANCH,
  rootRollingKeys,
  type RollingImageKeys,
} from '../core/image-store';
import type { BuildRecord, BuildsetRecord } from './records';

export const IMAGE_FILE = 'akanda-appliance.qcow2';
const QCOW2 = 'application/octet-stream';
const TEXT = 'text/plain; charset=utf-8';
const SHA256_LINE = /^([0-9a-f]{64})(\s|$)/;

export type Promotion =
  | {
      promoted: true;
      imageKey: string;
      /** The branch's rolling image, when it was replaced. */
      branchLatestKey?: string;
      /** Whether the root latest image (master's) was replaced too. */
      latest: boolean;
      /** The `latest.json` of rolling images left alone because they hold a newer merge. */
      kept: string[];
    }
  | { promoted: false; reason: string };

/**
 * The order of merges on a branch: the `eventCreatedOn` (epoch seconds, Gerrit's clock) of the
 * ref-updated event that started the post buildset, or its arrival when the event has none.
 */
export function refUpdatedAt(buildset: Pick<BuildsetRecord, 'eventJson' | 'createdAt'>): number {
  try {
    const created = (JSON.parse(buildset.eventJson) as { eventCreatedOn?: unknown }).eventCreatedOn;
    if (typeof created === 'number' && Number.isFinite(created) && created > 0) return created;
  } catch {
    // An unreadable event still orders by arrival.
  }
  return buildset.createdAt;
}

export async function promoteImage(
  publisher: ImagePublisher,
  config: Config,
  buildset: Pick<BuildsetRecord, 'project' | 'branch' | 'revision' | 'eventJson' | 'createdAt'>,
  build: Pick<BuildRecord, 'buildId' | 'logKeyPrefix'>,
  now: number,
): Promise<Promotion> {
  const artifacts = `${build.logKeyPrefix}artifacts/`;
  let expected: string | undefined;
  try {
    expected = SHA256_LINE.exec((await publisher.readLogText(`${artifacts}${IMAGE_FILE}.sha256`, 4096)).trim())?.[1];
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey')
      return { promoted: false, reason: `no ${IMAGE_FILE}.sha256` };
    throw error;
  }
  if (!expected) return { promoted: false, reason: `${IMAGE_FILE}.sha256 holds no sha256` };
  let hashed: HashedObject;
  try {
    hashed = await publisher.hashLogObject(`${artifacts}${IMAGE_FILE}`);
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return { promoted: false, reason: `no ${IMAGE_FILE}` };
    throw error;
  }
  const actual = hashed.sha256;
  if (actual !== expected) return { promoted: false, reason: `${IMAGE_FILE} does not match its .sha256` };
  try {
    return await publish(publisher, config, buildset, build, hashed, now);
  } catch (error) {
    if (error instanceof SourceChangedError) {
      return { promoted: false, reason: `${IMAGE_FILE} changed after it was hashed (copy refused by its ETag)` };
    }
    throw error;
  }
}

/** Copies the hashed image (only while it is unchanged) and replaces every rolling image it is newer than. */
async function publish(
  publisher: ImagePublisher,
  config: Config,
  buildset: Pick<BuildsetRecord, 'project' | 'branch' | 'revision' | 'eventJson' | 'createdAt'>,
  build: Pick<BuildRecord, 'buildId' | 'logKeyPrefix'>,
  hashed: HashedObject,
  now: number,
): Promise<Promotion> {
  const artifacts = `${build.logKeyPrefix}artifacts/`;
  const actual = hashed.sha256;
  // Branch and revision were validated by the core; `/` in a branch becomes `-` to keep one level.
  const version = `images/${imageBranchDirectory(buildset.branch)}/${buildset.revision}/`;
  const imageKey = `${version}${IMAGE_FILE}`;
  await publisher.copyToImages(`${artifacts}${IMAGE_FILE}`, imageKey, QCOW2, hashed.etag);
  await publisher.putImageText(`${imageKey}.sha256`, `${actual}  ${IMAGE_FILE}\n`, TEXT);
  try {
    await publisher.copyToImages(`${artifacts}manifest.json`, `${version}manifest.json`, 'application/json');
  } catch (error) {
    if ((error as { name?: string }).name !== 'NoSuchKey') throw error;
  }

  const latestName = config.appliance.latestImageName;
  const order = refUpdatedAt(buildset);
  const record = {
    image: `/${imageKey}`,
    sha256: actual,
    project: buildset.project,
    branch: buildset.branch,
    revision: buildset.revision,
    buildId: build.buildId,
    refUpdatedAt: order,
    publishedAt: new Date(now * 1000).toISOString(),
  };
  const manifest = `${JSON.stringify(record, null, 2)}\n`;
  const rolling = [branchRollingKeys(buildset.branch, latestName)];
  if (buildset.branch === MASTER_BRANCH) rolling.push(rootRollingKeys(latestName));
  const replaced: RollingImageKeys[] = [];
  const kept: string[] = [];
  for (const keys of rolling) {
    if (!(await isNewerThanRolling(publisher, keys, order))) {
      kept.push(keys.manifest);
      continue;
    }
    // The image first and its checksum after: a download in between fails its check rather than
    // passing with a stale checksum.
    await publisher.copyToImages(`${artifacts}${IMAGE_FILE}`, keys.image, QCOW2, hashed.etag);
    await publisher.putImageText(keys.sha256, `${actual}  ${latestName}\n`, TEXT);
    await publisher.putImageText(keys.manifest, manifest, 'application/json');
    replaced.push(keys);
  }
  if (replaced.length > 0) await publisher.invalidate(replaced.flatMap(invalidationPaths));
  return {
    promoted: true,
    imageKey,
    ...(replaced.includes(rolling[0]!) ? { branchLatestKey: rolling[0]!.image } : {}),
    latest: rolling[1] !== undefined && replaced.includes(rolling[1]),
    kept,
  };
}

/**
 * Whether a build of the ref update at `order` may replace a rolling image: yes unless its
 * `latest.json` records a later `refUpdatedAt` (the same one is a retry or a merge in the same
 * second: replaced). A record without one (written before this rule, or unreadable) is replaced.
 */
async function isNewerThanRolling(publisher: ImagePublisher, keys: RollingImageKeys, order: number): Promise<boolean> {
  const text = await publisher.readImageText(keys.manifest, 64 * 1024);
  if (text === undefined) return true;
  let current: unknown;
  try {
    current = (JSON.parse(text) as { refUpdatedAt?: unknown }).refUpdatedAt;
  } catch {
    return true;
  }
  return typeof current !== 'number' || !Number.isFinite(current) || order >= current;
}

function invalidationPaths(keys: RollingImageKeys): string[] {
  return [keys.image, keys.sha256, keys.manifest].map(imageUrlPath);
}
