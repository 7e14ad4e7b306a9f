/**
 * Publishing a post build's appliance image (lambda/control/image-promotion.ts) through the real
 * S3 publisher on s3rver; only CloudFront is mocked, with the exact CreateInvalidation input asserted.
 * Every publish keeps a rolling image per branch (the one the planner gives that branch's jobs);
 * master's is also the root latest image. The cases run in order on one images bucket: later ones
 * check that earlier rolling images were left alone.
 *
 * s3rver ignores CopySourceIfMatch, so a middleware on the test's S3 client records every
 * CopyObject input the publisher sends and applies that precondition as S3 does (412
 * PreconditionFailed when the source's ETag differs), against s3rver's real objects.
 */
import { createHash } from 'node:crypto';
import {
  CloudFrontClient,
  CreateInvalidationCommand,
  type CreateInvalidationCommandInput,
} from '@aws-sdk/client-cloudfront';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3ServiceException,
  type CopyObjectCommandInput,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { s3ImagePublisher, type ImagePublisher } from '../../lambda/adapters/image-publisher';
import { promoteImage, refUpdatedAt } from '../../lambda/control/image-promotion';
import { prebuiltImageUrl } from '../../lambda/core/planner';
import { smallConfig } from '../core/support';
import { startS3rver, type LocalS3 } from '../support/s3rver';

const LOGS = 'logs';
const IMAGES = 'images';
const DISTRIBUTION = 'E2EXAMPLE0DIST';
const NOW = 1_764_000_000;
const CLOCK = 1_764_000_123_456;
const config = smallConfig();
const cloudFront = mockClient(CloudFrontClient);

let s3: LocalS3;
let publisher: ImagePublisher;
let builds = 0;
/** Every CopyObject input the publisher sent, in order. */
let copies: CopyObjectCommandInput[] = [];
/** Runs once before the next CopyObject reaches S3 (a node re-uploading its artifact meanwhile). */
let beforeNextCopy: (() => Promise<void>) | undefined;

/** S3's CopySourceIfMatch, which s3rver ignores: a 412 PreconditionFailed when the source's ETag differs. */
async function checkCopySource(input: CopyObjectCommandInput): Promise<void> {
  if (input.CopySourceIfMatch === undefined) return;
  const [bucket, ...key] = (input.CopySource ?? '').split('/');
  const head = await s3.client.send(
    new HeadObjectCommand({ Bucket: bucket, Key: key.map(decodeURIComponent).join('/') }),
  );
  if (head.ETag !== input.CopySourceIfMatch) {
    throw new S3ServiceException({
      name: 'PreconditionFailed',
      $fault: 'client',
      $metadata: { httpStatusCode: 412 },
      message: 'At least one of the pre-conditions you specified did not hold',
    });
  }
}

beforeAll(async () => {
  s3 = await startS3rver([LOGS, IMAGES]);
  s3.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'CopyObjectCommand') {
        const input = args.input as CopyObjectCommandInput;
        copies.push(input);
        const tamper = beforeNextCopy;
        beforeNextCopy = undefined;
        await tamper?.();
        await checkCopySource(input);
      }
      return next(args);
    },
    { step: 'initialize', name: 'recordAndCheckCopies' },
  );
  publisher = s3ImagePublisher({
    s3: s3.client,
    logsBucket: LOGS,
    imagesBucket: IMAGES,
    cloudFront: { client: new CloudFrontClient({ region: 'us-east-1' }), distributionId: DISTRIBUTION },
  });
});

afterAll(() => s3.close());

beforeEach(() => {
  copies = [];
  beforeNextCopy = undefined;
  cloudFront.reset();
  cloudFront.on(CreateInvalidationCommand).resolves({});
  jest.spyOn(Date, 'now').mockReturnValue(CLOCK);
});

afterEach(() => jest.restoreAllMocks());

