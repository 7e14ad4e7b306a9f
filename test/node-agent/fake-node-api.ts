/**
 * The node API as the agent sees it (docs/design.md "Node API"), on 127.0.0.1: answers claims
 * with a configurable job and upload requests with a configurable upload, records heartbeats and
 * results, and can be told to fail.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Reply {
  status: number;
  body?: unknown;
}

export interface RecordedCall {
  path: string;
  body: Record<string, unknown>;
}

export interface FakeNodeApi {
  url: string;
  calls: RecordedCall[];
  /** How `/node/claim` answers (default 401). */
  onClaim: (body: Record<string, unknown>) => Reply;
  /** How `/node/upload` answers (default 404, a control plane without it). */
  onUpload: (body: Record<string, unknown>) => Reply | Promise<Reply>;
  /** Statuses `/node/result` answers, in order, before it settles on 200. */
  resultFailures: number[];
  /** The build state heartbeat answers carry. */
  heartbeatState: string;
  results(): RecordedCall['body'][];
  heartbeats(): RecordedCall['body'][];
  uploadRequests(): RecordedCall['body'][];
  close(): Promise<void>;
}

export async function startFakeNodeApi(): Promise<FakeNodeApi> {
  const api: Omit<FakeNodeApi, 'url' | 'close'> = {
    calls: [],
    onClaim: () => ({ status: 401, body: { error: 'wrong claim token' } }),
    onUpload: () => ({ status: 404, body: { error: 'unknown node API path' } }),
    resultFailures: [],
    heartbeatState: 'running',
    results: () => api.calls.filter((call) => call.path === '/node/result').map((call) => call.body),
    heartbeats: () => api.calls.filter((call) => call.path === '/node/heartbeat').map((call) => call.body),
    uploadRequests: () => api.calls.filter((call) => call.path === '/node/upload').map((call) => call.body),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        // recorded as an empty body; the assertions on calls catch it
      }
      const path = req.url ?? '';
      api.calls.push({ path, body });
      let reply: Reply;
      if (req.method !== 'POST') {
        reply = { status: 405 };
      } else if (path === '/node/claim') {
        reply = api.onClaim(body);
      } else if (path === '/node/upload') {
        reply = await api.onUpload(body);
      } else if (path === '/node/result') {
        const failure = api.resultFailures.shift();
        reply = failure === undefined ? { status: 200, body: { state: 'succeeded' } } : { status: failure };
      } else if (path === '/node/heartbeat') {
        reply = { status: 200, body: { state: api.heartbeatState } };
      } else {
        reply = { status: 404 };
      }
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(api, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
