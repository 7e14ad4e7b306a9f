/**
 * The scheduler: turns a recorded buildset into builds and builds into nodes.
 *
 * 1. Supersede: a new patchset cancels the older patchsets' check buildsets (their nodes are
 *    terminated; a buildset with a cancelled build is never reported, so no vote for them).
 * 2. Ask Gerrit REST for the change (closed, or a newer patchset: nothing to run), its changed files
 *    and its `Depends-On` changes, transitively, and re-plan with the core. A Depends-On cycle or
 *    one that cannot be resolved runs nothing and is reported on the change; Gerrit unreachable is
 *    retried through the queue (the message fails) rather than guessed around.
 * 3. Create the builds (ids derived from buildset and job, so a retried message re-creates nothing).
 * 4. Launch queued builds, oldest first, while fewer than `limits.maxConcurrentNodes` are out.
 *
 * Launching counts the nodes out against the limit, so only the holder of the `launch` lease
 * launches; everything else is idempotent and may run concurrently.
 */
import { createHash } from 'node:crypto';
import { logKeyPrefix, type LogLocation } from '../adapters/artifacts';
import { DependencyError, GerritError, resolvedDependency, type GerritChange } from '../adapters/gerrit-client';
import { hashToken, newToken } from '../adapters/store';
import { DependencyCycleError, findDependencyCycle, parseDependsOn, type DependsOnFooter } from '../core/depends-on';
import { durationSeconds } from '../core/duration';
import { launchEvent } from '../adapters/fleet';
import { launchableAt, newBuild } from '../core/lifecycle';
import { planEvent, type PlanInputs, type ResolvedDependency, type TriggeredBuildset } from '../core/planner';
import { applyBuildEvent } from './builds';
import { describeBuildset } from './ingest';
import { recordMetrics, recordNodeGauges } from './metrics';
import type { ControlPorts, ScheduleMessage } from './ports';
import type { BuildRecord, BuildsetRecord } from './records';

type Supersede = { project: string; change: number; belowPatchset: number };

export async function handleScheduleMessage(ports: ControlPorts, message: ScheduleMessage): Promise<void> {
  if (message.kind === 'buildset' || message.kind === 'supersede') {
    for (const supersede of message.supersedes) await cancelSuperseded(ports, supersede);
  }
  if (message.kind === 'buildset') await scheduleBuildset(ports, message.buildsetId);
  await launchQueued(ports);
}

async function cancelSuperseded(ports: ControlPorts, supersede: Supersede): Promise<void> {
  const buildsets = await ports.store.buildsetsOfChange<BuildsetRecord>(supersede.project, supersede.change);
  for (const buildset of buildsets) {
    if (buildset.pipeline !== 'check' || (buildset.patchset ?? 0) >= supersede.belowPatchset) continue;
    await cancelBuildset(ports, buildset.buildsetId, `superseded by patchset ${supersede.belowPatchset}`);
  }
}

/** Marks a pending or scheduled buildset cancelled, then cancels its builds (terminating their nodes). */
export async function cancelBuildset(ports: ControlPorts, buildsetId: string, reason: string): Promise<void> {
  for (;;) {
    const buildset = await ports.store.getBuildset<BuildsetRecord>(buildsetId);
    if (!buildset || (buildset.state !== 'pending' && buildset.state !== 'scheduled')) return;
    const cancelled: BuildsetRecord = {
      ...buildset,
      state: 'cancelled',
      reason,
      closedAt: ports.now(),
      version: buildset.version + 1,
    };
    if (!(await ports.store.putBuildset(cancelled))) continue;
    ports.logger.info(`buildset ${buildsetId}: ${buildset.state} -> cancelled (${reason})`, {
      buildsetId,
      from: buildset.state,
      to: 'cancelled',
      reason,
    });
    for (const buildId of buildset.buildIds) await applyBuildEvent(ports, buildId, { type: 'cancel', reason });
    return;
  }
}

