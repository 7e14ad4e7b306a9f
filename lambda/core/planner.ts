/**
 * The planner: one Gerrit event in, what must run out. Pure and cheap, so the ingest plans
 * without changed files or dependencies and the scheduler re-plans with them.
 *
 * Zuul's semantics: check on patchset-created, change-restored and recheck comments (open change,
 * current patchset); gate when the configured approval is newly granted (`oldValue` says so); post
 * on ref-updated of refs/heads/* only, so a merge (which fires change-merged AND ref-updated)
 * publishes one image. A new patchset or an abandon supersedes older check buildsets.
 */
import { Config, findJob, findProject, JobConfig, jobTimeoutSeconds, PipelineName, ProjectConfig } from './config';
import { DependsOnFooter, parseDependsOn } from './depends-on';
import { GerritApproval, GerritChange, GerritEvent, GerritPatchSet, isRefDeletion, parseGerritEvent } from './events';
import { jobRunsForFiles } from './file-matchers';
import { branchRollingKeys, imageUrlPath, MASTER_BRANCH } from './image-store';
import { MAX_GERRIT_NUMBER } from './names';

export { EventError } from './events';

export interface PlanInputs {
  /** From Gerrit REST; unknown => no file filtering. */
  changedFiles?: readonly string[];
  /** Depends-On changes resolved by an adapter. */
  dependencies?: readonly ResolvedDependency[];
  /** Public base of the image store, used when the config has no latestImageUrl. */
  imageBaseUrl?: string;
  /** The change's current patchset from Gerrit REST; unknown => the event's patchset counts as current. */
  currentPatchset?: number;
}

export interface ResolvedDependency {
  project: string;
  branch: string;
  change: number;
  patchset: number;
  ref: string;
  revision: string;
}

export interface Supersede {
  project: string;
  change: number;
  /** Cancel check buildsets of this change whose patchset is lower than this. */
  belowPatchset: number;
}

export interface Plan {
  triggered: TriggeredBuildset[];
  supersedes: Supersede[];
  /** Why nothing triggered. */
  ignored?: string;
}

/** What made a buildset start. */
export type Trigger = 'patchset-created' | 'change-restored' | 'recheck' | 'approval' | 'ref-updated';

export interface TriggeredBuildset {
  pipeline: PipelineName;
  trigger: Trigger;
  project: string;
  branch: string;
  /** Absent for post (ref-updated). */
  change?: number;
  patchset?: number;
  changeId?: string;
  /** refs/changes/NN/N/P, or refs/heads/<branch> for post. */
  ref: string;
  /** 40 hex: the patchset's revision, or refUpdate.newRev for post. */
  revision: string;
  /** Parsed from the commit message, unresolved. */
  dependsOn: DependsOnFooter[];
  jobs: PlannedJob[];
}

export type ImageMode = 'build' | 'prebuilt' | 'none';

export interface PlannedJob {
  name: string;
  node: string;
  voting: boolean;
  timeoutSeconds: number;
  imageMode: ImageMode;
  /** For `prebuilt`: the image to download. */
  imageUrl?: string;
  /**
   * For `prebuilt` when no URL is known (see prebuiltImage: no pinned image, and neither the image
   * store nor, on master, appliance.latestImageUrl): why, so the build can fail with that message
   * instead of guessing.
   */
  imageUnavailable?: string;
  publishesImage: boolean;
  run: string;
}

/** Per-config work done once: compiled regexes. Configs are immutable after validation. */
interface CompiledConfig {
  recheck: RegExp;
  branchFilters: Map<string, RegExp[] | undefined>;
  appliance: Set<string>;
}

const compiledConfigs = new WeakMap<Config, CompiledConfig>();

/**
 * How much of a comment the recheck regex sees. OpenStack's regex is polynomial in the length of
 * leading whitespace (a 100 KB comment of spaces takes seconds), and anyone can comment upstream;
 * a recheck is always near the start, after "Patch Set N:" and the vote text.
 */
export const RECHECK_SCAN_LENGTH = 1000;