/** A finished build whose artifacts hold `image` and a .sha256 (of `checksumOf`, the image by default). */
async function builtImage(image: string, checksumOf = image) {
  const buildId = `build-${++builds}`;
  const logKeyPrefix = `logs/post/stackforge/akanda-appliance/${'a'.repeat(40)}/image/${buildId}/`;
  const put = (name: string, body: string) =>
    s3.client.send(new PutObjectCommand({ Bucket: LOGS, Key: `${logKeyPrefix}artifacts/${name}`, Body: body }));
  const sha = createHash('sha256').update(checksumOf).digest('hex');
  await put('akanda-appliance.qcow2', image);
  await put('akanda-appliance.qcow2.sha256', `${sha}  akanda-appliance.qcow2\n`);
  await put('manifest.json', '{"elements":["akanda"]}\n');
  const imageKey = `${logKeyPrefix}artifacts/akanda-appliance.qcow2`;
  const { ETag: etag } = await s3.client.send(new HeadObjectCommand({ Bucket: LOGS, Key: imageKey }));
  return { buildId, logKeyPrefix, imageKey, etag, sha: createHash('sha256').update(image).digest('hex') };
}

/** A post buildset for the merge of `revision` to `branch`, whose ref-updated event Gerrit made at `refUpdatedAt`. */
function postBuildset(branch: string, revision: string, refUpdatedAt: number, project = 'stackforge/akanda-appliance') {
  const event = {
    type: 'ref-updated',
    refUpdate: { oldRev: '0'.repeat(40), newRev: revision, refName: branch, project },
    eventCreatedOn: refUpdatedAt,
  };
  return { project, branch, revision, eventJson: JSON.stringify(event), createdAt: refUpdatedAt + 2 };
}

async function imageText(key: string): Promise<string> {
  const object = await s3.client.send(new GetObjectCommand({ Bucket: IMAGES, Key: key }));
  return (await object.Body?.transformToString('utf8')) ?? '';
}

async function imageKeys(): Promise<string[]> {
  const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: IMAGES }));
  return (listed.Contents ?? []).map((object) => object.Key ?? '').sort();
}

function invalidation(paths: string[]): CreateInvalidationCommandInput {
  return {
    DistributionId: DISTRIBUTION,
    InvalidationBatch: { CallerReference: `akanda-ci-${CLOCK}`, Paths: { Quantity: paths.length, Items: paths } },
  };
}

function invalidations(): CreateInvalidationCommandInput[] {
  return cloudFront.commandCalls(CreateInvalidationCommand).map((call) => call.args[0].input);
}

const revision = (c: string) => c.repeat(40);
const IMAGE = 'akanda-appliance.qcow2';
const QCOW2 = 'application/octet-stream';

it("a stable branch's publish replaces that branch's rolling image, never the root (master's) one", async () => {
  const build = await builtImage('kilo image v1\n');
  const buildset = postBuildset('stable/kilo', revision('b'), 1_000);
  const promotion = await promoteImage(publisher, config, buildset, build, NOW);
  expect(promotion).toEqual({
    promoted: true,
    imageKey: `images/stable-kilo/${revision('b')}/akanda-appliance.qcow2`,
    branchLatestKey: 'images/stable-kilo/akanda-appliance-latest.qcow2',
    latest: false,
    kept: [],
  });
  // Both image copies are of the object that was hashed: S3 refuses them if it changed since.
  const copy = (Key: string, source: string, ContentType: string, ifMatch?: string): CopyObjectCommandInput => ({
    Bucket: IMAGES,
    Key,
    CopySource: `${LOGS}/${build.logKeyPrefix}artifacts/${source}`,
    ...(ifMatch === undefined ? {} : { CopySourceIfMatch: ifMatch }),
    MetadataDirective: 'REPLACE',
    ContentType,
  });
  expect(build.etag).toMatch(/^"[0-9a-f]{32}"$/);
  expect(copies).toEqual([
    copy(`images/stable-kilo/${revision('b')}/akanda-appliance.qcow2`, IMAGE, QCOW2, build.etag),
    copy(`images/stable-kilo/${revision('b')}/manifest.json`, 'manifest.json', 'application/json'),
    copy('images/stable-kilo/akanda-appliance-latest.qcow2', IMAGE, QCOW2, build.etag),
  ]);
  expect(await imageKeys()).toEqual([
    'images/stable-kilo/akanda-appliance-latest.qcow2',
    'images/stable-kilo/akanda-appliance-latest.qcow2.sha256',
    `images/stable-kilo/${revision('b')}/akanda-appliance.qcow2`,
    `images/stable-kilo/${revision('b')}/akanda-appliance.qcow2.sha256`,
    `images/stable-kilo/${revision('b')}/manifest.json`,
    'images/stable-kilo/latest.json',
  ]);
  expect(await imageText('images/stable-kilo/akanda-appliance-latest.qcow2')).toBe('kilo image v1\n');
  expect(await imageText('images/stable-kilo/akanda-appliance-latest.qcow2.sha256')).toBe(
    `${build.sha}  akanda-appliance-latest.qcow2\n`,
  );
  expect(JSON.parse(await imageText('images/stable-kilo/latest.json'))).toEqual({
    image: `/images/stable-kilo/${revision('b')}/akanda-appliance.qcow2`,
    sha256: build.sha,
    project: 'stackforge/akanda-appliance',
    branch: 'stable/kilo',
    revision: revision('b'),
    buildId: build.buildId,
    refUpdatedAt: 1_000,
    publishedAt: '2025-11-24T16:00:00.000Z',
  });
  expect(invalidations()).toEqual([
    invalidation([
      '/images/stable-kilo/akanda-appliance-latest.qcow2',
      '/images/stable-kilo/akanda-appliance-latest.qcow2.sha256',
      '/images/stable-kilo/latest.json',
    ]),
  ]);
  // The planner points an unpinned stable/kilo job at exactly this object.
  expect(prebuiltImageUrl(config, 'stable/kilo', 'https://cdn.example.org')).toBe(
    'https://cdn.example.org/images/stable-kilo/akanda-appliance-latest.qcow2',
  );
});

