/**
 * fetch-verified-image.sh against a real HTTP server on 127.0.0.1: the prebuilt appliance image
 * is used only when its sha256 matches the published .sha256.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Server, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { JOBS, SYSTEM_PATH, removeDir, runProgram, tempDir } from './support';

const SCRIPT = join(JOBS, 'fetch-verified-image.sh');
const IMAGE = Buffer.from('QFI\xfb pretend qcow2 bytes '.repeat(1000), 'latin1');
const SHA = createHash('sha256').update(IMAGE).digest('hex');

let root: string;
let server: Server;
let base: string;
let files: Record<string, Buffer | string>;
let requests: string[];
let statusOverride: Record<string, number>;

beforeAll(async () => {
  root = tempDir('image-fetch');
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const status = statusOverride[req.url ?? ''];
    if (status !== undefined) {
      res.writeHead(status).end('<Error>refused</Error>');
      return;
    }
    const body = files[req.url ?? ''];
    if (body === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  requests = [];
  statusOverride = {};
  files = {
    '/images/akanda-appliance-latest.qcow2': IMAGE,
    // the publisher writes sha256sum's format, naming the file it hashed
    '/images/akanda-appliance-latest.qcow2.sha256': `${SHA}  akanda-appliance-abc123.qcow2\n`,
  };
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  removeDir(root);
});

let n = 0;
function fetchImage(url: string, target = join(root, `files-${++n}`, 'akanda-appliance-latest.qcow2')) {
  return runProgram(SCRIPT, [url, target], { PATH: SYSTEM_PATH, HOME: root }).then((result) => ({ result, target }));
}

it('downloads the image when its sha256 matches the published checksum', async () => {
  const { result, target } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  expect(readFileSync(target).equals(IMAGE)).toBe(true);
  expect(result.stdout).toContain(`sha256 ${SHA} verified`);
});

it('refuses an image whose sha256 does not match, and leaves nothing behind', async () => {
  files['/images/akanda-appliance-latest.qcow2'] = Buffer.concat([IMAGE, Buffer.from('tampered')]);
  const { result, target } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`);
  expect(result.status).toBe(5);
  expect(result.stderr).toMatch(new RegExp(`says ${SHA}: not using it\n$`));
  expect(existsSync(target)).toBe(false);
  expect(existsSync(`${target}.part`)).toBe(false);
});

describe('nothing published yet (the first deploy, before an image is seeded or published)', () => {
  const notPublished = (url: string, status: number) =>
    `akanda-ci: error: no appliance image has been published yet: ${url} answered HTTP ${status} ` +
    '(see docs/infrastructure.md#seed-the-first-image)\n';

  it('exits 4 and says so when the checksum is missing (HTTP 404)', async () => {
    delete files['/images/akanda-appliance-latest.qcow2.sha256'];
    const { result, target } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`);
    expect(result.status).toBe(4);
    expect(result.stderr).toBe(notPublished(`${base}/images/akanda-appliance-latest.qcow2.sha256`, 404));
    expect(existsSync(target)).toBe(false);
  });

  it('exits 4 when the checksum is there but the image is not', async () => {
    delete files['/images/akanda-appliance-latest.qcow2'];
    const { result, target } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`);
    expect(result.status).toBe(4);
    expect(result.stderr).toBe(notPublished(`${base}/images/akanda-appliance-latest.qcow2`, 404));
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}.part`)).toBe(false);
  });

  it("exits 4 on HTTP 403, CloudFront's answer for a missing object behind Origin Access Control", async () => {
    statusOverride['/images/akanda-appliance-latest.qcow2.sha256'] = 403;
    const { result } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`);
    expect(result.status).toBe(4);
    expect(result.stderr).toBe(notPublished(`${base}/images/akanda-appliance-latest.qcow2.sha256`, 403));
  });
});

it('fails with exit status 2 and the HTTP status on any other error', async () => {
  statusOverride['/images/akanda-appliance-latest.qcow2.sha256'] = 410;
  const { result } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/cannot download the checksum http:\/\/127\.0\.0\.1:\d+\/\S+\.sha256 \(HTTP 410\)\n$/);
});

it('refuses a checksum file that holds no sha256', async () => {
  files['/images/akanda-appliance-latest.qcow2.sha256'] = '<html>an error page</html>';
  const { result } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`);
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/does not hold a sha256 checksum/);
});

it('keeps a cached image with the right checksum without downloading it again', async () => {
  const target = join(root, 'cached', 'akanda-appliance-latest.qcow2');
  await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`, target);
  requests = [];
  const { result } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`, target);
  expect(result.status).toBe(0);
  expect(requests).toEqual(['/images/akanda-appliance-latest.qcow2.sha256']);
});

it('replaces a cached image whose checksum no longer matches (a newer image was published)', async () => {
  const target = join(root, 'stale', 'akanda-appliance-latest.qcow2');
  await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`, target);
  writeFileSync(target, 'an older image');
  const { result } = await fetchImage(`${base}/images/akanda-appliance-latest.qcow2`, target);
  expect(result.status).toBe(0);
  expect(readFileSync(target).equals(IMAGE)).toBe(true);
});

it.each([['file:///etc/passwd'], [`${'http'}://127.0.0.1/$(id).qcow2`], ['http://127.0.0.1/a b.qcow2']])(
  'rejects the URL %j',
  async (url) => {
    const { result } = await fetchImage(url);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/IMAGE_URL is not a plain http\(s\) URL/);
    expect(requests).toEqual([]);
  },
);
