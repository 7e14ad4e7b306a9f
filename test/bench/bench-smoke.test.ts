/**
 * Keeps `npm run bench` working: runs it with tiny sizes and checks every figure line is printed.
 * Nothing here judges speed (figures are for people to read); it only fails when a benchmark breaks.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');

test('npm run bench prints the planner and control-plane figures', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'bench', 'run.ts')], {
    cwd: ROOT,
    env: { ...process.env, AKANDA_CI_BENCH_EVENTS: '20', AKANDA_CI_BENCH_MS: '100' },
    timeout: 120_000,
  });
  expect(stdout).toMatch(/^planner: [\d,]+ events\/s/m);
  expect(stdout).toMatch(/^webhook request -> node launch +n=20 /m);
  expect(stdout).toMatch(/^node result -> review POST +n=20 /m);
  expect(stdout).toMatch(/^ingest with dedupe +\d+ events\/s/m);
}, 130_000);
