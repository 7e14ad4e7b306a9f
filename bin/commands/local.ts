/**
 * `akanda-ci local [--config FILE] [--port N] [--data-dir DIR] [--reaper-interval SECONDS]
 * [--retry-scale FACTOR] [--node-imds-url URL]`: the whole CI on this machine (lambda/local/run.ts).
 * Env: WEBHOOK_TOKEN (required: the secret in `POST /webhook/<token>`), GERRIT_HTTP_PASSWORD (the
 * CI account's). Prints the URL it listens on, one line per state change, and stops cleanly on
 * SIGINT/SIGTERM. `--node-imds-url` points every node agent at an instance metadata endpoint whose
 * `spot/instance-action` it watches, as on EC2: with a stand-in there, spot interruptions can be
 * rehearsed on one machine.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../lambda/core/config';
import { startLocal } from '../../lambda/local/run';
import { DEFAULT_CONFIG_PATH, loadConfigFile } from './load-config';

const USAGE = `usage: akanda-ci local [--config FILE] [--port N] [--data-dir DIR] [--reaper-interval SECONDS] [--retry-scale FACTOR] [--node-imds-url URL]
  --node-imds-url URL  nodes watch URL/latest/meta-data/spot/instance-action (IMDSv2) for a spot
                       interruption notice, as on EC2; serve one there to rehearse an interruption
env: WEBHOOK_TOKEN (required), GERRIT_HTTP_PASSWORD`;

function fail(message: string): number {
  process.stderr.write(`akanda-ci local: ${message}\n${USAGE}\n`);
  return 2;
}

/** An http(s) base URL without credentials, query or fragment (it is passed to every node). */
function imdsUrlOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError('--node-imds-url must be an http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new RangeError('--node-imds-url must be an http(s) URL');
  if (url.username || url.password || url.search || url.hash) {
    throw new RangeError('--node-imds-url must be a base URL without credentials, query or fragment');
  }
  return url.href.replace(/\/+$/, '');
}

function numberOption(value: string | undefined, fallback: number, name: string, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new RangeError(`${name} must be a number from ${min} to ${max}`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        config: { type: 'string' },
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        'reaper-interval': { type: 'string' },
        'retry-scale': { type: 'string' },
        'node-imds-url': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    return fail((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let port: number;
  let reaperIntervalSeconds: number;
  let retryScale: number;
  let nodeImdsUrl: string | undefined;
  try {
    port = numberOption(values.port, 8411, '--port', 0, 65535);
    reaperIntervalSeconds = numberOption(values['reaper-interval'], 5, '--reaper-interval', 0.05, 3600);
    retryScale = numberOption(values['retry-scale'], 1, '--retry-scale', 0, 1000);
    nodeImdsUrl = imdsUrlOption(values['node-imds-url']);
  } catch (error) {
    return fail((error as Error).message);
  }
  if (!Number.isInteger(port)) return fail('--port must be an integer');
  const webhookToken = process.env.WEBHOOK_TOKEN ?? '';
  if (webhookToken.length < 16) return fail('set WEBHOOK_TOKEN to a secret of at least 16 characters');

  let config;
  try {
    config = loadConfigFile(values.config ?? DEFAULT_CONFIG_PATH);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const write = (line: string) => process.stdout.write(`${line}\n`);
  const runtime = await startLocal({
    config,
    port,
    dataDir: resolve(values['data-dir'] ?? '.akanda-ci'),
    webhookToken,
    gerritPassword: process.env.GERRIT_HTTP_PASSWORD ?? '',
    reaperIntervalSeconds,
    retryScale,
    ...(nodeImdsUrl === undefined ? {} : { nodeImdsUrl }),
    write,
  });
  write(`akanda-ci local listening on ${runtime.url}`);
  write(`webhook: POST ${runtime.url}/webhook/<WEBHOOK_TOKEN>   logs: ${runtime.url}/logs/`);
  if (nodeImdsUrl !== undefined) write(`nodes watch ${nodeImdsUrl} for spot interruption notices`);

  await new Promise<void>((done) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      write(`${signal}: stopping (terminating nodes, closing servers)`);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await runtime.stop();
  write('stopped');
  return 0;
}
