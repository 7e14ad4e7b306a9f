/** SQS batches with partial failures, so one message's error never redelivers the others. */
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { logger } from './aws-ports';

/**
 * Runs `handle` on every record in turn. A record whose handler throws, or answers 'retry', is
 * reported as a batch item failure: SQS delivers it again (after its visibility timeout) and sends
 * it to the DLQ after the queue's maxReceiveCount.
 */
export async function eachMessage(
  event: SQSEvent,
  queue: string,
  handle: (record: SQSRecord) => Promise<'done' | 'retry'>,
): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  for (const record of event.Records) {
    try {
      if ((await handle(record)) === 'retry') batchItemFailures.push({ itemIdentifier: record.messageId });
    } catch (error) {
      logger.error(`${queue} message failed`, {
        messageId: record.messageId,
        error: error instanceof Error ? error.message : String(error),
      });
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}
