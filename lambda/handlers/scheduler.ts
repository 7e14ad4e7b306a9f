/** SQS schedule queue -> lambda/control/scheduler.ts; failed messages are retried by SQS, then go to the DLQ. */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { ScheduleMessage } from '../control/ports';
import { handleScheduleMessage } from '../control/scheduler';
import { awsPorts, logger, withMetrics } from './aws-ports';

/** Every invocation ends by writing the metrics it recorded (EMF lines). */
export const handler = withMetrics(handle);

async function handle(event: SQSEvent): Promise<SQSBatchResponse> {
  const ports = awsPorts();
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  for (const record of event.Records) {
    try {
      await handleScheduleMessage(ports, JSON.parse(record.body) as ScheduleMessage);
    } catch (error) {
      logger.error('schedule message failed', {
        messageId: record.messageId,
        error: error instanceof Error ? error.message : String(error),
      });
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}
