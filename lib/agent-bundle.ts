/**
 * The node-agent bundle every node downloads at boot: `node-agent.js` (lambda/node-agent/main.ts
 * bundled for the Node.js 18 that Ubuntu 24.04 ships) and the repository's `scripts/` tree
 * (without the developer-only `scripts/bench/`), as a byte-for-byte reproducible tar.gz.
 *
 * The sha256 goes into the user data, so the same sources must always give the same bytes:
 * otherwise every synth would create a new launch template version.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { buildSync } from 'esbuild';
import { gzipDeterministic, tar, type TarEntry } from './deterministic-tar';

export const AGENT_ARCHIVE_NAME = 'node-agent.tar.gz';
/** Where the user data unpacks the archive and runs `node node-agent.js`. */
export const AGENT_HOME = '/opt/akanda-ci';

export interface AgentBundle {
  /** A directory holding only the archive (what BucketDeployment uploads under `agent/`). */
  readonly directory: string;
  readonly archivePath: string;
  readonly sha256: string;
}

export interface AgentBundleOptions {
  /** @default the repository root (the parent of lib/) */
  readonly repositoryRoot?: string;
  /** @default a directory under the OS temp dir named by the archive's hash */
  readonly outputRoot?: string;
}

/** Directories under scripts/ that nodes never run. */
const EXCLUDED_SCRIPT_DIRECTORIES = new Set(['bench']);

/** Local leftovers (editor files, Python caches) that must not change the archive's hash. */
function isLocalLeftover(name: string): boolean {
  return name.startsWith('.') || name === '__pycache__' || name.endsWith('.pyc') || name.endsWith('~');
}

function scriptEntries(root: string, directory: string): TarEntry[] {
  const entries: TarEntry[] = [];
  const names = readdirSync(directory).sort();
  for (const name of names) {
    if (isLocalLeftover(name)) continue;
    const full = join(directory, name);
    const path = relative(root, full).split(sep).join('/');
    const stat = statSync(full);
    if (stat.isDirectory()) {
      if (directory === join(root, 'scripts') && EXCLUDED_SCRIPT_DIRECTORIES.has(name)) continue;
      entries.push({ path: `${path}/`, mode: 0o755 });
      entries.push(...scriptEntries(root, full));
    } else if (stat.isFile()) {
      // Only the executable bit carries meaning; everything else is normalised.
      entries.push({ path, content: readFileSync(full), mode: stat.mode & 0o111 ? 0o755 : 0o644 });
    }
  }
  return entries;
}

/** The agent program as one file, for Node.js 18 and later. */
export function bundleAgentProgram(repositoryRoot: string): Buffer {
  const result = buildSync({
    absWorkingDir: repositoryRoot,
    entryPoints: ['lambda/node-agent/main.ts'],
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    minify: true,
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error('esbuild produced no output for lambda/node-agent/main.ts');
  return Buffer.from(output.contents);
}

/** The archive bytes: node-agent.js, then scripts/ in sorted order. */
export function agentArchive(repositoryRoot: string): Buffer {
  const entries: TarEntry[] = [
    { path: 'node-agent.js', content: bundleAgentProgram(repositoryRoot), mode: 0o644 },
    { path: 'scripts/', mode: 0o755 },
    ...scriptEntries(repositoryRoot, join(repositoryRoot, 'scripts')),
  ];
  return gzipDeterministic(tar(entries));
}

/** Builds the archive and writes it into a directory of its own, named by its hash. */
export function buildAgentBundle(options: AgentBundleOptions = {}): AgentBundle {
  const repositoryRoot = options.repositoryRoot ?? join(__dirname, '..');
  const archive = agentArchive(repositoryRoot);
  const sha256 = createHash('sha256').update(archive).digest('hex');
  const directory = join(options.outputRoot ?? join(tmpdir(), 'akanda-ci-agent'), sha256);
  mkdirSync(directory, { recursive: true });
  const archivePath = join(directory, AGENT_ARCHIVE_NAME);
  writeFileSync(archivePath, archive);
  return { directory, archivePath, sha256 };
}