async function scheduleBuildset(ports: ControlPorts, buildsetId: string): Promise<void> {
  const buildset = await ports.store.getBuildset<BuildsetRecord>(buildsetId);
  if (!buildset || buildset.state !== 'pending') return;

  // Events can arrive out of order: a newer patchset's check buildset may already supersede this one.
  const [siblings, replanned] = await Promise.all([
    buildset.pipeline === 'check' && buildset.change !== undefined
      ? ports.store.buildsetsOfChange<BuildsetRecord>(buildset.project, buildset.change)
      : Promise.resolve([]),
    replan(ports, buildset),
  ]);
  const newer = siblings.find((b) => b.pipeline === 'check' && (b.patchset ?? 0) > (buildset.patchset ?? 0));
  if (newer) {
    await cancelBuildset(ports, buildsetId, `superseded by patchset ${newer.patchset ?? '?'}`);
    return;
  }

  if (replanned.kind === 'unrunnable') {
    await scheduleUnrunnable(ports, buildset, replanned.reason);
    return;
  }
  const triggered = replanned.kind === 'run' ? replanned.triggered : undefined;
  const dependencies = replanned.kind === 'run' ? replanned.dependencies : [];
  const jobs = triggered?.jobs ?? [];
  const now = ports.now();
  if (!triggered || jobs.length === 0) {
    const reason = replanned.kind === 'skip' ? replanned.reason : 'no job matches the changed files';
    const skipped: BuildsetRecord = {
      ...buildset,
      state: 'skipped',
      reason,
      closedAt: now,
      version: buildset.version + 1,
    };
    if (await ports.store.putBuildset(skipped)) {
      ports.logger.info(`buildset ${buildsetId}: pending -> skipped (${reason})`, { buildsetId, reason });
    }
    return;
  }

  const graceSeconds = durationSeconds(ports.config.limits.timeoutGrace);
  const claimTimeoutSeconds = durationSeconds(ports.config.limits.claimTimeout);
  const builds = jobs.map((job, index): BuildRecord => {
    const buildId = createHash('sha256').update(`${buildsetId}:${job.name}`).digest('hex').slice(0, 20);
    const location: LogLocation =
      triggered.pipeline === 'post' || triggered.change === undefined || triggered.patchset === undefined
        ? { pipeline: 'post', project: triggered.project, revision: triggered.revision, job: job.name, buildId }
        : {
            pipeline: triggered.pipeline,
            change: triggered.change,
            patchset: triggered.patchset,
            job: job.name,
            buildId,
          };
    const prefix = logKeyPrefix(location);
    return {
      ...newBuild(
        {
          buildId,
          buildsetId,
          jobName: job.name,
          nodeLabel: job.node,
          voting: job.voting,
          timeoutSeconds: job.timeoutSeconds,
          graceSeconds,
          claimTimeoutSeconds,
          maxAttempts: ports.config.limits.maxAttempts,
        },
        // The queue is first in first out by event arrival; microseconds apart keep job order.
        buildset.createdAt + index / 1e6,
      ),
      version: 0,
      run: job.run,
      imageMode: job.imageMode,
      ...(job.imageUrl !== undefined ? { imageUrl: job.imageUrl } : {}),
      ...(job.imageUnavailable !== undefined ? { imageUnavailable: job.imageUnavailable } : {}),
      publishesImage: job.publishesImage,
      logKeyPrefix: prefix,
      logUrl: ports.artifacts.publicUrl(prefix),
    };
  });
  // Builds before the buildset names them: a crash in between leaves it pending, and the retry re-creates nothing.
  const created = await Promise.all(builds.map((build) => ports.store.putBuild(build)));

  const scheduled: BuildsetRecord = {
    ...buildset,
    state: 'scheduled',
    buildIds: builds.map((b) => b.buildId),
    dependencies,
    repositories: [
      { project: triggered.project, ref: triggered.ref, revision: triggered.revision },
      ...dependencies.map((d) => ({ project: d.project, ref: d.ref, revision: d.revision })),
    ],
    version: buildset.version + 1,
  };
  if (await ports.store.putBuildset(scheduled)) {
    ports.logger.info(
      `buildset ${buildsetId}: pending -> scheduled (${describeBuildset(buildset)}: ${jobs.length} builds)`,
      {
        buildsetId,
        from: 'pending',
        to: 'scheduled',
        builds: builds.map((b) => ({ buildId: b.buildId, job: b.jobName })),
      },
    );
    // A retry after a crash: builds made then may have finished unreported (their buildset was pending).
    if (created.includes(false)) await ports.reportQueue.send({ buildsetId });
    return;
  }
  // Someone wrote first. A cancel (superseded, abandoned) while Gerrit was asked saw no builds to cancel:
  // cancel these now, or they would run and never be reported.
  const current = await ports.store.getBuildset<BuildsetRecord>(buildsetId);
  if (current?.state !== 'cancelled') return;
  const reason = current.reason ?? 'cancelled';
  for (const build of builds) await applyBuildEvent(ports, build.buildId, { type: 'cancel', reason });
}

