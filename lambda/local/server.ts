/**
 * The one HTTP server of `akanda-ci local`, on 127.0.0.1: the webhook, the node API and the logs
 * (the URLs in the reports). Bodies are read up to a limit; errors answer JSON, never a stack.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { MAX_BODY_BYTES, type ControlResponse } from '../control/http';
import { ingestWebhook } from '../control/ingest';
import { handleNodeRequest } from '../control/node-api';
import type { ControlPorts } from '../control/ports';

export interface LocalServerOptions {
  port: number;
  ports: () => ControlPorts;
  s3: S3Client;
  logsBucket: string;
  imagesBucket: string;
  /** Served from the images bucket at the root: the rolling image, its checksum, latest.json. */
  rootImageFiles: readonly string[];
}

export interface LocalServer {
  url: string;
  close(): Promise<void>;
}

class TooLarge extends Error {}

/** The node API's paths (docs/design.md, Node API), as the Function URL serves them. */
const NODE_PATHS = ['/node/claim', '/node/result', '/node/heartbeat', '/node/upload'];

export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const server: Server = createServer((req, res) => {
    route(options, req, res).catch((error: unknown) => {
      options.ports().logger.error(`local server: ${req.method} ${safePath(req.url)} failed`, {
        error: error instanceof Error ? error.message : String(error),
      });
      if (!res.headersSent) send(res, { status: 500, body: { error: 'internal error' } });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The path without the webhook token, for logs. */
function safePath(url: string | undefined): string {
  const path = (url ?? '').split('?')[0] ?? '';
  return path.startsWith('/webhook/') ? '/webhook/<token>' : path.slice(0, 200);
}

async function route(options: LocalServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (req.method === 'GET' || req.method === 'HEAD') {
    if (path.startsWith('/logs/')) {
      return serveObject(options, options.logsBucket, path.slice(1), req, res, UNTRUSTED_LOG_HEADERS);
    }
    if (path.startsWith('/images/') || options.rootImageFiles.includes(path.slice(1))) {
      return serveObject(options, options.imagesBucket, path.slice(1), req, res);
    }
    if (path === '/healthz') return send(res, { status: 200, body: { ok: true } });
    return send(res, { status: 404, body: { error: 'not found' } });
  }
  if (req.method !== 'POST') return send(res, { status: 405, body: { error: 'method not allowed' } });

  const webhook = /^\/webhook\/([^/]*)$/.exec(path);
  const isNode = NODE_PATHS.includes(path);
  if (!webhook && !isNode) return send(res, { status: 404, body: { error: 'not found' } });
  let body: Buffer;
  try {
    body = await readBody(req);
  } catch (error) {
    if (error instanceof TooLarge) {
      send(res, { status: 413, body: { error: `body larger than ${MAX_BODY_BYTES} bytes` } });
      req.destroy();
      return;
    }
    throw error;
  }
  const ports = options.ports();
  if (webhook) {
    let token: string;
    try {
      token = decodeURIComponent(webhook[1] ?? '');
    } catch {
      return send(res, { status: 401, body: { error: 'unknown webhook token' } });
    }
    return send(res, await ingestWebhook(ports, { token, body }));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return send(res, { status: 400, body: { error: 'body is not JSON' } });
  }
  return send(res, await handleNodeRequest(ports, path, parsed));
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) return reject(new TooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        reject(new TooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, response: ControlResponse): void {
  const text = JSON.stringify(response.body);
  res.writeHead(response.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * What the CDN adds to every log (lib/public-cdn.ts): a patch under test chooses its logs' Content-Type,
 * so an uploaded page is sandboxed (no script, no access to this origin) and never sniffed.
 */
const UNTRUSTED_LOG_HEADERS = { 'content-security-policy': 'sandbox', 'x-content-type-options': 'nosniff' };

/** Logs as the CDN serves them: `<dir>/` is its index.html, content type as uploaded. */
async function serveObject(
  options: LocalServerOptions,
  bucket: string,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
  extraHeaders: Readonly<Record<string, string>> = {},
): Promise<void> {
  let key: string;
  try {
    key = decodeURIComponent(path);
  } catch {
    return send(res, { status: 400, body: { error: 'bad path' } });
  }
  if (key.split('/').some((segment) => segment === '..' || segment === '.')) {
    return send(res, { status: 400, body: { error: 'bad path' } });
  }
  if (key.endsWith('/')) key += 'index.html';
  try {
    const object = await options.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const bytes = Buffer.from((await object.Body?.transformToByteArray()) ?? []);
    res.writeHead(200, {
      'content-type': object.ContentType ?? 'application/octet-stream',
      // Gzipped logs (`*.txt.gz`) are stored with Content-Encoding: gzip so browsers show text, as CloudFront does.
      ...(object.ContentEncoding ? { 'content-encoding': object.ContentEncoding } : {}),
      'content-length': bytes.length,
      ...extraHeaders,
    });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === 'NoSuchKey' || name === 'NotFound') return send(res, { status: 404, body: { error: 'not found' } });
    throw error;
  }
}