function compile(config: Config): CompiledConfig {
  let compiled = compiledConfigs.get(config);
  if (!compiled) {
    compiled = {
      recheck: new RegExp(config.pipelines.recheckRegex, 'i'),
      branchFilters: new Map(config.projects.map((p) => [p.name, p.branches?.map((b) => new RegExp(b))])),
      appliance: new Set(config.appliance.projects),
    };
    compiledConfigs.set(config, compiled);
  }
  return compiled;
}

/** Plans one raw Gerrit event. Throws EventError (one line) when the event is unusable. */
export function planEvent(config: Config, raw: unknown, inputs: PlanInputs = {}): Plan {
  return planParsedEvent(config, parseGerritEvent(raw), inputs);
}

/** Plans an already-parsed event; the ingest and the scheduler plan raw events with `planEvent`, which calls this. */
export function planParsedEvent(config: Config, event: GerritEvent, inputs: PlanInputs = {}): Plan {
  const compiled = compile(config);
  switch (event.type) {
    case 'other':
      return nothing(`event type "${event.eventType}" does not trigger anything`);
    case 'wip-state-changed':
    case 'private-state-changed':
      return nothing(`${event.type} does not trigger anything`);
    case 'change-merged':
      return nothing('change-merged does not trigger post: the ref-updated of the merge does');
    case 'ref-updated':
      return planPost(config, compiled, event.refUpdate, inputs);
    case 'change-abandoned': {
      const project = findProject(config, event.change.project);
      if (!project) return unwatched(event.change.project);
      // Every patchset of the change: the current one is the highest there is.
      const below = event.patchSet ? event.patchSet.number + 1 : MAX_GERRIT_NUMBER;
      return {
        triggered: [],
        supersedes: [{ project: project.name, change: event.change.number, belowPatchset: below }],
        ignored: 'change abandoned: its check buildsets are cancelled',
      };
    }
    case 'patchset-created': {
      const plan = planChangePipeline(
        config,
        compiled,
        event.change,
        event.patchSet,
        'check',
        'patchset-created',
        inputs,
      );
      if (findProject(config, event.change.project) && event.patchSet.number > 1) {
        plan.supersedes.push({
          project: event.change.project,
          change: event.change.number,
          belowPatchset: event.patchSet.number,
        });
      }
      return plan;
    }
    case 'change-restored':
      return planChangePipeline(config, compiled, event.change, event.patchSet, 'check', 'change-restored', inputs);
    case 'comment-added':
      return planComment(config, compiled, event, inputs);
  }
}

function planComment(
  config: Config,
  compiled: CompiledConfig,
  event: Extract<GerritEvent, { type: 'comment-added' }>,
  inputs: PlanInputs,
): Plan {
  if (!findProject(config, event.change.project)) return unwatched(event.change.project);
  if (event.author?.username !== undefined && event.author.username === config.gerrit.username) {
    return nothing('comment by the CI account itself');
  }
  const plans: Plan[] = [];
  if (compiled.recheck.test(event.comment.slice(0, RECHECK_SCAN_LENGTH))) {
    plans.push(planChangePipeline(config, compiled, event.change, event.patchSet, 'check', 'recheck', inputs));
  }
  if (event.approvals.some((approval) => newlyGrants(approval, config))) {
    plans.push(planChangePipeline(config, compiled, event.change, event.patchSet, 'gate', 'approval', inputs));
  }
  if (plans.length === 0) {
    const { label, value } = config.pipelines.gateApproval;
    return nothing(`comment is neither a recheck nor a newly granted ${label}${signed(value)}`);
  }
  const triggered = plans.flatMap((p) => p.triggered);
  if (triggered.length > 0) return { triggered, supersedes: [] };
  return nothing(plans.map((p) => p.ignored).join('; '));
}

/** Gerrit label names compare like Zuul compares them: case-insensitive, spaces as dashes. */
function normalizeLabel(label: string): string {
  return label.toLowerCase().replace(/ /g, '-');
}

function newlyGrants(approval: GerritApproval, config: Config): boolean {
  const gate = config.pipelines.gateApproval;
  return (
    normalizeLabel(approval.label) === normalizeLabel(gate.label) &&
    approval.value === gate.value &&
    approval.oldValue !== undefined &&
    approval.oldValue !== approval.value
  );
}