/**
 * A buildset whose change cannot be tested as it stands: scheduled without builds, so the reporter
 * posts its one review (the reason and Verified -1) through the usual exactly-once path.
 */
async function scheduleUnrunnable(ports: ControlPorts, buildset: BuildsetRecord, reason: string): Promise<void> {
  const scheduled: BuildsetRecord = {
    ...buildset,
    state: 'scheduled',
    buildIds: [],
    unrunnable: reason,
    repositories: [{ project: buildset.project, ref: buildset.ref, revision: buildset.revision }],
    version: buildset.version + 1,
  };
  if (!(await ports.store.putBuildset(scheduled))) return;
  ports.logger.info(`buildset ${buildset.buildsetId}: pending -> scheduled without builds (${reason})`, {
    buildsetId: buildset.buildsetId,
    from: 'pending',
    to: 'scheduled',
    reason,
  });
  await ports.reportQueue.send({ buildsetId: buildset.buildsetId });
}

type Replanned =
  | { kind: 'run'; triggered?: TriggeredBuildset; dependencies: ResolvedDependency[] }
  | { kind: 'skip'; reason: string }
  | { kind: 'unrunnable'; reason: string };

/**
 * Re-plans the stored event with what only Gerrit REST knows: the change's status and current
 * patchset (stream events carry neither reliably, and a recheck may name an old patchset), its
 * changed files (unknown: every job runs) and its Depends-On changes. A Gerrit error other than
 * "no such change" is thrown, so the schedule message is retried.
 */
async function replan(ports: ControlPorts, buildset: BuildsetRecord): Promise<Replanned> {
  const raw: unknown = JSON.parse(buildset.eventJson);
  const first = planEvent(ports.config, raw, basicInputs(ports));
  const original = first.triggered[buildset.triggerIndex];
  if (!original || buildset.change === undefined) return { kind: 'run', triggered: original, dependencies: [] };

  let change: GerritChange;
  try {
    change = await ports.gerrit.getChange(buildset.change);
  } catch (error) {
    if (error instanceof GerritError && error.status === 404) {
      return { kind: 'skip', reason: `change ${buildset.change} does not exist or is not visible` };
    }
    throw error;
  }
  if (change.status !== 'NEW')
    return { kind: 'skip', reason: `change ${change.number} is ${change.status.toLowerCase()}` };

  const inputs: PlanInputs = { ...basicInputs(ports), currentPatchset: change.currentPatchset };
  const locator = buildset.changeId
    ? { project: buildset.project, branch: buildset.branch, changeId: buildset.changeId }
    : buildset.change;
  try {
    inputs.changedFiles = await ports.gerrit.getChangedFiles(locator, buildset.revision);
  } catch (error) {
    ports.logger.warn(`buildset ${buildset.buildsetId}: changed files unknown, running every job`, {
      buildsetId: buildset.buildsetId,
      error: errorText(error),
    });
  }
  const withoutDependencies = findTriggered(planEvent(ports.config, raw, inputs), buildset);
  if (!withoutDependencies.triggered) return { kind: 'skip', reason: withoutDependencies.ignored };

  const resolved = await resolveDependencies(ports, buildset, buildset.change, original.dependsOn);
  if ('unresolvable' in resolved) return { kind: 'unrunnable', reason: resolved.unresolvable };
  const { dependencies } = resolved;
  // One checkout per project: the node tests a same-project dependency only through the change's history.
  for (const dependency of dependencies) {
    if (dependency.project !== buildset.project) continue;
    if (await isAncestor(ports, change, dependency.revision)) continue;
    return {
      kind: 'unrunnable',
      reason:
        `Depends-On change ${dependency.change} is in the same project but not in the history of this patchset: ` +
        `rebase onto patchset ${dependency.patchset} of change ${dependency.change} to test them together`,
    };
  }
  if (dependencies.length === 0) return { kind: 'run', triggered: withoutDependencies.triggered, dependencies };
  const plan = planEvent(ports.config, raw, { ...inputs, dependencies });
  return { kind: 'run', triggered: findTriggered(plan, buildset).triggered, dependencies };
}

