/**
 * An IMDSv2 stand-in on 127.0.0.1: a session token from `PUT /latest/api/token` is required on
 * every GET (401 otherwise), instance tags under `/latest/meta-data/tags/instance/<key>`, and
 * `/latest/meta-data/spot/instance-action` answering 404 until `interrupt()`.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeImds {
  url: string;
  /** GETs that came without a valid token. */
  unauthorized: number;
  interrupt(): void;
  close(): Promise<void>;
}

export async function startFakeImds(tags: Record<string, string>): Promise<FakeImds> {
  const token = randomBytes(16).toString('hex');
  let notice: string | undefined;
  const state = { unauthorized: 0 };
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(req.url ?? '');
    if (req.method === 'PUT' && path === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== token) {
      state.unauthorized++;
      res.writeHead(401).end();
      return;
    }
    const tagPrefix = '/latest/meta-data/tags/instance/';
    if (path.startsWith(tagPrefix) && tags[path.slice(tagPrefix.length)] !== undefined) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(tags[path.slice(tagPrefix.length)]);
      return;
    }
    if (path === '/latest/meta-data/spot/instance-action' && notice !== undefined) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(notice);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get unauthorized() {
      return state.unauthorized;
    },
    interrupt() {
      notice = JSON.stringify({ action: 'terminate', time: new Date(Date.now() + 120_000).toISOString() });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
