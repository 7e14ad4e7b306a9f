/**
 * Gzipped text logs are stored so that browsers show them: the type of the text inside and
 * `Content-Encoding: gzip`; archives and anything else that is not gzipped text stay downloads.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { publishLogs } from '../../lambda/node-agent/publish-logs';
import { storedAs } from '../../lambda/node-agent/uploader';
import { startLogTarget, type LogTarget } from './log-target';

const TEXT = 'text/plain; charset=utf-8';

describe('how a file is stored', () => {
  it.each([
    ['a.txt.gz', true, TEXT, 'gzip'],
    ['logs/screen-n-cpu.TXT.GZ', true, TEXT, 'gzip'],
    ['logs/etc/nova/nova.conf.gz', true, TEXT, 'gzip'],
    ['devstack.log.gz', true, TEXT, 'gzip'],
    ['report.html.gz', true, 'text/html; charset=utf-8', 'gzip'],
    ['resources.json.gz', true, 'application/json', 'gzip'],
    ['odd "name"\n<b>.txt.gz', true, TEXT, 'gzip'],
    ['x.tar.gz', true, 'application/gzip', ''],
    ['artifacts/akanda-appliance.qcow2.gz', true, 'application/gzip', ''],
    ['testrepository.subunit.gz', true, 'application/gzip', ''],
    ['twice.txt.gz.gz', true, 'application/gzip', ''],
    ['not-gzip.txt.gz', false, 'application/gzip', ''],
    ['.txt.gz', true, 'application/gzip', ''],
    ['txt.gz', true, 'application/gzip', ''],
    ['.gz', true, 'application/octet-stream', ''],
    ['dir.txt/plain.gz', true, 'application/gzip', ''],
    ['a.txt.tgz', true, 'application/octet-stream', ''],
    ['job-output.txt', true, TEXT, ''],
    ['index.html', false, 'text/html; charset=utf-8', ''],
  ])('%j (gzip content: %s) as %s, encoding %j', (name, gzipped, contentType, contentEncoding) => {
    expect(storedAs(name, gzipped)).toEqual({ contentType, contentEncoding });
  });
});

describe('publishing gzipped logs (s3rver, the control plane presigned POST)', () => {
  let target: LogTarget;
  let dir: string;
  beforeAll(async () => {
    target = await startLogTarget();
    dir = await mkdtemp(path.join(tmpdir(), 'akanda-ci-gz-logs-'));
  });
  afterAll(async () => {
    await target.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores text.gz inline with Content-Encoding gzip, archives and fake .gz as downloads, links real names', async () => {
    const stackLog = '2026-11-25 09:00:00.000 | + ./stack.sh\n'.repeat(2000);
    const stackGz = gzipSync(stackLog);
    const archive = gzipSync(Buffer.from('ustar archive bytes'));
    await mkdir(path.join(dir, 'logs', 'etc'), { recursive: true });
    await mkdir(path.join(dir, 'artifacts'));
    await writeFile(path.join(dir, 'job-output.txt'), 'console\n');
    await writeFile(path.join(dir, 'logs', 'stack.sh.txt.gz'), stackGz);
    await writeFile(path.join(dir, 'logs', 'etc', 'neutron.conf.gz'), gzipSync('[DEFAULT]\n'));
    await writeFile(path.join(dir, 'logs', 'fake.txt.gz'), 'plain text named .gz\n');
    await writeFile(path.join(dir, 'artifacts', 'images.tar.gz'), archive);

    const keyPrefix = 'logs/34/1234/2/check/gz/abcdef0/';
    const upload = await target.presign(keyPrefix);
    const lines: string[] = [];
    const failure = await publishLogs(dir, upload, {
      log: (line) => lines.push(line),
      retryBudgetMs: 0,
      timeoutMs: 10_000,
    });
    expect({ failure, lines: lines.filter((line) => line.includes('failed')) }).toEqual({
      failure: undefined,
      lines: [],
    });

    const objects = await target.objects(keyPrefix);
    const stored = (key: string) => {
      const object = objects.get(`${keyPrefix}${key}`);
      return object && { contentType: object.contentType, contentEncoding: object.contentEncoding };
    };
    expect(stored('logs/stack.sh.txt.gz')).toEqual({ contentType: TEXT, contentEncoding: 'gzip' });
    expect(stored('logs/etc/neutron.conf.gz')).toEqual({ contentType: TEXT, contentEncoding: 'gzip' });
    expect(stored('logs/fake.txt.gz')).toEqual({ contentType: 'application/gzip', contentEncoding: '' });
    expect(stored('artifacts/images.tar.gz')).toEqual({ contentType: 'application/gzip', contentEncoding: '' });
    expect(stored('job-output.txt')).toEqual({ contentType: TEXT, contentEncoding: '' });
    expect(stored('logs/index.html')).toEqual({ contentType: 'text/html; charset=utf-8', contentEncoding: '' });
    // The bytes are stored as they were on disk: the browser inflates them.
    const body = objects.get(`${keyPrefix}logs/stack.sh.txt.gz`)?.body ?? Buffer.alloc(0);
    expect(body.equals(stackGz)).toBe(true);
    expect(gunzipSync(body).toString('utf8')).toBe(stackLog);
    expect(objects.get(`${keyPrefix}artifacts/images.tar.gz`)?.body.equals(archive)).toBe(true);

    const index = objects.get(`${keyPrefix}logs/index.html`)?.body.toString('utf8') ?? '';
    expect(index).toContain('<a href="stack.sh.txt.gz">stack.sh.txt.gz</a>');
    expect(index).toContain('<a href="fake.txt.gz">fake.txt.gz</a>');
    expect(index).toContain('<a href="etc/index.html">etc/</a>');
  });
});
