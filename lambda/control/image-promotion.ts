/**
 * Publishing the appliance image a post-merge build produced (docs/design.md "Image artifacts").
 * The build ran merged code on an untrusted node and could only write under its own log prefix;
 * the control plane checks the image against its `.sha256` (hashing the bytes itself) and only
 * then copies it to `images/<branch>/<revision>/`. Every publish then replaces the branch's rolling
 * image (`images/<branch>/<latestImageName>`, its `.sha256`, `latest.json`), which jobs on that branch
 * download (lambda/core/image-store.ts); a merge to master also replaces the root `<latestImageName>`,
 * its `.sha256` and `latest.json`. The CDN caches `/images/*` as immutable, so the cached copies of
 * every rolling path are invalidated.
 */
import type { ImagePublisher } from '../adapters/image-publisher';
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
      /** The branch's rolling image. */
      branchLatestKey: string;
      /** Whether the root latest image (master's) was replaced too. */
      latest: boolean;
    }
  | { promoted: false; reason: string };

export async function promoteImage(
  publisher: ImagePublisher,
  config: Config,
  buildset: Pick<BuildsetRecord, 'project' | 'branch' | 'revision'>,
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
  let actual: string;
  try {
    actual = await publisher.hashLogObject(`${artifacts}${IMAGE_FILE}`);
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return { promoted: false, reason: `no ${IMAGE_FILE}` };
    throw error;
  }
  if (actual !== expected) return { promoted: false, reason: `${IMAGE_FILE} does not match its .sha256` };

  // Branch and revision were validated by the core; `/` in a branch becomes `-` to keep one level.
  const version = `images/${imageBranchDirectory(buildset.branch)}/${buildset.revision}/`;
  const imageKey = `${version}${IMAGE_FILE}`;
  await publisher.copyToImages(`${artifacts}${IMAGE_FILE}`, imageKey, QCOW2);
  await publisher.putImageText(`${imageKey}.sha256`, `${actual}  ${IMAGE_FILE}\n`, TEXT);
  try {
    await publisher.copyToImages(`${artifacts}manifest.json`, `${version}manifest.json`, 'application/json');
  } catch (error) {
    if ((error as { name?: string }).name !== 'NoSuchKey') throw error;
  }

  const latestName = config.appliance.latestImageName;
  const record = {
    image: `/${imageKey}`,
    sha256: actual,
    project: buildset.project,
    branch: buildset.branch,
    revision: buildset.revision,
    buildId: build.buildId,
    publishedAt: new Date(now * 1000).toISOString(),
  };
  const manifest = `${JSON.stringify(record, null, 2)}\n`;
  const rolling = [branchRollingKeys(buildset.branch, latestName)];
  if (buildset.branch === MASTER_BRANCH) rolling.push(rootRollingKeys(latestName));
  for (const keys of rolling) {
    // The image first and its checksum after: a download in between fails its check rather than
    // passing with a stale checksum.
    await publisher.copyToImages(`${artifacts}${IMAGE_FILE}`, keys.image, QCOW2);
    await publisher.putImageText(keys.sha256, `${actual}  ${latestName}\n`, TEXT);
    await publisher.putImageText(keys.manifest, manifest, 'application/json');
  }
  await publisher.invalidate(rolling.flatMap(invalidationPaths));
  return {
    promoted: true,
    imageKey,
    branchLatestKey: rolling[0]!.image,
    latest: buildset.branch === MASTER_BRANCH,
  };
}

function invalidationPaths(keys: RollingImageKeys): string[] {
  return [keys.image, keys.sha256, keys.manifest].map(imageUrlPath);
}
