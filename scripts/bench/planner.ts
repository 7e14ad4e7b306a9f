/**
 * Planner throughput: events planned per second over a realistic mixed stream, the way the ingest
 * sees it (JSON text in, plan out). The mix follows a busy upstream Gerrit that a third-party CI
 * watches: most events are comments and NoteDb meta ref updates on projects it does not test, a
 * few are patchsets, rechecks, approvals and merges on the Akanda repositories.
 *
 * `npm run bench` runs it with the others; `npx tsx scripts/bench/planner.ts` runs it alone.
 * Target: at least 20,000 events/s on one core.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../lambda/core/config';
import { planEvent } from '../../lambda/core/planner';

const ROOT = join(__dirname, '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'gerrit-events');
// AKANDA_CI_BENCH_MS shortens the run for the smoke test that keeps the benchmark working.
const DURATION_MS = Number(process.env.AKANDA_CI_BENCH_MS ?? 2000);

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Record<string, unknown>;
}

/** A copy of a fixture moved to another project and change number, so the stream is not one event repeated. */
function variant(name: string, project: string, change: number): string {
  const event = fixture(name);
  const patchSet = event.patchSet as Record<string, unknown> | undefined;
  const changeObject = event.change as Record<string, unknown> | undefined;
  if (changeObject) {
    changeObject.project = project;
    changeObject.number = change;
  }
  if (patchSet)
    patchSet.ref = `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/${String(patchSet.number)}`;
  const refUpdate = event.refUpdate as Record<string, unknown> | undefined;
  if (refUpdate) {
    refUpdate.project = project;
    if (String(refUpdate.refName).startsWith('refs/changes/')) {
      refUpdate.refName = `refs/changes/${String(change % 100).padStart(2, '0')}/${change}/meta`;
    }
  }
  return JSON.stringify(event);
}

/** Relative frequencies of what a third-party CI receives from an OpenStack-sized Gerrit. */
const MIX: [fixture: string, weight: number, watched: boolean | string][] = [
  ['ssh-new-comment-added-workflow-unchanged.json', 30, false],
  ['ssh-new-ref-updated-change-meta.json', 30, false],
  ['ssh-new-patchset-created.json', 8, false],
  ['ssh-new-reviewer-added.json', 6, false],
  ['ssh-new-change-merged.json', 3, false],
  ['ssh-new-ref-updated.json', 3, false],
  ['ssh-new-patchset-created.json', 4, true],
  ['ssh-new-comment-added-recheck.json', 3, true],
  ['ssh-new-comment-added-workflow.json', 2, true],
  ['webhook-new-patchset-created-appliance.json', 2, true],
  ['webhook-new-ref-updated.json', 1, 'stackforge/akanda-appliance'],
  ['ssh-new-change-abandoned.json', 1, true],
  ['ssh-old-comment-added-recheck.json', 1, true],
  ['ssh-new-dropped-output.json', 1, false],
];

const AKANDA = ['stackforge/akanda-rug', 'stackforge/akanda-appliance', 'stackforge/akanda-neutron'];

export function mixedStream(size = 5000): string[] {
  const stream: string[] = [];
  const total = MIX.reduce((sum, [, weight]) => sum + weight, 0);
  let change = 500000;
  for (let i = 0; stream.length < size; i++) {
    for (const [name, weight, watched] of MIX) {
      const count = Math.max(1, Math.round((weight / total) * 100));
      for (let k = 0; k < count && stream.length < size; k++) {
        change += 1;
        const project =
          typeof watched === 'string'
            ? watched
            : watched
              ? AKANDA[change % AKANDA.length]!
              : `openstack/project-${change % 300}`;
        stream.push(variant(name, project, change));
      }
    }
  }
  return stream;
}

export async function run(): Promise<void> {
  const config = parseConfig(readFileSync(join(ROOT, 'akanda-ci.yaml'), 'utf8'));
  const stream = mixedStream();
  const inputs = { imageBaseUrl: 'https://d111111abcdef8.cloudfront.net' };
  // Warm up so the figure is the steady state, not the JIT.
  for (const event of stream) planEvent(config, event, inputs);

  let planned = 0;
  let triggered = 0;
  const start = process.hrtime.bigint();
  let elapsedMs = 0;
  while (elapsedMs < DURATION_MS) {
    for (const event of stream) {
      triggered += planEvent(config, event, inputs).triggered.length;
    }
    planned += stream.length;
    elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  }
  const perSecond = Math.round(planned / (elapsedMs / 1000));
  const share = ((triggered / planned) * 100).toFixed(1);
  process.stdout.write(
    `planner: ${perSecond.toLocaleString('en-US')} events/s (${planned} events in ${Math.round(elapsedMs)} ms, ` +
      `JSON text in; ${share}% trigger a buildset; target >= 20,000/s)\n`,
  );
}

if (require.main === module) {
  run().catch((error: unknown) => {
    process.stderr.write(`bench planner: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