it("master's publish replaces its branch rolling image and the root one, and invalidates all six paths", async () => {
  const build = await builtImage('master image v2\n');
  const buildset = postBuildset('master', revision('c'), 2_000, 'stackforge/akanda-appliance-builder');
  const promotion = await promoteImage(publisher, config, buildset, build, NOW);
  expect(promotion).toEqual({
    promoted: true,
    imageKey: `images/master/${revision('c')}/akanda-appliance.qcow2`,
    branchLatestKey: 'images/master/akanda-appliance-latest.qcow2',
    latest: true,
    kept: [],
  });
  for (const image of ['akanda-appliance-latest.qcow2', 'images/master/akanda-appliance-latest.qcow2']) {
    expect(await imageText(image)).toBe('master image v2\n');
    expect(await imageText(`${image}.sha256`)).toBe(`${build.sha}  akanda-appliance-latest.qcow2\n`);
  }
  expect(await imageText('latest.json')).toBe(await imageText('images/master/latest.json'));
  expect(JSON.parse(await imageText('latest.json'))).toMatchObject({ branch: 'master', revision: revision('c') });
  // The stable branch's rolling image is untouched.
  expect(await imageText('images/stable-kilo/akanda-appliance-latest.qcow2')).toBe('kilo image v1\n');
  expect(invalidations()).toEqual([
    invalidation([
      '/images/master/akanda-appliance-latest.qcow2',
      '/images/master/akanda-appliance-latest.qcow2.sha256',
      '/images/master/latest.json',
      '/akanda-appliance-latest.qcow2',
      '/akanda-appliance-latest.qcow2.sha256',
      '/latest.json',
    ]),
  ]);
});

it('invalidates the percent-encoded paths clients request for a branch with a "+"', async () => {
  const build = await builtImage('c++ image\n');
  const buildset = postBuildset('feature/c++', revision('d'), 3_000);
  expect(await promoteImage(publisher, config, buildset, build, NOW)).toMatchObject({
    branchLatestKey: 'images/feature-c++/akanda-appliance-latest.qcow2',
  });
  expect(await imageText('images/feature-c++/akanda-appliance-latest.qcow2')).toBe('c++ image\n');
  expect(invalidations()).toEqual([
    invalidation([
      '/images/feature-c%2B%2B/akanda-appliance-latest.qcow2',
      '/images/feature-c%2B%2B/akanda-appliance-latest.qcow2.sha256',
      '/images/feature-c%2B%2B/latest.json',
    ]),
  ]);
});

