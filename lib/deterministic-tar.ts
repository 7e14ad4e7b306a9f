/**
 * A minimal ustar writer whose output depends only on the entries given: fixed owner, fixed
 * mtime, entries in the caller's order. GNU tar and bsdtar both add host-specific metadata
 * (owner names, mtimes, pax headers), which would make every synth produce a new agent hash.
 */
import { gzipSync } from 'node:zlib';

export interface TarEntry {
  /** Relative path with "/" separators; directories end with "/". */
  readonly path: string;
  /** File content; omitted for directories. */
  readonly content?: Buffer;
  /** Permission bits, e.g. 0o755. */
  readonly mode: number;
}

/** 2000-01-01T00:00:00Z: a fixed, plausible mtime (some tools warn about 0). */
const FIXED_MTIME = 946684800;
const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function splitName(path: string): { name: string; prefix: string } {
  if (Buffer.byteLength(path) <= 100) return { name: path, prefix: '' };
  // ustar keeps up to 155 bytes of leading directories in `prefix`, split at a "/".
  for (let cut = path.lastIndexOf('/', path.length - 2); cut > 0; cut = path.lastIndexOf('/', cut - 1)) {
    const prefix = path.slice(0, cut);
    const name = path.slice(cut + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { name, prefix };
  }
  throw new Error(`path too long for a tar entry: ${path}`);
}

function header(entry: TarEntry): Buffer {
  const block = Buffer.alloc(BLOCK, 0);
  const isDirectory = entry.path.endsWith('/');
  const { name, prefix } = splitName(entry.path);
  block.write(name, 0, 100, 'utf8');
  block.write(octal(entry.mode & 0o7777, 8), 100, 8, 'ascii');
  block.write(octal(0, 8), 108, 8, 'ascii'); // uid
  block.write(octal(0, 8), 116, 8, 'ascii'); // gid
  block.write(octal(isDirectory ? 0 : (entry.content?.length ?? 0), 12), 124, 12, 'ascii');
  block.write(octal(FIXED_MTIME, 12), 136, 12, 'ascii');
  block.fill(' ', 148, 156); // checksum is computed with this field as spaces
  block.write(isDirectory ? '5' : '0', 156, 1, 'ascii');
  block.write('ustar\0', 257, 6, 'ascii');
  block.write('00', 263, 2, 'ascii');
  block.write('root', 265, 32, 'ascii');
  block.write('root', 297, 32, 'ascii');
  block.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7) + ' ', 148, 8, 'ascii');
  return block;
}

/** The tar archive of `entries`, in the given order. */
export function tar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(header(entry));
    if (!entry.path.endsWith('/') && entry.content) {
      parts.push(entry.content);
      const padding = (BLOCK - (entry.content.length % BLOCK)) % BLOCK;
      parts.push(Buffer.alloc(padding, 0));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(parts);
}

/** gzip with a zero mtime and the Unix OS byte, so the bytes are the same on every machine. */
export function gzipDeterministic(data: Buffer): Buffer {
  const gz = gzipSync(data, { level: 9 });
  gz.writeUInt32LE(0, 4);
  gz[9] = 3;
  return gz;
}
