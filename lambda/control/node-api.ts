/**
 * The node callback API (`POST /node/claim|result|heartbeat|upload`, docs/design.md): each call is a
 * conditional lifecycle transition guarded by a one-time token whose hash is on the build.
 * Nodes are untrusted: a wrong or missing token gets 401 and changes nothing, and a node can
 * only ever touch its own build.
 */
import { gitBaseUrl } from '../core/config';
import { NODE_RESULTS, type NodeResult, zuulResult } from '../core/lifecycle';
import { sanitiseSummary } from '../core/summary';
import { hashToken, newToken, tokenMatches } from '../adapters/store';
import { applyBuildEvent, isFinished, pokeSchedulerIfQueued } from './builds';
import { reply, type ControlResponse } from './http';
import type { ControlPorts } from './ports';
import type { BuildRecord, BuildsetRecord, JobSpec } from './records';

/** How long a node may upload logs with its claim-time presigned POST, beyond its job's deadline. */
const UPLOAD_SLACK_SECONDS = 3600;
/**
 * Expiry of the presigned POST `/node/upload` hands out right before the node uploads: long enough
 * for a devstack log directory with an appliance image on a slow link, short enough to be no
 * standing right. Signed when asked for, it is not cut short by credentials that expired meanwhile.
 */
export const FRESH_UPLOAD_SECONDS = 30 * 60;
/** A node still gets a fresh upload this long after its attempt ended (its result, a timeout, a cancel). */
export const UPLOAD_AFTER_FINISH_SECONDS = 30 * 60;

export async function handleNodeRequest(ports: ControlPorts, path: string, body: unknown): Promise<ControlResponse> {
  const request = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : {};
  const buildId =
    typeof request.buildId === 'string' && /^[0-9a-f]{1,64}$/.test(request.buildId) ? request.buildId : '';
  if (!buildId) return reply(400, { error: 'buildId missing or malformed' });
  switch (path) {
    case '/node/claim':
      return claim(ports, buildId, request.claimToken);
    case '/node/result':
      return result(ports, buildId, request);
    case '/node/heartbeat':
      return heartbeat(ports, buildId, request.resultToken);
    case '/node/upload':
      return freshUpload(ports, buildId, request.resultToken);
    default:
      return reply(404, { error: 'unknown node API path' });
  }
}

async function claim(ports: ControlPorts, buildId: string, claimToken: unknown): Promise<ControlResponse> {
  const build = await ports.store.getBuild<BuildRecord>(buildId);
  if (!build || !tokenMatches(claimToken, build.claimTokenHash)) return reply(401, { error: 'wrong claim token' });
  const resultToken = newToken();
  const applied = await applyBuildEvent(
    ports,
    buildId,
    { type: 'claimed', attempt: build.attempt },
    (next, current) =>
      // The token must still be the one of the launch being claimed, and it works once.
      tokenMatches(claimToken, current.claimTokenHash)
        ? { ...next, claimTokenHash: undefined, resultTokenHash: hashToken(resultToken) }
        : undefined,
    build,
  );
  if (!applied.changed || !applied.build) return reply(409, { error: 'build is not waiting to be claimed' });
  const claimed = applied.build;
  const buildset = await ports.store.getBuildset<BuildsetRecord>(claimed.buildsetId);
  if (!buildset) return reply(409, { error: 'buildset is gone' });
  const expiresSeconds = Math.min(7 * 24 * 3600, claimed.timeoutSeconds + claimed.graceSeconds + UPLOAD_SLACK_SECONDS);
  const upload = await ports.artifacts.logUpload(claimed.logKeyPrefix, expiresSeconds);
  return reply(200, { job: jobSpec(ports, buildset, claimed), upload, resultToken });
}

function jobSpec(ports: ControlPorts, buildset: BuildsetRecord, build: BuildRecord): JobSpec {
  return {
    buildId: build.buildId,
    buildsetId: buildset.buildsetId,
    pipeline: buildset.pipeline,
    project: buildset.project,
    branch: buildset.branch,
    ...(buildset.change !== undefined ? { change: buildset.change } : {}),
    ...(buildset.patchset !== undefined ? { patchset: buildset.patchset } : {}),
    ref: buildset.ref,
    revision: buildset.revision,
    jobName: build.jobName,
    run: build.run,
    timeoutSeconds: build.timeoutSeconds,
    imageMode: build.imageMode,
    ...(build.imageUrl !== undefined ? { imageUrl: build.imageUrl } : {}),
    gitUrl: gitBaseUrl(ports.config),
    repositories: buildset.repositories,
  };
}

