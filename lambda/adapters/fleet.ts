/**
 * Where build nodes come from: EC2 in AWS (`ec2-fleet.ts`), child processes in `akanda-ci local`.
 * The scheduler, the EC2-events handler and the reaper see only this interface.
 */
import type { BuildEvent } from '../core/lifecycle';

export interface LaunchRequest {
  buildId: string;
  /** The lifecycle's `launch` command `launchSeq`: a retried launch of the same seq must not add a node. */
  launchSeq: number;
  /** Node label, a key of config `nodes`. */
  nodeLabel: string;
  /** One-time claim token the node presents to `POST /node/claim`; stable for one launchSeq. */
  claimToken: string;
}

export type LaunchOutcome =
  | { status: 'launched'; instanceId: string; instanceType?: string; lifecycle: 'spot' | 'on-demand' | 'local' }
  /** No capacity anywhere the label allows, or a transient API failure: wait and retry. */
  | { status: 'no_capacity'; reason: string }
  /** The launch can never work as configured (permissions, a missing launch template ...). */
  | { status: 'failed'; reason: string };

export interface ManagedInstance {
  instanceId: string;
  /** From the `akanda-ci:build` tag; absent when the tag is missing (then the reaper terminates it). */
  buildId?: string;
  /** From the `akanda-ci:launch` tag: the build's launchSeq this instance was launched for. */
  launchSeq?: number;
  state: string;
  /** Epoch seconds. */
  launchedAt?: number;
}

export interface Fleet {
  launch(request: LaunchRequest): Promise<LaunchOutcome>;
  /** Already-gone instances are not an error. */
  terminateInstances(instanceIds: readonly string[]): Promise<void>;
  /** Every live (not terminated) node this CI launched. */
  listManagedInstances(): Promise<ManagedInstance[]>;
}

/** The lifecycle event a launch outcome becomes. */
export function launchEvent(outcome: LaunchOutcome, launchSeq: number): BuildEvent {
  switch (outcome.status) {
    case 'launched':
      return { type: 'launched', launchSeq, instanceId: outcome.instanceId };
    case 'no_capacity':
      return { type: 'launch_failed', launchSeq, reason: outcome.reason, retryable: true };
    case 'failed':
      return { type: 'launch_failed', launchSeq, reason: outcome.reason, retryable: false };
  }
}
