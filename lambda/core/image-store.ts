/**
 * Where published appliance images live in the image store (the images bucket behind the CDN),
 * shared by the publisher that writes them and the planner that points jobs at them:
 *
 * - `images/<branch dir>/<revision>/akanda-appliance.qcow2` (+ `.sha256`, `manifest.json`): immutable;
 * - `images/<branch dir>/<latestImageName>` (+ `.sha256`) and `images/<branch dir>/latest.json`:
 *   each branch's rolling image, replaced by every publish from that branch;
 * - `<latestImageName>` (+ `.sha256`) and `latest.json` at the root: master's rolling image.
 *
 * Branch names were validated by the core (letters, digits, `.`, `_`, `/`, `+`, `-`).
 */

/** The branch whose rolling image is also published at the root of the store. */
export const MASTER_BRANCH = 'master';

/** One path level per branch: `stable/kilo` -> `stable-kilo`. */
export function imageBranchDirectory(branch: string): string {
  return branch.replace(/\//g, '-');
}

export interface RollingImageKeys {
  image: string;
  sha256: string;
  manifest: string;
}

/** S3 keys of a branch's rolling image, its checksum and its `latest.json`. */
export function branchRollingKeys(branch: string, latestImageName: string): RollingImageKeys {
  const directory = `images/${imageBranchDirectory(branch)}/`;
  return {
    image: `${directory}${latestImageName}`,
    sha256: `${directory}${latestImageName}.sha256`,
    manifest: `${directory}latest.json`,
  };
}

/** S3 keys of master's rolling image at the root. */
export function rootRollingKeys(latestImageName: string): RollingImageKeys {
  return { image: latestImageName, sha256: `${latestImageName}.sha256`, manifest: 'latest.json' };
}

/**
 * The URL path of a key, each segment percent-encoded (a `+` in a branch would otherwise reach S3
 * as a space). CloudFront invalidation paths use the same form as the URLs clients request.
 */
export function imageUrlPath(key: string): string {
  return `/${key.split('/').map(encodeURIComponent).join('/')}`;
}