it('an image that does not match its .sha256 publishes nothing and invalidates nothing', async () => {
  const before = await imageKeys();
  const build = await builtImage('tampered\n', 'what was checksummed\n');
  const buildset = postBuildset('stable/kilo', revision('e'), 4_000);
  expect(await promoteImage(publisher, config, buildset, build, NOW)).toEqual({
    promoted: false,
    reason: 'akanda-appliance.qcow2 does not match its .sha256',
  });
  expect(await imageKeys()).toEqual(before);
  expect(await imageText('images/stable-kilo/akanda-appliance-latest.qcow2')).toBe('kilo image v1\n');
  expect(invalidations()).toEqual([]);
});

it('an image replaced on the logs bucket after it was hashed publishes nothing', async () => {
  const before = await imageKeys();
  const build = await builtImage('the image that was checked\n');
  // The node's upload right outlives its build: it swaps the image between the hash and the copy.
  beforeNextCopy = async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: LOGS, Key: build.imageKey, Body: 'swapped\n' }));
  };
  const buildset = postBuildset('stable/kilo', revision('f'), 5_000);
  expect(await promoteImage(publisher, config, buildset, build, NOW)).toEqual({
    promoted: false,
    reason: 'akanda-appliance.qcow2 changed after it was hashed (copy refused by its ETag)',
  });
  expect(copies).toEqual([expect.objectContaining({ CopySourceIfMatch: build.etag })]);
  expect(await imageKeys()).toEqual(before);
  expect(await imageText('images/stable-kilo/akanda-appliance-latest.qcow2')).toBe('kilo image v1\n');
  expect(invalidations()).toEqual([]);
});

it("a post build finishing after a newer merge's publishes its version but leaves the rolling images", async () => {
  // Master's rolling images hold revision c (ref updated at 2000); revision 1 merged before it.
  const older = await builtImage('older master image\n');
  const promotion = await promoteImage(publisher, config, postBuildset('master', revision('1'), 1_500), older, NOW);
  expect(promotion).toEqual({
    promoted: true,
    imageKey: `images/master/${revision('1')}/akanda-appliance.qcow2`,
    latest: false,
    kept: ['images/master/latest.json', 'latest.json'],
  });
  expect(await imageText(`images/master/${revision('1')}/akanda-appliance.qcow2`)).toBe('older master image\n');
  for (const image of ['akanda-appliance-latest.qcow2', 'images/master/akanda-appliance-latest.qcow2']) {
    expect(await imageText(image)).toBe('master image v2\n');
  }
  for (const manifest of ['latest.json', 'images/master/latest.json']) {
    expect(JSON.parse(await imageText(manifest))).toMatchObject({ revision: revision('c'), refUpdatedAt: 2_000 });
  }
  expect(invalidations()).toEqual([]);

  // A retry of the current one (the same ref update) and then a newer merge replace them again.
  const current = await builtImage('master image v2\n');
  expect(
    await promoteImage(publisher, config, postBuildset('master', revision('c'), 2_000), current, NOW),
  ).toMatchObject({ promoted: true, latest: true, kept: [] });
  const newer = await builtImage('master image v3\n');
  expect(await promoteImage(publisher, config, postBuildset('master', revision('7'), 2_001), newer, NOW)).toMatchObject(
    { promoted: true, latest: true, branchLatestKey: 'images/master/akanda-appliance-latest.qcow2', kept: [] },
  );
  expect(await imageText('akanda-appliance-latest.qcow2')).toBe('master image v3\n');
  expect(JSON.parse(await imageText('latest.json'))).toMatchObject({ revision: revision('7'), refUpdatedAt: 2_001 });
});

it('orders merges by the ref-updated event time, or by arrival when the event has none', () => {
  expect(refUpdatedAt(postBuildset('master', revision('a'), 1_433_001_201))).toBe(1_433_001_201);
  expect(refUpdatedAt({ eventJson: '{"type":"ref-updated"}', createdAt: 1_764_000_000 })).toBe(1_764_000_000);
  expect(refUpdatedAt({ eventJson: 'not json', createdAt: 1_764_000_001 })).toBe(1_764_000_001);
  expect(refUpdatedAt({ eventJson: '{"eventCreatedOn":"soon"}', createdAt: 1_764_000_002 })).toBe(1_764_000_002);
});
