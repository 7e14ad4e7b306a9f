/**
 * The reporter: when every build of a buildset is terminal, post exactly one review.
 *
 * Exactly once: before each POST the reporter wins a conditional write (`reportAttempts` + 1 on
 * the version it read, and `reportingUntil`, a lease on the attempt), so of concurrent deliveries
 * only one posts and the others leave while the attempt is in flight; after the POST it writes
 * `reported` (or `dropped` on 409, `dead_lettered`, or the time the retry is due). Every attempt after the first one first
 * asks Gerrit whether the review is already on the patchset (our tag and the first build's log
 * URL, unique to this buildset), which covers an answer lost after Gerrit saved the review and a
 * crash between the POST and the `reported` write. What is left: Gerrit listing a saved message
 * late, which it does not do on one server.
 *
 * Retries: 5xx, 429, timeouts and network errors are retried with growing delays (the policy in
 * ports, by default the Gerrit client's: 2 s, 4 s, 8 s ... 5 min, > 30 min in all), then the
 * report is dead-lettered with an error log and the `ReportsDeadLettered` metric (alarmed in
 * lib/ci-alarms.ts). 409 (change closed) is logged and dropped; other 4xx (401/403: a wrong Gerrit
 * password) are dead-lettered at once.
 */
import { buildsetOutcome } from '../core/lifecycle';
import type { ReviewOutcome } from '../adapters/gerrit-client';
import { buildsetReview, REVIEW_TAG, unrunnableReview } from '../core/report';
import { promoteImage } from './image-promotion';
import { describeBuildset } from './ingest';
import { recordDeadLetteredReport, recordVote } from './metrics';
import type { ControlPorts } from './ports';
import type { BuildRecord, BuildsetRecord, BuildsetState } from './records';

export type ReportStep = { kind: 'done' } | { kind: 'retry'; delaySeconds: number };

const DONE: ReportStep = { kind: 'done' };
/** Longer than one attempt can take (the Gerrit client's timeouts are 15 s per request). */
const ATTEMPT_LEASE_SECONDS = 60;
/** Timers and queues deliver a retry at its due time, give or take clock rounding. */
const DUE_SLACK_SECONDS = 0.5;

export async function reportBuildset(ports: ControlPorts, buildsetId: string): Promise<ReportStep> {
  for (;;) {
    const buildset = await ports.store.getBuildset<BuildsetRecord>(buildsetId);
    if (!buildset || (buildset.state !== 'scheduled' && buildset.state !== 'reporting')) return DONE;
    const builds = await ports.store.getBuilds<BuildRecord>(buildset.buildIds);
    if (builds.length !== buildset.buildIds.length) return DONE;
    // A buildset the scheduler refused to run has no builds: it reports why, as one failed result.
    const outcome =
      buildset.unrunnable !== undefined
        ? { complete: true as const, report: true as const, succeeded: false }
        : buildsetOutcome(builds, { commentOnly: ports.config.report.commentOnly });
    if (!outcome.complete) return DONE;
    if (!outcome.report) {
      if (await close(ports, buildset, 'cancelled', outcome.why)) return DONE;
      continue;
    }
    const now = ports.now();
    if (buildset.reportingUntil !== undefined && now < buildset.reportingUntil) {
      // Another delivery holds the attempt in flight. Look again when its lease ends: by then it has
      // recorded the outcome, or it crashed and this delivery takes over.
      return { kind: 'retry', delaySeconds: Math.max(1, buildset.reportingUntil - now) };
    }
    if (buildset.nextReportAt !== undefined && now + DUE_SLACK_SECONDS < buildset.nextReportAt) {
      // An early duplicate while a retry is scheduled: that retry owns the report.
      return DONE;
    }
    if (buildset.change === undefined || !buildset.changeId) {
      // Post-merge buildsets have no change to vote on: their images are published, their result logged.
      await publishImages(ports, buildset, builds);
      if (await close(ports, buildset, 'reported', `post buildset ${outcome.succeeded ? 'succeeded' : 'failed'}`)) {
        return DONE;
      }
      continue;
    }

    const attempt = (buildset.reportAttempts ?? 0) + 1;
    const claimed: BuildsetRecord = {
      ...buildset,
      state: 'reporting',
      reportAttempts: attempt,
      nextReportAt: undefined,
      reportingUntil: now + ATTEMPT_LEASE_SECONDS,
      version: buildset.version + 1,
    };
    if (!(await ports.store.putBuildset(claimed))) continue;

    const ordered = [...builds].sort((a, b) => a.createdAt - b.createdAt);
    const review =
      buildset.unrunnable !== undefined
        ? unrunnableReview(buildset.pipeline, buildset.unrunnable, ports.config.report)
        : buildsetReview(buildset.pipeline, ordered, outcome, ports.config.report);
    const triplet = { project: buildset.project, branch: buildset.branch, changeId: buildset.changeId };
    const fields = { buildsetId, attempt, change: buildset.change, patchset: buildset.patchset };
    // The first build's log URL is unique to the buildset; without builds, the reason line marks the review.
    const marker = buildset.unrunnable ?? ordered[0]?.logUrl;
    const previous = attempt > 1 ? await alreadyPosted(ports, buildset, marker) : 'no';
    const result: ReviewOutcome | { kind: 'posted'; found: true } =
      previous === 'yes'
        ? { kind: 'posted', found: true }
        : previous === 'unknown'
          ? { kind: 'retryable', reason: 'cannot tell whether the last attempt reached Gerrit' }
          : await ports.gerrit.postReview(triplet, buildset.revision, review);
    switch (result.kind) {
      case 'posted':
        ports.logger.info(
          `buildset ${buildsetId}: review ${'found' in result ? 'found already ' : ''}posted (${describeBuildset(buildset)}, ${voteText(review)})`,
          {
            ...fields,
            labels: review.labels,
          },
        );
        recordVote(ports, buildset);
        await settle(ports, buildsetId, 'reported');
        return DONE;
      case 'dropped':
        ports.logger.warn(`buildset ${buildsetId}: review dropped, change closed (${result.reason})`, fields);
        await settle(ports, buildsetId, 'dropped', result.reason);
        return DONE;
      case 'failed':
        ports.logger.error(`buildset ${buildsetId}: review dead-lettered (${result.reason})`, fields);
        await settle(ports, buildsetId, 'dead_lettered', result.reason);
        recordDeadLetteredReport(ports);
        return DONE;
      case 'retryable': {
        if (attempt >= ports.reportRetry.maxAttempts) {
          ports.logger.error(
            `buildset ${buildsetId}: review dead-lettered after ${attempt} attempts (${result.reason})`,
            fields,
          );
          await settle(ports, buildsetId, 'dead_lettered', result.reason);
          recordDeadLetteredReport(ports);
          return DONE;
        }
        const delaySeconds = ports.reportRetry.delaySeconds(attempt, result.retryAfterSeconds);
        ports.logger.warn(`buildset ${buildsetId}: review attempt ${attempt} failed, retry in ${delaySeconds}s`, {
          ...fields,
          reason: result.reason,
        });
        await settle(ports, buildsetId, 'reporting', undefined, ports.now() + delaySeconds);
        return { kind: 'retry', delaySeconds };
      }
    }
  }
}

