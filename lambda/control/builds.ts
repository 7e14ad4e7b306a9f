/**
 * Applying lifecycle events to stored builds: read, reduce with the core's `transition`, write
 * back conditionally on the version read, and on losing a race re-read and re-apply. Commands run
 * only after the write won (or right away for a no-op that still asks for one, a stale launch).
 */
import { type BuildCommand, type BuildEvent, isTerminal, transition } from '../core/lifecycle';
import { recordBuildTransition } from './metrics';
import type { ControlPorts } from './ports';
import type { BuildRecord } from './records';

/** Adjusts the next record before it is written (tokens); undefined aborts the write. */
export type Decorate = (next: BuildRecord, current: BuildRecord) => BuildRecord | undefined;

export interface Applied {
  /** The stored build after the event (undefined when there is no such build). */
  build?: BuildRecord;
  /** The record before the event, as last read. */
  before?: BuildRecord;
  changed: boolean;
  commands: BuildCommand[];
}

const MAX_RACES = 10;

export async function applyBuildEvent(
  ports: ControlPorts,
  buildId: string,
  event: BuildEvent,
  decorate?: Decorate,
  /** The record as the caller just read it: saves a read; a stale one only costs a lost race. */
  read?: BuildRecord,
): Promise<Applied> {
  let known = read;
  for (let race = 0; race < MAX_RACES; race++) {
    const current = known ?? (await ports.store.getBuild<BuildRecord>(buildId));
    known = undefined;
    if (!current) return { changed: false, commands: [] };
    const step = transition(current, event, ports.now());
    if (!step.changed) {
      await runCommands(ports, step.commands);
      return { build: current, before: current, changed: false, commands: step.commands };
    }
    const next = decorate
      ? decorate({ ...step.build, version: current.version + 1 }, current)
      : { ...step.build, version: current.version + 1 };
    if (!next) return { build: current, before: current, changed: false, commands: [] };
    if (await ports.store.putBuild(next)) {
      logStateChange(ports, current, next, event);
      recordBuildTransition(ports, current, next);
      await runCommands(ports, step.commands);
      return { build: next, before: current, changed: true, commands: step.commands };
    }
  }
  throw new Error(`build ${buildId}: gave up after ${MAX_RACES} conflicting writes`);
}

function logStateChange(ports: ControlPorts, before: BuildRecord, after: BuildRecord, event: BuildEvent): void {
  if (before.state === after.state && before.instanceId === after.instanceId) return;
  const change =
    before.state === after.state
      ? `${after.state} on ${after.instanceId ?? 'no node'}`
      : `${before.state} -> ${after.state}${after.result ? ` ${after.result}` : ''}`;
  ports.logger.info(`build ${after.buildId} ${after.jobName}: ${change}`, {
    buildId: after.buildId,
    buildsetId: after.buildsetId,
    job: after.jobName,
    event: event.type,
    from: before.state,
    to: after.state,
    attempt: after.attempt,
    ...(after.instanceId ? { instanceId: after.instanceId } : {}),
    ...(after.result ? { result: after.result } : {}),
    ...(after.reason ? { reason: after.reason } : {}),
  });
}

/**
 * Terminate and report commands; `launch` is the scheduler's (it needs the claim token). Each runs
 * whatever the others did: a terminate that fails is logged, not thrown, since the transition is
 * already written (a retry would find nothing to do) and the reaper terminates the stray instance.
 * A report that cannot be queued throws, so the caller's delivery fails and is retried.
 */
export async function runCommands(ports: ControlPorts, commands: readonly BuildCommand[]): Promise<void> {
  for (const command of commands) {
    switch (command.type) {
      case 'terminate':
        ports.logger.info(`terminate ${command.instanceId} (build ${command.buildId})`, {
          buildId: command.buildId,
          instanceId: command.instanceId,
        });
        try {
          await ports.fleet.terminateInstances([command.instanceId]);
        } catch (error) {
          ports.logger.warn(`terminate ${command.instanceId} failed; the reaper will terminate it`, {
            buildId: command.buildId,
            instanceId: command.instanceId,
            error: (error instanceof Error ? error.message : String(error)).slice(0, 300),
          });
        }
        break;
      case 'report_if_complete':
        await ports.reportQueue.send({ buildsetId: command.buildsetId });
        break;
      case 'launch':
        break;
    }
  }
}

/** After a transition back to `queued` (interruption, capacity wait) the scheduler should look. */
export async function pokeSchedulerIfQueued(ports: ControlPorts, applied: Applied): Promise<void> {
  if (applied.changed && applied.build?.state === 'queued') await ports.scheduleQueue.send({ kind: 'launch' });
}

export function isFinished(build: BuildRecord): boolean {
  return isTerminal(build.state);
}
