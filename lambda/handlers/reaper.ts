/** EventBridge, every minute: lambda/control/reaper.ts. */
import { reap } from '../control/reaper';
import { awsPorts, logger, withMetrics } from './aws-ports';

/** Every invocation ends by writing the metrics it recorded (EMF lines). */
export const handler = withMetrics(handle);

async function handle(): Promise<void> {
  const summary = await reap(awsPorts());
  if (summary.timedOut.length > 0 || summary.terminated.length > 0) logger.info('reaper', { ...summary });
}
