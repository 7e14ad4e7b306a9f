/**
 * An IMDSv2 stand-in on 127.0.0.1: a session token from `PUT /latest/api/token` is required on
 * every GET (401 otherwise), instance tags under `/latest/meta-data/tags/instance/<key>`, and
 * `/latest/meta-data/spot/instance-action` answering 404 until `interrupt()` (from then on), or
 * once after `interruptNext()` (the next node to ask gets the notice, later ones 404 again).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeImds {
  url: string;
  /** GETs that came without a valid token. */
  unauthorized: number;
  /** Notices served so far (200 answers on `spot/instance-action`). */
  noticesServed: number;
  interrupt(): void;
  /** Serves the notice to the next `spot/instance-action` request only. */
  interruptNext(): void;
  close(): Promise<void>;
}

function instanceAction(): string {
  return JSON.stringify({ action: 'terminate', time: new Date(Date.now() + 120_000).toISOString() });
}

export async function startFakeImds(tags: Record<string, string>): Promise<FakeImds> {
  const token = randomBytes(16).toString('hex');
  let notice: string | undefined;
  let noticeOnce = false;
  const state = { unauthorized: 0, noticesServed: 0 };
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
      state.noticesServed++;
      res.writeHead(200, { 'content-type': 'text/plain' }).end(notice);
      if (noticeOnce) notice = undefined;
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
    get noticesServed() {
      return state.noticesServed;
    },
    interrupt() {
      noticeOnce = false;
      notice = instanceAction();
    },
    interruptNext() {
      noticeOnce = true;
      notice = instanceAction();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
