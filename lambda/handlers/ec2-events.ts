/**
 * EventBridge EC2 events: a spot interruption warning, or an instance that stopped or terminated.
 *
 * An interruption warning ends the node's attempt: the build goes back to the queue (or to
 * RETRY_LIMIT). A node that goes away by itself is usually the agent powering off after its
 * result (or after its job timed out, which the reaper turns into TIMED_OUT at the deadline), so a
 * shutdown counts as lost only while the build was still launching (the node never claimed it).
 */
import type { EventBridgeEvent } from 'aws-lambda';
import { nodeLost } from '../control/instance-events';
import { awsPorts, logger, withMetrics } from './aws-ports';
import type { BuildRecord } from '../control/records';

interface Ec2Detail {
  'instance-id'?: string;
  state?: string;
  'instance-action'?: string;
}

const GONE_STATES = new Set(['shutting-down', 'terminated', 'stopping', 'stopped']);

/** Every invocation ends by writing the metrics it recorded (EMF lines). */
export const handler = withMetrics(handle);

async function handle(event: EventBridgeEvent<string, Ec2Detail>): Promise<void> {
  const instanceId = event.detail?.['instance-id'];
  if (typeof instanceId !== 'string' || !/^i-[0-9a-f]{8,17}$/.test(instanceId)) return;
  const ports = awsPorts();
  const buildId = await ports.store.buildOfInstance(instanceId);
  if (!buildId) return;
  if (event['detail-type'] === 'EC2 Spot Instance Interruption Warning') {
    await nodeLost(ports, buildId, instanceId, 'spot interruption warning');
    return;
  }
  const state = event.detail?.state;
  if (event['detail-type'] === 'EC2 Instance State-change Notification' && state && GONE_STATES.has(state)) {
    const build = await ports.store.getBuild<BuildRecord>(buildId);
    if (build?.state === 'launching') await nodeLost(ports, buildId, instanceId, `instance ${state} before claiming`);
    else logger.debug('instance gone', { instanceId, buildId, state });
  }
}
