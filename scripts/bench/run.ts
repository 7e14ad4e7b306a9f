/**
 * `npm run bench`: runs every benchmark in this directory in turn and prints its figures.
 * Each benchmark module exports `run(): Promise<void>`. Figures are printed, never asserted:
 * speed is judged by people reading them, not by tests that flake on a busy machine.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

async function main(): Promise<void> {
  const only = process.argv[2];
  const names = readdirSync(__dirname)
    .filter((file) => file.endsWith('.ts') && file !== 'run.ts')
    .map((file) => file.replace(/\.ts$/, ''))
    .filter((name) => !only || name === only)
    .sort();
  for (const name of names) {
    const bench = (await import(join(__dirname, name))) as { run?: () => Promise<void> };
    if (typeof bench.run !== 'function') continue;
    process.stdout.write(`\n== ${name}\n`);
    await bench.run();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
