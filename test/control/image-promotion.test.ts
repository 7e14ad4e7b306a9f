/**
 * Publishing a post build's appliance image (lambda/control/image-promotion.ts) through the real
 * S3 publisher on s3rver; only CloudFront is mocked, with the exact CreateInvalidation input asserted.
 * Every publish keeps a rolling image per branch (the one the planner gives that branch's jobs);
 * master's is also the root latest image. The cases run in order on one images bucket: later ones
 * check that earlier rolling images were left alone.
 */
import { createHash } from 'node:crypto';
import {
  CloudFrontClient,
  CreateInvalidationCommand,
  type CreateInvalidationCommandInput,
} from '@aws-sdk/client-cloudfront';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { s3ImagePublisher, type ImagePublisher } from '../../lambda/adapters/image-publisher';
import { promoteImage } from '../../lambda/control/image-promotion';
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

beforeAll(async () => {
  s3 = await startS3rver([LOGS, IMAGES]);
  publisher = s3ImagePublisher({
    s3: s3.client,
    logsBucket: LOGS,
    imagesBucket: IMAGES,
    cloudFront: { client: new CloudFrontClient({ region: 'us-east-1' }), distributionId: DISTRIBUTION },
  });
});

afterAll(() => s3.close());

beforeEach(() => {
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
  return { buildId, logKeyPrefix, sha: createHash('sha256').update(image).digest('hex') };
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

it("a stable branch's publish replaces that branch's rolling image, never the root (master's) one", async () => {
  const build = await builtImage('kilo image v1\n');
  const buildset = { project: 'stackforge/akanda-appliance', branch: 'stable/kilo', revision: revision('b') };
  const promotion = await promoteImage(publisher, config, buildset, build, NOW);
  expect(promotion).toEqual({
    promoted: true,
    imageKey: `images/stable-kilo/${revision('b')}/akanda-appliance.qcow2`,
    branchLatestKey: 'images/stable-kilo/akanda-appliance-latest.qcow2',
    latest: false,
  });
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
  const buildset = { project: 'stackforge/akanda-appliance-builder', branch: 'master', revision: revision('c') };
  const promotion = await promoteImage(publisher, config, buildset, build, NOW);
  expect(promotion).toEqual({
    promoted: true,
    imageKey: `images/master/${revision('c')}/akanda-appliance.qcow2`,
    branchLatestKey: 'images/master/akanda-appliance-latest.qcow2',
    latest: true,
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
  const buildset = { project: 'stackforge/akanda-appliance', branch: 'feature/c++', revision: revision('d') };
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
  const buildset = { project: 'stackforge/akanda-appliance', branch: 'stable/kilo', revision: revision('e') };
  expect(await promoteImage(publisher, config, buildset, build, NOW)).toEqual({
    promoted: false,
    reason: 'akanda-appliance.qcow2 does not match its .sha256',
  });
  expect(await imageKeys()).toEqual(before);
  expect(await imageText('images/stable-kilo/akanda-appliance-latest.qcow2')).toBe('kilo image v1\n');
  expect(invalidations()).toEqual([]);
});
