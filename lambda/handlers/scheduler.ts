/** SQS schedule queue -> lambda/control/scheduler.ts; failed messages are retried by SQS, then go to the DLQ. */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { ScheduleMessage } from '../control/ports';
import { handleScheduleMessage } from '../control/scheduler';
import { awsPorts, withMetrics } from './aws-ports';
import { eachMessage } from './sqs-batch';

/** Every invocation ends by writing the metrics it recorded (EMF lines). */
export const handler = withMetrics(handle);

async function handle(event: SQSEvent): Promise<SQSBatchResponse> {
  const ports = awsPorts();
  return eachMessage(event, 'schedule', async (record) => {
    await handleScheduleMessage(ports, JSON.parse(record.body) as ScheduleMessage);
    return 'done';
  });
}
