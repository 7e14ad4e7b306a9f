/**
 * `akanda-ci local` serves logs like the CDN does (lib/public-cdn.ts): a patch under test chose
 * their Content-Type, so every log answer carries `Content-Security-Policy: sandbox` and `nosniff`.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { ControlPorts } from '../../lambda/control/ports';
import { startLocalServer, type LocalServer } from '../../lambda/local/server';
import { startS3rver, type LocalS3 } from '../support/s3rver';

let s3: LocalS3;
let server: LocalServer;

beforeAll(async () => {
  s3 = await startS3rver(['logs', 'images']);
  const put = (Bucket: string, Key: string, Body: string, ContentType: string) =>
    s3.client.send(new PutObjectCommand({ Bucket, Key, Body, ContentType }));
  await put('logs', 'logs/01/1/1/check/evil/abcdef0/page.html', '<script>alert(1)</script>', 'text/html');
  await put('logs', 'logs/01/1/1/check/evil/abcdef0/index.html', '<a href="page.html">page</a>', 'text/html');
  await put('images', 'images/master/latest.json', '{}\n', 'application/json');
  server = await startLocalServer({
    port: 0,
    // Only the webhook, the node API and error logging use the control ports; GETs of logs do not.
    ports: (): ControlPorts => {
      throw new Error('the log paths must not need the control ports');
    },
    s3: s3.client,
    logsBucket: 'logs',
    imagesBucket: 'images',
    rootImageFiles: [],
  });
});

afterAll(async () => {
  await server.close();
  await s3.close();
});

it('serves an uploaded HTML page sandboxed and unsniffed, keeping its content type', async () => {
  const response = await fetch(`${server.url}/logs/01/1/1/check/evil/abcdef0/page.html`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/html');
  expect(response.headers.get('content-security-policy')).toBe('sandbox');
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(await response.text()).toBe('<script>alert(1)</script>');
});

it('sandboxes directory index pages and HEAD answers too', async () => {
  const index = await fetch(`${server.url}/logs/01/1/1/check/evil/abcdef0/`, { method: 'HEAD' });
  expect(index.status).toBe(200);
  expect(index.headers.get('content-security-policy')).toBe('sandbox');
  expect(index.headers.get('x-content-type-options')).toBe('nosniff');
});

it('leaves the images as they were (only logs are untrusted content)', async () => {
  const response = await fetch(`${server.url}/images/master/latest.json`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-security-policy')).toBeNull();
  expect(await response.text()).toBe('{}\n');
});
