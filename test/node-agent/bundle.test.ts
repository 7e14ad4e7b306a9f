import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const execFileAsync = promisify(execFile);

describe('node-agent bundle', () => {
  let outDir: string;
  beforeAll(async () => {
    outDir = await mkdtemp(path.join(tmpdir(), 'akanda-ci-bundle-'));
  });
  afterAll(async () => {
    await rm(outDir, { recursive: true, force: true });
  });

  it('bundles for the Ubuntu nodejs (node18) with every import resolved, and the bundle runs', async () => {
    const outfile = path.join(outDir, 'node-agent.js');
    const result = await build({
      entryPoints: [path.resolve(__dirname, '../../lambda/node-agent/main.ts')],
      bundle: true,
      platform: 'node',
      target: 'node18',
      format: 'cjs',
      outfile,
      logLevel: 'silent',
      metafile: true,
    });
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    // Only Node built-ins stay outside the bundle: the node has no node_modules.
    const external = Object.values(result.metafile.inputs)
      .flatMap((input) => input.imports)
      .filter((imported) => imported.external)
      .map((imported) => imported.path);
    expect(external.filter((name) => !name.startsWith('node:'))).toEqual([]);
    expect((await stat(outfile)).size).toBeGreaterThan(0);

    const { stdout } = await execFileAsync(process.execPath, [outfile, '--help']);
    expect(stdout).toContain('usage:');
  });
});
