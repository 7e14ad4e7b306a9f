import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import {
  createLogArtifacts,
  createLogUploadPost,
  createS3Client,
  LogLocation,
  LogLocationError,
  logKeyPrefix,
  publicLogUrl,
} from '../../lambda/adapters/artifacts';

const BUCKET = 'akanda-ci-logs';
const SECRET = 'S3RVER';
const REVISION = '0123456789abcdef0123456789abcdef01234567';
const BUILD_ID = '7f3c2a9e-1b2c-4d5e-8f90-123456789abc';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

let s3rver: S3rverInstance;
let client: S3Client;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'artifacts-test-'));
  // s3rver ships no types.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as S3rverClass;
  s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dataDir,
    configureBuckets: [{ name: BUCKET }],
  });
  const { port } = await s3rver.run();
  client = createS3Client({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: SECRET },
  });
});

afterAll(async () => {
  client.destroy();
  await s3rver.close();
  rmSync(dataDir, { recursive: true, force: true });
});

type PolicyCondition = Record<string, string> | [string, string, string] | ['content-length-range', number, number];
interface Policy {
  expiration: string;
  conditions: PolicyCondition[];
}

function decodePolicy(fields: Record<string, string>): Policy {
  return JSON.parse(Buffer.from(fields.Policy ?? '', 'base64').toString('utf8')) as Policy;
}

/**
 * What S3 checks on a browser-based POST (AWS "Creating a POST policy"): the signature over the
 * policy, expiry, every condition, and that every form field (but the exempt ones) has a condition.
 * A condition on a field the form lacks fails, even `starts-with ""` (as S3 fails every upload
 * under a `starts-with $Content-Length ""` condition): so the uploader sends every field it may.
 */
function s3WouldAccept(
  fields: Record<string, string>,
  form: Record<string, string>,
  size: number,
  at: Date,
): { ok: boolean; why?: string } {
  const policy = decodePolicy(fields);
  const [, date, region, service] = (fields['X-Amz-Credential'] ?? '').split('/');
  let key: Buffer = createHmac('sha256', `AWS4${SECRET}`)
    .update(date ?? '')
    .digest();
  for (const part of [region, service, 'aws4_request'])
    key = createHmac('sha256', key)
      .update(part ?? '')
      .digest();
  if (
    createHmac('sha256', key)
      .update(fields.Policy ?? '')
      .digest('hex') !== fields['X-Amz-Signature']
  ) {
    return { ok: false, why: 'signature' };
  }
  if (at.getTime() >= Date.parse(policy.expiration)) return { ok: false, why: 'expired' };
  const value = (name: string) => {
    const entry = Object.entries(form).find(([k]) => k.toLowerCase() === name.toLowerCase());
    return entry?.[1];
  };
  const covered = new Set<string>();
  for (const condition of policy.conditions) {
    if (Array.isArray(condition)) {
      const [op, field, expected] = condition;
      if (op === 'content-length-range') {
        if (size < (field as unknown as number) || size > (expected as number)) return { ok: false, why: 'size' };
        continue;
      }
      const name = String(field).replace(/^\$/, '');
      covered.add(name.toLowerCase());
      const actual = value(name);
      if (actual === undefined) return { ok: false, why: name };
      if (op === 'eq' && actual !== expected) return { ok: false, why: name };
      if (op === 'starts-with' && !actual.startsWith(String(expected))) return { ok: false, why: name };
    } else {
      for (const [name, expected] of Object.entries(condition)) {
        covered.add(name.toLowerCase());
        if (value(name) !== expected) return { ok: false, why: name };
      }
    }
  }
  for (const name of Object.keys(form)) {
    const lower = name.toLowerCase();
    if (['policy', 'x-amz-signature', 'file'].includes(lower) || lower.startsWith('x-ignore-')) continue;
    if (!covered.has(lower)) return { ok: false, why: `field ${name} not in policy` };
  }
  return { ok: true };
}

async function upload(
  post: { url: string; fields: Record<string, string> },
  key: string,
  type: string,
  body: string | Buffer,
  encoding = '',
) {
  const form = new FormData();
  for (const [name, value] of Object.entries(post.fields)) form.append(name, value);
  form.set('key', key);
  form.append('Content-Type', type);
  form.append('Content-Encoding', encoding);
  form.append('file', new Blob([body], { type }), 'ignored-name');
  return fetch(post.url, { method: 'POST', body: form });
}

