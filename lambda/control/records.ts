/**
 * What the control plane keeps per buildset and per build (on top of the store's keys and the
 * lifecycle's fields), and the job spec a node receives when it claims its build.
 */
import type { StoredBuildset } from '../adapters/store';
import type { PipelineName } from '../core/config';
import type { Build } from '../core/lifecycle';
import type { ImageMode, ResolvedDependency } from '../core/planner';

/**
 * pending -> scheduled -> reporting -> reported | dropped (409) | dead_lettered
 * pending | scheduled -> cancelled (superseded, no vote); pending -> skipped (nothing to run)
 */
export type BuildsetState =
  'pending' | 'scheduled' | 'reporting' | 'reported' | 'dropped' | 'dead_lettered' | 'cancelled' | 'skipped';

export interface Repository {
  project: string;
  ref: string;
  revision?: string;
}

export interface BuildsetRecord extends StoredBuildset {
  state: BuildsetState;
  pipeline: PipelineName;
  branch: string;
  patchset?: number;
  changeId?: string;
  ref: string;
  revision: string;
  /** The raw Gerrit event, re-planned by the scheduler with changed files and dependencies. */
  eventJson: string;
  /** Which of the plan's triggered buildsets this is. */
  triggerIndex: number;
  buildIds: string[];
  repositories: Repository[];
  dependencies?: ResolvedDependency[];
  /** Why the scheduler ran no job (a Depends-On cycle, an unresolvable Depends-On): reported instead of builds. */
  unrunnable?: string;
  /** Review POSTs tried so far. */
  reportAttempts?: number;
  /** Epoch seconds: a retry of the review is due then; earlier deliveries leave it to that retry. */
  nextReportAt?: number;
  /** Epoch seconds: an attempt is in flight until then (or until it records its outcome). */
  reportingUntil?: number;
  reason?: string;
}

export interface BuildRecord extends Build {
  version: number;
  run: string;
  imageMode: ImageMode;
  imageUrl?: string;
  imageUnavailable?: string;
  publishesImage: boolean;
  logKeyPrefix: string;
  logUrl: string;
  /** sha256 of the one-time claim token of the current launch. */
  claimTokenHash?: string;
  /** sha256 of the result token handed out at claim. */
  resultTokenHash?: string;
  /** A FAILURE or ERROR build's one-line reason from the node (sanitised, core/summary.ts), for the report. */
  summary?: string;
}

/** `job` of the claim response (docs/design.md, Node API). */
export interface JobSpec {
  buildId: string;
  buildsetId: string;
  pipeline: PipelineName;
  project: string;
  branch: string;
  change?: number;
  patchset?: number;
  ref: string;
  revision: string;
  jobName: string;
  run: string;
  timeoutSeconds: number;
  imageMode: ImageMode;
  imageUrl?: string;
  gitUrl: string;
  repositories: Repository[];
}
