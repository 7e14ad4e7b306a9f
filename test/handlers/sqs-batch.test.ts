import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { eachMessage } from '../../lambda/handlers/sqs-batch';

function batch(bodies: string[]): SQSEvent {
  return { Records: bodies.map((body, i) => ({ messageId: `m${i}`, body }) as SQSRecord) };
}

test('only the messages that threw or asked for a retry come back as batch item failures', async () => {
  const seen: string[] = [];
  const result = await eachMessage(batch(['ok', 'boom', 'later', 'ok again']), 'test', async (record) => {
    seen.push(record.body);
    if (record.body === 'boom') throw new Error('handler failed');
    return record.body === 'later' ? 'retry' : 'done';
  });
  expect(seen).toEqual(['ok', 'boom', 'later', 'ok again']);
  expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }] });
});
