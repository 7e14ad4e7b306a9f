import { SendMessageCommand, type SendMessageCommandInput, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { LocalQueue, SqsQueue } from '../../lambda/adapters/queue';

interface Message {
  id: number;
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('LocalQueue', () => {
  it('redelivers after a thrown error with growing backoff, then dead-letters after maxReceives', async () => {
    const receives: number[] = [];
    const backoffs: number[] = [];
    const dead = deferred<{ message: Message; error: unknown }>();
    const queue = new LocalQueue<Message>({
      name: 'test',
      maxReceives: 3,
      errorBackoffSeconds: (n) => {
        backoffs.push(n);
        return 0.001 * n;
      },
      consume: async (message) => {
        receives.push(message.id);
        throw new Error('boom');
      },
      onDeadLetter: (message, error) => dead.resolve({ message, error }),
    });
    await queue.send({ id: 7 });
    const { message, error } = await dead.promise;
    expect(message).toEqual({ id: 7 });
    expect((error as Error).message).toBe('boom');
    expect(receives).toEqual([7, 7, 7]);
    expect(backoffs).toEqual([1, 2]);
    queue.close();
  });

  it('delivers again after the delay a consumer asks for, without counting it as a failure', async () => {
    let calls = 0;
    const done = deferred<number>();
    const queue = new LocalQueue<Message>({
      name: 'test',
      maxReceives: 1,
      consume: async () => {
        calls++;
        if (calls < 4) return { retryAfterSeconds: 0.001 };
        done.resolve(calls);
        return undefined;
      },
      onDeadLetter: () => done.resolve(-1),
    });
    await queue.send({ id: 1 });
    expect(await done.promise).toBe(4);
    queue.close();
  });

  it('gives the consumer a copy, holds deliveries while paused, and keeps to its concurrency', async () => {
    const seen: Message[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const queue = new LocalQueue<Message>({
      name: 'test',
      concurrency: 2,
      consume: async (message) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((resolve) => setImmediate(resolve));
        seen.push(message);
        inFlight--;
      },
      onDeadLetter: () => {},
    });
    const original = { id: 1 };
    queue.pause();
    await queue.send(original);
    for (let id = 2; id <= 6; id++) await queue.send({ id });
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([]);
    expect(queue.depth).toBe(6);
    queue.resume();
    await queue.drained();
    expect(seen.map((m) => m.id).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seen.find((m) => m.id === 1)).not.toBe(original);
    expect(maxInFlight).toBe(2);
    queue.close();
  });
});

describe('SqsQueue', () => {
  it('sends JSON with the delay capped at the 15 minutes SQS allows', async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageCommand).resolves({ MessageId: 'x' });
    const queue = new SqsQueue<Message>(new SQSClient({ region: 'us-east-1' }), 'https://sqs.example/q');
    await queue.send({ id: 1 });
    await queue.send({ id: 2 }, 2.2);
    await queue.send({ id: 3 }, 5000);
    const inputs = sqs.commandCalls(SendMessageCommand).map((c): SendMessageCommandInput => c.args[0].input);
    expect(inputs).toEqual([
      { QueueUrl: 'https://sqs.example/q', MessageBody: '{"id":1}', DelaySeconds: 0 },
      { QueueUrl: 'https://sqs.example/q', MessageBody: '{"id":2}', DelaySeconds: 3 },
      { QueueUrl: 'https://sqs.example/q', MessageBody: '{"id":3}', DelaySeconds: 900 },
    ]);
    sqs.restore();
  });
});
