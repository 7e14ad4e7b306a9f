/**
 * `POST /webhook/<token>`: token check -> size and JSON check -> plan with the core -> dedupe ->
 * record the buildsets -> hand them to the scheduler. Fast and idempotent: the webhooks plugin
 * counts only 200/201/202/204 as delivered and retries anything else, and the same event may also
 * arrive by another path, so a repeat must neither fail nor start a second buildset.
 *
 * Dedupe is two-layered: buildset ids are derived from the canonical event key (so a repeat can
 * only re-create what exists, which the conditional put refuses), and the event key item is
 * written last, after the hand-off, so a crash before the hand-off is repaired by the redelivery.
 * A check trigger for a patchset whose check buildset is still in the pipeline answers like a
 * duplicate too (Zuul enqueues a change once); after that buildset's report a recheck starts anew.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventError, planEvent, type Plan, type TriggeredBuildset } from '../core/planner';
import { canonicalEventKey } from './event-key';
import { MAX_BODY_BYTES, reply, type ControlResponse } from './http';
import type { ControlPorts } from './ports';
import type { BuildsetRecord, BuildsetState } from './records';

export interface WebhookRequest {
  /** The `<token>` path segment, exactly as received. */
  token: string;
  body: Buffer | string;
}

export async function ingestWebhook(ports: ControlPorts, request: WebhookRequest): Promise<ControlResponse> {
  if (!sameSecret(request.token, await ports.webhookToken())) {
    ports.logger.warn('webhook refused: wrong token');
    return reply(401, { error: 'unknown webhook token' });
  }
  const size = typeof request.body === 'string' ? Buffer.byteLength(request.body) : request.body.length;
  if (size > MAX_BODY_BYTES) return reply(413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
  let raw: unknown;
  try {
    raw = JSON.parse(request.body.toString());
  } catch {
    return reply(400, { error: 'body is not JSON' });
  }
  let plan: Plan;
  try {
    plan = planEvent(ports.config, raw, ports.imageBaseUrl ? { imageBaseUrl: ports.imageBaseUrl } : {});
  } catch (error) {
    if (error instanceof EventError) return reply(400, { error: error.message });
    throw error;
  }
  if (plan.triggered.length === 0 && plan.supersedes.length === 0) {
    return reply(200, { ignored: plan.ignored ?? 'nothing to do' });
  }

  const key = canonicalEventKey(raw);
  if (await ports.store.eventSeen(key)) return reply(200, { duplicate: true });

  const now = ports.now();
  const eventJson = JSON.stringify(raw);
  const queued = await alreadyInCheckPipeline(ports, plan.triggered);
  if (plan.triggered.length > 0 && queued.size === plan.triggered.length) {
    // Nothing new to record, but the key is: a later delivery of this event must not start a buildset.
    if (plan.supersedes.length > 0) await ports.scheduleQueue.send({ kind: 'supersede', supersedes: plan.supersedes });
    await ports.store.recordEvent(key, [], now);
    return reply(200, { duplicate: true });
  }
  // Ids keep the trigger's index in the plan, so every delivery of one event names the same buildsets.
  const buildsetIds = plan.triggered.flatMap((_, i) => (queued.has(i) ? [] : [derivedId(key, i)]));
  for (const [i, triggered] of plan.triggered.entries()) {
    if (queued.has(i)) continue;
    const buildset: BuildsetRecord = {
      buildsetId: derivedId(key, i),
      state: 'pending',
      pipeline: triggered.pipeline,
      project: triggered.project,
      branch: triggered.branch,
      ...(triggered.change !== undefined ? { change: triggered.change } : {}),
      ...(triggered.patchset !== undefined ? { patchset: triggered.patchset } : {}),
      ...(triggered.changeId !== undefined ? { changeId: triggered.changeId } : {}),
      ref: triggered.ref,
      revision: triggered.revision,
      eventJson,
      triggerIndex: i,
      buildIds: [],
      repositories: [{ project: triggered.project, ref: triggered.ref, revision: triggered.revision }],
      createdAt: now,
      version: 0,
    };
    if (await ports.store.putBuildset(buildset)) {
      ports.logger.info(
        `buildset ${buildset.buildsetId}: recorded (${triggered.pipeline} ${describeBuildset(buildset)})`,
        {
          buildsetId: buildset.buildsetId,
          pipeline: triggered.pipeline,
          project: triggered.project,
          change: triggered.change,
          patchset: triggered.patchset,
          jobs: triggered.jobs.map((j) => j.name),
        },
      );
    }
  }
  // A repeat racing this one may send these too: the scheduler acts on a pending buildset once.
  for (const buildsetId of buildsetIds) {
    await ports.scheduleQueue.send({ kind: 'buildset', buildsetId, supersedes: plan.supersedes });
  }
  if (buildsetIds.length === 0) await ports.scheduleQueue.send({ kind: 'supersede', supersedes: plan.supersedes });
  const fresh = await ports.store.recordEvent(key, buildsetIds, now);
  return reply(202, { buildsets: buildsetIds, ...(fresh ? {} : { duplicate: true }) });
}

/** A check buildset is in the pipeline until its report is out (or it is cancelled or skipped). */
const IN_PIPELINE: ReadonlySet<BuildsetState> = new Set(['pending', 'scheduled', 'reporting']);

/**
 * The indexes of the plan's check triggers whose change and patchset already have a check buildset
 * in the pipeline. Zuul does not enqueue a change that is already there: a recheck (or a restore)
 * while one runs would otherwise start a second buildset and post a second report on the patchset.
 * Gate is its own pipeline and is not looked at.
 */
async function alreadyInCheckPipeline(
  ports: ControlPorts,
  triggers: readonly TriggeredBuildset[],
): Promise<Set<number>> {
  const queued = new Set<number>();
  for (const [i, triggered] of triggers.entries()) {
    if (triggered.pipeline !== 'check' || triggered.change === undefined || triggered.patchset === undefined) continue;
    const buildsets = await ports.store.buildsetsOfChange<BuildsetRecord>(triggered.project, triggered.change);
    const active = buildsets.find(
      (b) => b.pipeline === 'check' && b.patchset === triggered.patchset && IN_PIPELINE.has(b.state),
    );
    if (!active) continue;
    queued.add(i);
    ports.logger.info(
      `${describeBuildset(triggered)}: already in the check pipeline (buildset ${active.buildsetId}, ` +
        `${active.state}): ${triggered.trigger} starts nothing`,
      {
        buildsetId: active.buildsetId,
        pipeline: 'check',
        project: triggered.project,
        change: triggered.change,
        patchset: triggered.patchset,
        trigger: triggered.trigger,
      },
    );
  }
  return queued;
}

export function describeBuildset(buildset: Pick<BuildsetRecord, 'project' | 'change' | 'patchset' | 'ref'>): string {
  return buildset.change !== undefined
    ? `${buildset.project} change ${buildset.change},${buildset.patchset ?? '?'}`
    : `${buildset.project} ${buildset.ref}`;
}

/** Buildset ids come from the event key, so every delivery of one event names the same buildsets. */
function derivedId(key: string, index: number): string {
  return createHash('sha256').update(`${key}:${index}`).digest('hex').slice(0, 20);
}

/** Constant-time comparison of equal-length digests, whatever the lengths of the inputs. */
export function sameSecret(presented: string, expected: string): boolean {
  if (!expected) return false;
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}
