import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConsoleLog, consoleTimestamp } from '../../lambda/node-agent/console-log';
import { HttpStatusError, redactUrl, withRetries } from '../../lambda/node-agent/http';
import { escapeHtml, formatSize, renderIndex } from '../../lambda/node-agent/index-html';
import { isSafeGitRef, isSafeProjectName } from '../../lambda/node-agent/names';
import { contentTypeFor } from '../../lambda/node-agent/uploader';

describe('console log', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'akanda-ci-console-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('timestamps every line in UTC, joins lines split across chunks, drops CR before LF, keeps bytes as printed', async () => {
    const file = path.join(dir, 'job-output.txt');
    const log = new ConsoleLog(file);
    const out = log.lineWriter();
    out.write(Buffer.from('first li'));
    out.write(Buffer.from('ne\r\nsecond\n\nthi'));
    out.write(Buffer.from([0xff, 0x0a]));
    out.write(Buffer.from('unterminated'));
    out.end();
    log.line('note\nwith two lines');
    await log.close();
    const content = await readFile(file);
    const lines = content.toString('latin1').trimEnd().split('\n');
    expect(lines.map((line) => line.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| /, ''))).toEqual([
      'first line',
      'second',
      '',
      'thi\xff',
      'unterminated',
      'note',
      'with two lines',
    ]);
    expect(consoleTimestamp(new Date(Date.UTC(2026, 10, 25, 9, 1, 48, 123)))).toBe('2026-11-25 09:01:48.123');
  });

  it('splits a line longer than 64 KiB instead of buffering it whole', async () => {
    const file = path.join(dir, 'long.txt');
    const log = new ConsoleLog(file);
    const out = log.lineWriter();
    out.write(Buffer.alloc(64 * 1024 + 10, 'a'));
    out.end();
    await log.close();
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    expect(lines.map((line) => line.split(' | ')[1].length)).toEqual([64 * 1024, 10]);
  });
});

describe('names the agent accepts', () => {
  it.each([
    ['refs/changes/34/1234/2', true],
    ['refs/changes/07/7/1', true],
    ['refs/heads/stable/kilo', true],
    ['refs/tags/2015.1.0', true],
    ['refs/changes/12/1234/2', false],
    ['refs/changes/34/1234/0', false],
    ['refs/heads/../../etc', false],
    ['--upload-pack=evil', false],
    ['refs/heads/-x', false],
    ['refs/meta/config', false],
    ['refs/heads/a b', false],
  ])('ref %j is safe: %s', (ref, safe) => {
    expect(isSafeGitRef(ref)).toBe(safe);
  });

  it.each([
    ['stackforge/akanda-rug', true],
    ['openstack/astara', true],
    ['../etc', false],
    ['-oops', false],
    ['a//b', false],
    ['/abs', false],
    ['a;rm -rf', false],
    ['x.git', false],
  ])('project %j is safe: %s', (project, safe) => {
    expect(isSafeProjectName(project)).toBe(safe);
  });
});

describe('index pages', () => {
  it('escapes names in text and percent-encodes them in links, directories first with their own index', () => {
    const html = renderIndex(
      'logs/<x>/',
      [
        { name: 'b"&.txt', isDirectory: false, size: 2048 },
        { name: '<sub>', isDirectory: true, size: 0 },
      ],
      true,
    );
    expect(html).toContain('<title>Index of logs/&lt;x&gt;/</title>');
    const rows = html.split('\n').filter((line) => line.startsWith('<tr><td>'));
    expect(rows).toEqual([
      '<tr><td><a href="../index.html">../</a></td><td class="size">-</td></tr>',
      '<tr><td><a href="%3Csub%3E/index.html">&lt;sub&gt;/</a></td><td class="size">-</td></tr>',
      '<tr><td><a href="b%22%26.txt">b&quot;&amp;.txt</a></td><td class="size"><span title="2048 bytes">2.0 KiB</span></td></tr>',
    ]);
    expect(escapeHtml(`<>&"'`)).toBe('&lt;&gt;&amp;&quot;&#39;');
    expect(formatSize(999)).toBe('999 B');
    expect(formatSize(450 * 1024 * 1024)).toBe('450.0 MiB');
  });
});

describe('upload content types', () => {
  it.each([
    ['job-output.txt', 'text/plain; charset=utf-8'],
    ['screen-q-svc.LOG', 'text/plain; charset=utf-8'],
    ['local.conf', 'text/plain; charset=utf-8'],
    ['index.html', 'text/html; charset=utf-8'],
    ['testr_results.html', 'text/html; charset=utf-8'],
    ['akanda-appliance.qcow2', 'application/octet-stream'],
    ['no-extension', 'application/octet-stream'],
  ])('%s is served as %s', (name, type) => {
    expect(contentTypeFor(name)).toBe(type);
  });
});

describe('http helpers', () => {
  it('redacts credentials, query and fragment from logged URLs', () => {
    expect(redactUrl('https://user:secret@api.example/node?token=abc#x')).toBe('https://api.example/node');
    expect(redactUrl('not a url')).toBe('(unparsable URL)');
  });

  it('retries transient failures only', async () => {
    let calls = 0;
    await expect(
      withRetries(
        async () => {
          calls++;
          throw new HttpStatusError(403, 'forbidden');
        },
        { budgetMs: 1000, initialDelayMs: 1 },
      ),
    ).rejects.toThrow('forbidden');
    expect(calls).toBe(1);

    calls = 0;
    const value = await withRetries(
      async () => {
        calls++;
        if (calls < 3) throw new HttpStatusError(503, 'unavailable');
        return 'ok';
      },
      { budgetMs: 5000, initialDelayMs: 1 },
    );
    expect([value, calls]).toEqual(['ok', 3]);
  });
});