function findTriggered(
  plan: ReturnType<typeof planEvent>,
  buildset: BuildsetRecord,
): { triggered?: TriggeredBuildset; ignored: string } {
  const triggered = plan.triggered.find((t) => t.pipeline === buildset.pipeline && t.project === buildset.project);
  return { triggered, ignored: plan.ignored ?? 'no job matches the changed files' };
}

/** Depends-On chains stop here (changes in all, the tested one excluded): a longer one is reported, not run. */
export const MAX_DEPENDENCY_CHANGES = 20;

/**
 * The open changes `footers` name, their own Depends-On footers (from their current commit
 * messages) and so on, breadth first, each once, at most MAX_DEPENDENCY_CHANGES. A cycle, a
 * footer on this Gerrit that names no visible change, or too many changes make the buildset
 * unrunnable. URLs on another server are ignored with a note, as Zuul ignores unknown connections;
 * merged and abandoned dependencies are not tested with the change.
 */
async function resolveDependencies(
  ports: ControlPorts,
  buildset: BuildsetRecord,
  root: number,
  rootFooters: readonly DependsOnFooter[],
): Promise<{ dependencies: ResolvedDependency[] } | { unresolvable: string }> {
  const ownHost = new URL(ports.config.gerrit.url).host.toLowerCase();
  const graph = new Map<string, string[]>();
  const dependencies: ResolvedDependency[] = [];
  const seen = new Set<number>([root]);
  const pending: { change: number; footers: readonly DependsOnFooter[] }[] = [{ change: root, footers: rootFooters }];
  for (let next = pending.shift(); next; next = pending.shift()) {
    const edges: string[] = [];
    graph.set(String(next.change), edges);
    for (const footer of next.footers) {
      if (footer.form === 'url' && footer.host !== ownHost) {
        ports.logger.info(`buildset ${buildset.buildsetId}: Depends-On on another Gerrit ignored`, {
          buildsetId: buildset.buildsetId,
          dependsOn: footer.url,
        });
        continue;
      }
      let open: ResolvedDependency[];
      try {
        const reference = footer.form === 'url' ? { change: footer.change } : { changeId: footer.changeId };
        open = (await ports.gerrit.resolveDependency(reference, buildset.branch)).open;
      } catch (error) {
        if (!(error instanceof DependencyError)) throw error;
        ports.logger.warn(`buildset ${buildset.buildsetId}: Depends-On not resolved`, {
          buildsetId: buildset.buildsetId,
          error: errorText(error),
        });
        return { unresolvable: `Depends-On ${footerText(footer)} could not be resolved` };
      }
      for (const dependency of open) {
        edges.push(String(dependency.change));
        if (seen.has(dependency.change)) continue;
        seen.add(dependency.change);
        if (dependencies.length >= MAX_DEPENDENCY_CHANGES) {
          return { unresolvable: `Depends-On: more than ${MAX_DEPENDENCY_CHANGES} changes to test together` };
        }
        const change = await ports.gerrit.getChange(dependency.change);
        dependencies.push(resolvedDependency(change));
        pending.push({ change: change.number, footers: parseDependsOn(change.commitMessage ?? '') });
      }
    }
  }
  const cycle = findDependencyCycle(graph);
  if (cycle) return { unresolvable: new DependencyCycleError(cycle).message };
  return { dependencies };
}

/**
 * Whether `revision` is in the history of the change's current commit: a walk down the parents
 * through open changes (a commit already in the branch ends it, as does a chain longer than the
 * Depends-On limit). One query and one change read per step.
 */