describe('log layout', () => {
  it.each<[LogLocation, string]>([
    [{ pipeline: 'check', change: 5, patchset: 1, job: 'pep8', buildId: BUILD_ID }, 'logs/05/5/1/check/pep8/7f3c2a9/'],
    [
      { pipeline: 'gate', change: 212345, patchset: 12, job: 'dsvm-tempest-akanda', buildId: BUILD_ID },
      'logs/45/212345/12/gate/dsvm-tempest-akanda/7f3c2a9/',
    ],
    [
      { pipeline: 'check', change: 100, patchset: 3, job: 'py27', buildId: 'ABCDEFGHJK' },
      'logs/00/100/3/check/py27/ABCDEFG/',
    ],
    [
      { pipeline: 'post', project: 'stackforge/akanda-appliance', revision: REVISION, job: 'image', buildId: BUILD_ID },
      `logs/post/stackforge/akanda-appliance/${REVISION}/image/7f3c2a9/`,
    ],
  ])('places %j at %s', (location, prefix) => {
    expect(logKeyPrefix(location)).toBe(prefix);
  });

  it.each<[string, LogLocation]>([
    ['job ..', { pipeline: 'check', change: 5, patchset: 1, job: '..', buildId: BUILD_ID }],
    ['job with slash', { pipeline: 'check', change: 5, patchset: 1, job: 'a/../../b', buildId: BUILD_ID }],
    ['job with space', { pipeline: 'check', change: 5, patchset: 1, job: 'a b', buildId: BUILD_ID }],
    ['change 0', { pipeline: 'check', change: 0, patchset: 1, job: 'pep8', buildId: BUILD_ID }],
    ['fractional patchset', { pipeline: 'check', change: 5, patchset: 1.5, job: 'pep8', buildId: BUILD_ID }],
    ['NaN change', { pipeline: 'check', change: Number.NaN, patchset: 1, job: 'pep8', buildId: BUILD_ID }],
    ['short build id', { pipeline: 'check', change: 5, patchset: 1, job: 'pep8', buildId: 'abc' }],
    ['build id with slash', { pipeline: 'check', change: 5, patchset: 1, job: 'pep8', buildId: '../../../x' }],
    ['project ..', { pipeline: 'post', project: 'a/../b', revision: REVISION, job: 'j', buildId: BUILD_ID }],
    ['absolute project', { pipeline: 'post', project: '/etc', revision: REVISION, job: 'j', buildId: BUILD_ID }],
    ['empty segment', { pipeline: 'post', project: 'a//b', revision: REVISION, job: 'j', buildId: BUILD_ID }],
    [
      'uppercase revision',
      { pipeline: 'post', project: 'a', revision: REVISION.toUpperCase(), job: 'j', buildId: BUILD_ID },
    ],
    [
      'unknown pipeline',
      { pipeline: 'nightly', change: 5, patchset: 1, job: 'j', buildId: BUILD_ID } as unknown as LogLocation,
    ],
  ])('refuses %s', (_, location) => {
    expect(() => logKeyPrefix(location)).toThrow(LogLocationError);
  });

  it('never produces a prefix with "..", an empty segment or a leading slash', () => {
    const name = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({
            pipeline: fc.constantFrom('check' as const, 'gate' as const),
            change: fc.integer({ min: -2, max: 10_000_000 }),
            patchset: fc.integer({ min: -2, max: 500 }),
            job: name,
            buildId: fc.stringMatching(/^[A-Za-z0-9./-]{0,12}$/),
          }),
          fc.record({
            pipeline: fc.constant('post' as const),
            project: fc.array(name, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('/')),
            revision: fc.stringMatching(/^[0-9a-f]{40}$/),
            job: name,
            buildId: fc.stringMatching(/^[A-Za-z0-9./-]{0,12}$/),
          }),
        ),
        (location) => {
          let prefix: string;
          try {
            prefix = logKeyPrefix(location);
          } catch (error) {
            expect(error).toBeInstanceOf(LogLocationError);
            return;
          }
          expect(prefix).toMatch(/^logs\/[^/]/);
          expect(prefix.endsWith('/')).toBe(true);
          expect(
            prefix
              .slice(0, -1)
              .split('/')
              .every((s) => s !== '' && s !== '.' && s !== '..'),
          ).toBe(true);
        },
      ),
    );
  });

  it('builds public URLs under the base, encoded per segment', () => {
    expect(publicLogUrl('https://d123.cloudfront.net/', 'logs/05/5/1/check/pep8/7f3c2a9/')).toBe(
      'https://d123.cloudfront.net/logs/05/5/1/check/pep8/7f3c2a9/',
    );
    expect(publicLogUrl('http://127.0.0.1:8080', 'logs/05/5/1/check/pep8/7f3c2a9/job output.txt')).toBe(
      'http://127.0.0.1:8080/logs/05/5/1/check/pep8/7f3c2a9/job%20output.txt',
    );
    expect(() => publicLogUrl('https://x', '/logs/a')).toThrow(LogLocationError);
    expect(() => publicLogUrl('https://x', 'logs/../secrets')).toThrow(LogLocationError);
  });
});