/** Promotes the image of every successful publishing build (copies are idempotent, so a retry may redo them). */
async function publishImages(ports: ControlPorts, buildset: BuildsetRecord, builds: BuildRecord[]): Promise<void> {
  for (const build of builds) {
    if (!build.publishesImage || build.state !== 'succeeded') continue;
    if (!ports.images) {
      ports.logger.warn(`buildset ${buildset.buildsetId}: no image store configured, image not published`);
      continue;
    }
    const promotion = await promoteImage(ports.images, ports.config, buildset, build, ports.now());
    if (promotion.promoted) {
      ports.logger.info(
        `buildset ${buildset.buildsetId}: image published at ${promotion.imageKey}${promotion.latest ? ' and as the latest' : ''}`,
        { buildsetId: buildset.buildsetId, buildId: build.buildId, imageKey: promotion.imageKey },
      );
    } else {
      ports.logger.error(`buildset ${buildset.buildsetId}: image not published (${promotion.reason})`, {
        buildsetId: buildset.buildsetId,
        buildId: build.buildId,
      });
    }
  }
}

/**
 * Whether an earlier attempt's review reached Gerrit. `unknown` (Gerrit unreachable) is not a
 * licence to post: the attempt is retried instead, so a lost answer never becomes a second vote.
 */
async function alreadyPosted(
  ports: ControlPorts,
  buildset: BuildsetRecord,
  marker: string | undefined,
): Promise<'yes' | 'no' | 'unknown'> {
  if (!marker || buildset.patchset === undefined || !buildset.changeId) return 'no';
  try {
    const found = await ports.gerrit.hasReview(
      { project: buildset.project, branch: buildset.branch, changeId: buildset.changeId },
      buildset.patchset,
      { tag: REVIEW_TAG, contains: marker },
    );
    return found ? 'yes' : 'no';
  } catch (error) {
    ports.logger.warn(`buildset ${buildset.buildsetId}: cannot list the change's messages`, {
      buildsetId: buildset.buildsetId,
      error: error instanceof Error ? error.message : String(error),
    });
    return 'unknown';
  }
}

function voteText(review: { labels?: Record<string, number> }): string {
  const entries = Object.entries(review.labels ?? {});
  return entries.length === 0 ? 'no vote' : entries.map(([k, v]) => `${k} ${v > 0 ? '+' : ''}${v}`).join(', ');
}

async function close(ports: ControlPorts, buildset: BuildsetRecord, state: BuildsetState, reason: string) {
  const closed: BuildsetRecord = { ...buildset, state, reason, closedAt: ports.now(), version: buildset.version + 1 };
  const won = await ports.store.putBuildset(closed);
  if (won) ports.logger.info(`buildset ${buildset.buildsetId}: ${buildset.state} -> ${state} (${reason})`);
  return won;
}

/** Records the outcome of the POST this invocation made (it holds the latest version unless raced). */
async function settle(
  ports: ControlPorts,
  buildsetId: string,
  state: BuildsetState,
  reason?: string,
  nextReportAt?: number,
): Promise<void> {
  for (let race = 0; race < 10; race++) {
    const buildset = await ports.store.getBuildset<BuildsetRecord>(buildsetId);
    if (!buildset) return;
    const next: BuildsetRecord = {
      ...buildset,
      state,
      ...(reason !== undefined ? { reason } : {}),
      nextReportAt,
      reportingUntil: undefined,
      ...(state === 'reporting' ? {} : { closedAt: ports.now() }),
      version: buildset.version + 1,
    };
    if (await ports.store.putBuildset(next)) {
      if (state !== 'reporting') ports.logger.info(`buildset ${buildsetId}: reporting -> ${state}`);
      return;
    }
  }
}