async function isAncestor(ports: ControlPorts, change: GerritChange, revision: string): Promise<boolean> {
  const seen = new Set<string>();
  let parents = change.parents ?? [];
  for (let step = 0; step <= MAX_DEPENDENCY_CHANGES && parents.length > 0; step++) {
    if (parents.includes(revision)) return true;
    const next: string[] = [];
    for (const parent of parents) {
      if (seen.has(parent)) continue;
      seen.add(parent);
      const [open] = await ports.gerrit.queryOpenChanges(`project:${change.project} commit:${parent}`);
      if (open) next.push(...((await ports.gerrit.getChange(open.number)).parents ?? []));
    }
    parents = next;
  }
  return false;
}

function footerText(footer: DependsOnFooter): string {
  return footer.form === 'url' ? footer.url : footer.changeId;
}

function basicInputs(ports: ControlPorts): PlanInputs {
  return ports.imageBaseUrl ? { imageBaseUrl: ports.imageBaseUrl } : {};
}

/** How long one launch round may hold the launch lease (CreateFleet calls included). */
const LAUNCH_LEASE_SECONDS = 90;

/**
 * Launches queued builds, oldest first, while under the node limit. The limit is counted, so one
 * scheduler at a time launches (a lease); a scheduler that finds it taken asks again shortly.
 */
export async function launchQueued(ports: ControlPorts): Promise<void> {
  const now = ports.now();
  const owner = newToken();
  // Both at once (one round trip less on the way to a node); a stale queue list is harmless.
  const [queued, leased] = await Promise.all([
    ports.store.buildsInState<BuildRecord>('queued').catch((error: unknown) => error as Error),
    ports.store.acquireLease('launch', owner, now, LAUNCH_LEASE_SECONDS),
  ]);
  if (queued instanceof Error) {
    if (leased) await ports.store.releaseLease('launch', owner);
    throw queued;
  }
  const launchable = queued.some((build) => launchableAt(build) <= now);
  if (!leased) {
    if (launchable) await ports.scheduleQueue.send({ kind: 'launch' }, 2);
    return;
  }
  try {
    if (!launchable) return;
    await launchUnderLimit(ports, queued);
  } finally {
    await ports.store.releaseLease('launch', owner);
  }
}

async function launchUnderLimit(ports: ControlPorts, queued: BuildRecord[]): Promise<void> {
  const limit = ports.config.limits.maxConcurrentNodes;
  const [launching, running] = await Promise.all([
    ports.store.countBuildsInState('launching'),
    ports.store.countBuildsInState('running'),
  ]);
  let free = limit - launching - running;
  let waiting = queued.length;
  // Read before the lease was taken: a build another launcher started meanwhile loses its race below.
  for (const candidate of queued) {
    if (free <= 0) break;
    if (launchableAt(candidate) > ports.now()) continue;
    const claimToken = newToken();
    const applied = await applyBuildEvent(
      ports,
      candidate.buildId,
      { type: 'launch_requested' },
      (next) => ({ ...next, claimTokenHash: hashToken(claimToken), resultTokenHash: undefined }),
      candidate,
    );
    const launch = applied.commands.find((c) => c.type === 'launch');
    if (!applied.changed || !launch || launch.type !== 'launch') continue;
    free--;
    waiting--;
    let event;
    try {
      const outcome = await ports.fleet.launch({
        buildId: launch.buildId,
        launchSeq: launch.launchSeq,
        nodeLabel: launch.nodeLabel,
        claimToken,
      });
      if (outcome.status === 'launched') {
        await ports.store.recordInstance(outcome.instanceId, launch.buildId, ports.now());
      }
      event = launchEvent(outcome, launch.launchSeq);
    } catch (error) {
      event = {
        type: 'launch_failed' as const,
        launchSeq: launch.launchSeq,
        reason: errorText(error),
        retryable: true,
      };
    }
    const after = await applyBuildEvent(ports, launch.buildId, event);
    if (event.type === 'launch_failed') {
      ports.logger.warn(`build ${launch.buildId}: launch failed`, { buildId: launch.buildId, reason: event.reason });
      recordMetrics(ports, (metrics) => metrics.count('LaunchFailures', 1, {}));
      if (after.build?.state === 'queued') {
        free++;
        waiting++;
      }
    }
  }
  recordNodeGauges(ports, { runningNodes: Math.max(0, limit - free), queuedBuilds: waiting });
}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 300);
}
