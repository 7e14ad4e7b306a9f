/**
 * SQS report queue -> lambda/control/reporter.ts. A retry keeps the message: its visibility is set
 * to the backoff delay (ChangeMessageVisibility) and it is reported as a batch item failure, so SQS
 * delivers it again after the delay; the DLQ catches messages that keep throwing.
 */
import { ChangeMessageVisibilityCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { reportBuildset } from '../control/reporter';
import type { ReportMessage } from '../control/ports';
import { awsPorts, withMetrics } from './aws-ports';
import { eachMessage } from './sqs-batch';

const sqs = new SQSClient({});

/** Every invocation ends by writing the metrics it recorded (EMF lines). */
export const handler = withMetrics(handle);

async function handle(event: SQSEvent): Promise<SQSBatchResponse> {
  const ports = awsPorts();
  return eachMessage(event, 'report', async (record) => {
    const message = JSON.parse(record.body) as ReportMessage;
    const step = await reportBuildset(ports, message.buildsetId);
    if (step.kind !== 'retry') return 'done';
    await sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: process.env.REPORT_QUEUE_URL,
        ReceiptHandle: record.receiptHandle,
        VisibilityTimeout: Math.min(43_200, Math.max(1, Math.ceil(step.delaySeconds))),
      }),
    );
    return 'retry';
  });
}