function planChangePipeline(
  config: Config,
  compiled: CompiledConfig,
  change: GerritChange,
  patchSet: GerritPatchSet,
  pipeline: 'check' | 'gate',
  trigger: Trigger,
  inputs: PlanInputs,
): Plan {
  const project = findProject(config, change.project);
  if (!project) return unwatched(change.project);
  if (!branchWatched(compiled, project, change.branch)) return unwatchedBranch(project, change.branch);
  if (change.open === false) {
    return nothing(`change ${change.number} is ${change.status?.toLowerCase() ?? 'closed'}`);
  }
  if (change.private) return nothing(`change ${change.number} is private: its logs would be public`);
  if (change.status === 'DRAFT' || patchSet.draft) {
    return nothing(`change ${change.number} patchset ${patchSet.number} is a draft`);
  }
  const current = inputs.currentPatchset ?? change.currentPatchset;
  if (current !== undefined && patchSet.number < current) {
    return nothing(`patchset ${patchSet.number} of change ${change.number} is not current (current: ${current})`);
  }
  const jobs = planJobs(config, compiled, project, pipeline, change.branch, inputs);
  if (jobs.names.length === 0) return nothing(`project ${project.name} has no ${pipeline} jobs`);
  if (jobs.planned.length === 0) return nothing(`every ${pipeline} job is skipped for the changed files`);
  const buildset: TriggeredBuildset = {
    pipeline,
    trigger,
    project: project.name,
    branch: change.branch,
    change: change.number,
    patchset: patchSet.number,
    ref: patchSet.ref,
    revision: patchSet.revision,
    dependsOn: parseDependsOn(change.commitMessage),
    jobs: jobs.planned,
  };
  if (change.changeId !== undefined) buildset.changeId = change.changeId;
  return { triggered: [buildset], supersedes: [] };
}

function planPost(
  config: Config,
  compiled: CompiledConfig,
  update: Extract<GerritEvent, { type: 'ref-updated' }>['refUpdate'],
  inputs: PlanInputs,
): Plan {
  if (!update.refName.startsWith('refs/heads/')) {
    return nothing(`ref-updated of ${update.refName}: post runs on refs/heads/* only`);
  }
  if (isRefDeletion(update)) return nothing(`ref-updated deleted ${update.refName}`);
  const project = findProject(config, update.project);
  if (!project) return unwatched(update.project);
  const branch = update.refName.slice('refs/heads/'.length);
  if (!branchWatched(compiled, project, branch)) return unwatchedBranch(project, branch);
  // Post has no changed-file list and no Depends-On: every post job runs.
  const jobs = planJobs(config, compiled, project, 'post', branch, { imageBaseUrl: inputs.imageBaseUrl });
  if (jobs.planned.length === 0) return nothing(`project ${project.name} has no post jobs`);
  return {
    triggered: [
      {
        pipeline: 'post',
        trigger: 'ref-updated',
        project: project.name,
        branch,
        ref: update.refName,
        revision: update.newRev,
        dependsOn: [],
        jobs: jobs.planned,
      },
    ],
    supersedes: [],
  };
}

function planJobs(
  config: Config,
  compiled: CompiledConfig,
  project: ProjectConfig,
  pipeline: PipelineName,
  branch: string,
  inputs: PlanInputs,
): { names: readonly string[]; planned: PlannedJob[] } {
  const names = project[pipeline];
  const planned: PlannedJob[] = [];
  const buildsImage =
    compiled.appliance.has(project.name) ||
    (inputs.dependencies ?? []).some((dependency) => compiled.appliance.has(dependency.project));
  for (const name of names) {
    const job = findJob(config, name);
    // parseConfig guarantees every listed job exists; a hand-built Config may not.
    if (!job) continue;
    if (inputs.changedFiles !== undefined && !jobRunsForFiles(job, inputs.changedFiles)) continue;
    planned.push(planJob(config, job, pipeline, branch, buildsImage, inputs));
  }
  return { names, planned };
}