describe('presigned log upload', () => {
  const prefix = 'logs/05/5/1/check/pep8/7f3c2a9/';

  it('signs a policy limited to the prefix, the size and a short expiry', async () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const post = await createLogUploadPost(client, {
      bucket: BUCKET,
      keyPrefix: prefix,
      expiresSeconds: 900,
      maxBytes: 1000,
    });
    const after = Date.now();

    expect(post.keyPrefix).toBe(prefix);
    expect(post.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/${BUCKET}$`));
    const policy = decodePolicy(post.fields);
    const expiration = Date.parse(policy.expiration);
    expect(expiration).toBeGreaterThanOrEqual(before + 900_000);
    expect(expiration).toBeLessThanOrEqual(after + 900_000);
    const credential = post.fields['X-Amz-Credential'];
    expect(credential).toMatch(/^S3RVER\/\d{8}\/us-east-1\/s3\/aws4_request$/);
    expect(policy.conditions).toEqual(
      expect.arrayContaining([
        ['starts-with', '$key', prefix],
        ['content-length-range', 0, 1000],
        ['starts-with', '$Content-Type', ''],
        ['starts-with', '$Content-Encoding', ''],
        { bucket: BUCKET },
        { 'X-Amz-Algorithm': 'AWS4-HMAC-SHA256' },
        { 'X-Amz-Credential': credential },
        { 'X-Amz-Date': post.fields['X-Amz-Date'] },
      ]),
    );
    expect(policy.conditions).toHaveLength(8);
  });

  it('lets S3 accept keys under the prefix only, within the size, before expiry, with no extra fields', async () => {
    const post = await createLogUploadPost(client, {
      bucket: BUCKET,
      keyPrefix: prefix,
      expiresSeconds: 600,
      maxBytes: 1000,
    });
    const now = new Date();
    const form = (key: string, extra: Record<string, string> = {}) => ({
      ...post.fields,
      key,
      'Content-Type': 'text/plain',
      'Content-Encoding': '',
      ...extra,
    });

    expect(s3WouldAccept(post.fields, form(`${prefix}job-output.txt`), 10, now)).toEqual({ ok: true });
    expect(s3WouldAccept(post.fields, form(`${prefix}a/b/index.html`), 1000, now)).toEqual({ ok: true });
    expect(s3WouldAccept(post.fields, form('logs/05/5/1/check/pep8/7f3c2a8/x'), 1, now).why).toBe('key');
    expect(s3WouldAccept(post.fields, form('images/akanda-appliance-latest.qcow2'), 1, now).why).toBe('key');
    expect(s3WouldAccept(post.fields, form(`${prefix}x`), 1001, now).why).toBe('size');
    expect(s3WouldAccept(post.fields, form(`${prefix}x`), 1, new Date(now.getTime() + 601_000)).why).toBe('expired');
    expect(s3WouldAccept(post.fields, form(`${prefix}x`, { acl: 'public-read-write' }), 1, now).why).toBe(
      'field acl not in policy',
    );
    expect(s3WouldAccept(post.fields, form(`${prefix}x`, { bucket: 'akanda-ci-images' }), 1, now).why).toBe('bucket');
    const gzipped = form(`${prefix}stack.sh.txt.gz`, { 'Content-Encoding': 'gzip' });
    expect(s3WouldAccept(post.fields, gzipped, 10, now)).toEqual({ ok: true });
    const { 'Content-Encoding': _omitted, ...withoutEncoding } = form(`${prefix}x`);
    expect(s3WouldAccept(post.fields, withoutEncoding, 1, now).why).toBe('Content-Encoding');
    for (const header of ['Content-Disposition', 'Cache-Control', 'x-amz-website-redirect-location', 'x-amz-acl']) {
      expect(s3WouldAccept(post.fields, form(`${prefix}x`, { [header]: 'x' }), 1, now).why).toBe(
        `field ${header} not in policy`,
      );
    }
    const tampered = {
      ...post.fields,
      Policy: Buffer.from(JSON.stringify({ expiration: '2099-01-01T00:00:00Z', conditions: [] })).toString('base64'),
    };
    expect(s3WouldAccept(tampered, form(`${prefix}x`), 1, now).why).toBe('signature');

    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (key) => {
        expect(s3WouldAccept(post.fields, form(key), 1, now).ok).toBe(key.startsWith(prefix));
      }),
    );
  });

  it('uploads files with the fields to S3 (s3rver), keeping their content type', async () => {
    const post = await createLogUploadPost(client, {
      bucket: BUCKET,
      keyPrefix: prefix,
      expiresSeconds: 300,
      maxBytes: 10_000,
    });

    const text = await upload(post, `${prefix}job-output.txt`, 'text/plain; charset=utf-8', 'line 1\nline 2\n');
    const html = await upload(post, `${prefix}index.html`, 'text/html', '<a href="job-output.txt">job-output.txt</a>');
    expect([text.status, html.status]).toEqual([204, 204]);

    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${prefix}job-output.txt` }));
    expect(await got.Body?.transformToString()).toBe('line 1\nline 2\n');
    expect(got.ContentType).toBe('text/plain; charset=utf-8');
    const page = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${prefix}index.html` }));
    expect(page.ContentType).toBe('text/html');
    expect(page.ContentEncoding ?? '').toBe(''); // no encoding: s3rver keeps the empty field, S3 omits it
  });

  it('stores a gzipped text log with Content-Encoding gzip and the type of the text (s3rver)', async () => {
    const post = await createLogUploadPost(client, {
      bucket: BUCKET,
      keyPrefix: prefix,
      expiresSeconds: 300,
      maxBytes: 10_000,
    });
    const log = '2026-11-25 09:00:00.000 | + ./stack.sh\n'.repeat(50);
    const key = `${prefix}logs/stack.sh.txt.gz`;
    const response = await upload(post, key, 'text/plain; charset=utf-8', gzipSync(log), 'gzip');
    expect(response.status).toBe(204);

    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(got.ContentEncoding).toBe('gzip');
    expect(got.ContentType).toBe('text/plain; charset=utf-8');
    // Stored as sent: the browser (or CloudFront's client) inflates it, not S3.
    expect(gunzipSync(Buffer.from((await got.Body?.transformToByteArray()) ?? [])).toString('utf8')).toBe(log);
  });

  it.each([
    ['no trailing slash', { keyPrefix: 'logs/05/5', expiresSeconds: 60, maxBytes: 1 }],
    ['leading slash', { keyPrefix: '/logs/', expiresSeconds: 60, maxBytes: 1 }],
    ['dot-dot', { keyPrefix: 'logs/../', expiresSeconds: 60, maxBytes: 1 }],
    ['zero expiry', { keyPrefix: 'logs/', expiresSeconds: 0, maxBytes: 1 }],
    ['expiry beyond SigV4', { keyPrefix: 'logs/', expiresSeconds: 8 * 24 * 3600, maxBytes: 1 }],
    ['zero size', { keyPrefix: 'logs/', expiresSeconds: 60, maxBytes: 0 }],
  ])('refuses a request with %s', async (_, request) => {
    await expect(createLogUploadPost(client, { bucket: BUCKET, ...request })).rejects.toThrow(LogLocationError);
  });

  it('gives the control plane an upload with its public URL', async () => {
    const artifacts = createLogArtifacts({
      client,
      bucket: BUCKET,
      publicBaseUrl: 'https://logs.example/',
      maxBytes: 5,
    });
    const upload = await artifacts.logUpload(prefix, 120);
    expect(upload.publicUrl).toBe(`https://logs.example/${prefix}`);
    expect(artifacts.publicUrl(prefix)).toBe(`https://logs.example/${prefix}`);
    expect(decodePolicy(upload.fields).conditions).toContainEqual(['content-length-range', 0, 5]);
  });
});

describe('S3 client', () => {
  it('uses path-style addressing with an endpoint override, virtual-hosted without', async () => {
    const local = createS3Client({ endpoint: 'http://127.0.0.1:1', region: 'us-east-1' });
    const aws = createS3Client({ region: 'eu-west-1' });
    expect(local.config.forcePathStyle).toBe(true);
    expect(aws.config.forcePathStyle).toBe(false);
    expect(await aws.config.region()).toBe('eu-west-1');
    local.destroy();
    aws.destroy();
  });
});
