/**
 * `index.html` for every log directory, so the published logs are browsable: S3 and CloudFront
 * serve no directory listings. Links point at `<dir>/index.html` explicitly because CloudFront
 * maps only the root to a default object.
 *
 * File names come from the job (untrusted): every one is HTML-escaped in text and
 * percent-encoded in links.
 */
import { lstat, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface IndexEntry {
  name: string;
  isDirectory: boolean;
  size: number;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The page for one directory; `title` is its path for people (e.g. `logs/34/1234/2/check/pep8/abc/`). */
export function renderIndex(title: string, entries: readonly IndexEntry[], hasParent: boolean): string {
  const sorted = [...entries].sort((a, b) =>
    a.isDirectory !== b.isDirectory ? (a.isDirectory ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  const rows = sorted.map((entry) => {
    const href = entry.isDirectory ? `${encodeURIComponent(entry.name)}/index.html` : encodeURIComponent(entry.name);
    const label = escapeHtml(entry.name) + (entry.isDirectory ? '/' : '');
    const size = entry.isDirectory
      ? '-'
      : `<span title="${entry.size} bytes">${escapeHtml(formatSize(entry.size))}</span>`;
    return `<tr><td><a href="${href}">${label}</a></td><td class="size">${size}</td></tr>`;
  });
  if (hasParent) {
    rows.unshift('<tr><td><a href="../index.html">../</a></td><td class="size">-</td></tr>');
  }
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>Index of ${escapeHtml(title)}</title>`,
    '<style>body{font-family:monospace}td{padding:0 1em 0 0}.size{text-align:right}</style>',
    '</head>',
    '<body>',
    `<h1>Index of ${escapeHtml(title)}</h1>`,
    '<table>',
    '<tr><th>Name</th><th class="size">Size</th></tr>',
    ...rows,
    '</table>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/**
 * Writes `index.html` into `dir` and each directory below it. Symbolic links and special files are
 * left out (they are not uploaded either: a link could point at anything on the node).
 */
export async function writeIndexPages(dir: string, title: string, hasParent = false): Promise<number> {
  const entries: IndexEntry[] = [];
  let written = 0;
  for (const name of await readdir(dir)) {
    if (name === 'index.html') {
      continue;
    }
    // A name that is not valid UTF-8 reads back mangled and cannot be opened: it is left out.
    const stats = await lstat(path.join(dir, name)).catch(() => undefined);
    if (stats === undefined) {
      continue;
    }
    if (stats.isDirectory()) {
      written += await writeIndexPages(path.join(dir, name), `${title}${name}/`, true);
      entries.push({ name, isDirectory: true, size: 0 });
    } else if (stats.isFile()) {
      entries.push({ name, isDirectory: false, size: stats.size });
    }
  }
  await writeFile(path.join(dir, 'index.html'), renderIndex(title, entries, hasParent));
  return written + 1;
}