function planJob(
  config: Config,
  job: JobConfig,
  pipeline: PipelineName,
  branch: string,
  buildsImage: boolean,
  inputs: PlanInputs,
): PlannedJob {
  const planned: PlannedJob = {
    name: job.name,
    node: job.node,
    voting: job.voting,
    timeoutSeconds: jobTimeoutSeconds(config, job),
    imageMode: 'none',
    publishesImage: job.publishesImage,
    run: job.run,
  };
  // A publishing job builds the image itself; it neither downloads one nor is told to build one.
  if (!job.needsImage || (pipeline === 'post' && job.publishesImage)) return planned;
  if (buildsImage) {
    planned.imageMode = 'build';
    return planned;
  }
  planned.imageMode = 'prebuilt';
  const image = prebuiltImage(config, branch, inputs.imageBaseUrl);
  if ('url' in image) planned.imageUrl = image.url;
  else planned.imageUnavailable = image.unavailable;
  return planned;
}

export type PrebuiltImage = { url: string } | { unavailable: string };

/**
 * The image a job on `branch` downloads: the branch's pinned image; else, on master, the rolling
 * latest image (appliance.latestImageUrl, or the root of the image store); else the rolling image
 * the publisher keeps for that branch in the image store (`images/<branch dir>/<latestImageName>`),
 * never master's: a stable branch tests against what was published from it.
 */
export function prebuiltImage(config: Config, branch: string, imageBaseUrl?: string): PrebuiltImage {
  const { latestImageUrl, latestImageName, pinnedImages } = config.appliance;
  const pinned = Object.hasOwn(pinnedImages, branch) ? pinnedImages[branch] : undefined;
  if (pinned) return { url: pinned };
  const storeBase = imageBaseUrl?.replace(/\/+$/, '');
  if (branch === MASTER_BRANCH) {
    if (latestImageUrl) return { url: latestImageUrl };
    if (storeBase) return { url: `${storeBase}/${latestImageName}` };
    return {
      unavailable:
        'no appliance image URL is known: set appliance.latestImageUrl in akanda-ci.yaml or deploy the image store',
    };
  }
  const base = storeBase || (latestImageUrl ? storeBaseOf(latestImageUrl, latestImageName) : undefined);
  if (base) return { url: `${base}${imageUrlPath(branchRollingKeys(branch, latestImageName).image)}` };
  const where = latestImageUrl
    ? `appliance.latestImageUrl does not end in /${latestImageName}, so the image store holding the branch's images is unknown`
    : 'the image store is not deployed';
  return {
    unavailable: `no appliance image for branch ${branch}: ${where}; pin one in appliance.pinnedImages in akanda-ci.yaml`,
  };
}

/** prebuiltImage's URL, or undefined when none is known. */
export function prebuiltImageUrl(config: Config, branch: string, imageBaseUrl?: string): string | undefined {
  const image = prebuiltImage(config, branch, imageBaseUrl);
  return 'url' in image ? image.url : undefined;
}

/**
 * The image store's base from the rolling image's URL, when that URL is plainly
 * `<base>/<latestImageName>` (no query, no fragment); anything else says nothing about the store.
 */
function storeBaseOf(latestImageUrl: string, latestImageName: string): string | undefined {
  let url: URL;
  try {
    url = new URL(latestImageUrl);
  } catch {
    return undefined;
  }
  if (url.search || url.hash || url.username || url.password) return undefined;
  const suffix = `/${latestImageName}`;
  if (!url.pathname.endsWith(suffix)) return undefined;
  return `${url.origin}${url.pathname.slice(0, -suffix.length)}`;
}

function branchWatched(compiled: CompiledConfig, project: ProjectConfig, branch: string): boolean {
  const filters = compiled.branchFilters.get(project.name);
  return filters === undefined || filters.some((filter) => filter.test(branch));
}

function nothing(reason: string): Plan {
  return { triggered: [], supersedes: [], ignored: reason };
}

function unwatched(project: string): Plan {
  return nothing(`project ${project} is not in the config`);
}

function unwatchedBranch(project: ProjectConfig, branch: string): Plan {
  return nothing(`branch ${branch} of ${project.name} does not match its branch filters`);
}

function signed(value: number): string {
  return value > 0 ? `+${value}` : String(value);
}
