/** EventBridge, every minute: lambda/control/reaper.ts. */
import { reap } from '../control/reaper';
import { awsPorts, logger } from './aws-ports';

export async function handler(): Promise<void> {
  const summary = await reap(awsPorts());
  if (summary.timedOut.length > 0 || summary.terminated.length > 0) logger.info('reaper', { ...summary });
}