async function result(
  ports: ControlPorts,
  buildId: string,
  request: Record<string, unknown>,
): Promise<ControlResponse> {
  const build = await ports.store.getBuild<BuildRecord>(buildId);
  if (!build || !tokenMatches(request.resultToken, build.resultTokenHash)) {
    return reply(401, { error: 'wrong result token' });
  }
  const value = request.result;
  if (typeof value !== 'string' || !(NODE_RESULTS as readonly string[]).includes(value)) {
    return reply(400, { error: `result must be one of ${NODE_RESULTS.join(', ')}` });
  }
  const nodeResult = value as NodeResult;
  const elapsed = request.elapsedSeconds;
  const elapsedSeconds =
    typeof elapsed === 'number' && Number.isFinite(elapsed) && elapsed >= 0 && elapsed < 30 * 24 * 3600
      ? elapsed
      : undefined;
  // The node is untrusted: sanitised here as well as on the node, and kept only on a failed build.
  const summary = nodeResult === 'FAILURE' || nodeResult === 'ERROR' ? sanitiseSummary(request.summary) : undefined;
  const applied = await applyBuildEvent(
    ports,
    buildId,
    {
      type: 'result',
      result: nodeResult,
      attempt: build.attempt,
      ...(elapsedSeconds !== undefined ? { elapsedSeconds } : {}),
    },
    (next, current) =>
      tokenMatches(request.resultToken, current.resultTokenHash) ? withSummary(next, summary) : undefined,
    build,
  );
  await pokeSchedulerIfQueued(ports, applied);
  if (applied.changed) return reply(200, { state: applied.build?.state });
  // A repeat of the result that already ended the build is fine; anything else came too late.
  const stored = applied.build ?? build;
  if (sameOutcome(stored, nodeResult)) {
    // The first delivery may have failed after its write, before its report was queued: queue it again
    // (the reporter posts once per buildset, so a second message is harmless).
    await ports.reportQueue.send({ buildsetId: stored.buildsetId });
    return reply(200, { state: stored.state });
  }
  if (nodeResult === 'INTERRUPTED' && stored.state === 'queued') return reply(200, { state: stored.state });
  return reply(409, { error: `build is ${stored.state}`, state: stored.state });
}

/** The build with this attempt's summary; an earlier attempt's never outlives a relaunch. */
function withSummary(build: BuildRecord, summary: string | undefined): BuildRecord {
  const { summary: _earlier, ...rest } = build;
  return summary === undefined ? rest : { ...rest, summary };
}

function sameOutcome(build: BuildRecord, result: NodeResult): boolean {
  const reported = zuulResult(build);
  if (result === 'SUCCESS') return reported === 'SUCCESS';
  if (result === 'FAILURE' || result === 'ERROR') return reported === result;
  return false;
}

async function heartbeat(ports: ControlPorts, buildId: string, resultToken: unknown): Promise<ControlResponse> {
  const build = await ports.store.getBuild<BuildRecord>(buildId);
  if (!build || !tokenMatches(resultToken, build.resultTokenHash)) return reply(401, { error: 'wrong result token' });
  // The node learns that its build is over (cancelled, timed out) and can stop early.
  return reply(200, { state: build.state });
}

/**
 * A fresh presigned POST for the build's logs, asked for right before the upload: the claim-time
 * one is signed with the Lambda's temporary credentials and may be dead by the end of a long job.
 * The result token names the attempt (a relaunch replaces it), so only the node that ran this
 * attempt gets one, while the build runs or shortly after it ended; never for an attempt sent
 * back to the queue (the next attempt's logs take its place).
 */
async function freshUpload(ports: ControlPorts, buildId: string, resultToken: unknown): Promise<ControlResponse> {
  const build = await ports.store.getBuild<BuildRecord>(buildId);
  if (!build || !tokenMatches(resultToken, build.resultTokenHash)) return reply(401, { error: 'wrong result token' });
  const justFinished =
    isFinished(build) &&
    build.finishedAt !== undefined &&
    ports.now() - build.finishedAt <= UPLOAD_AFTER_FINISH_SECONDS;
  if (build.state !== 'running' && !justFinished) {
    return reply(409, { error: `build is ${build.state}`, state: build.state });
  }
  const upload = await ports.artifacts.logUpload(build.logKeyPrefix, FRESH_UPLOAD_SECONDS);
  return reply(200, { upload });
}
