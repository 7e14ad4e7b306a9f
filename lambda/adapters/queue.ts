/**
 * Queues between the control-plane steps. In AWS: SQS (the handler Lambdas consume it, failures
 * are redelivered after the visibility timeout, then go to the DLQ). Locally: an in-process
 * queue with the same semantics: a delay per message, redelivery with growing backoff when the
 * consumer throws, a dead-letter callback after `maxReceives`, and a consumer-chosen delay
 * (the reporter's backoff, ChangeMessageVisibility in AWS).
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';

export interface MessageSender<T> {
  send(message: T, delaySeconds?: number): Promise<void>;
}

/** SQS allows at most 15 minutes of delay; longer waits are chained by the consumer. */
export const SQS_MAX_DELAY_SECONDS = 900;

export class SqsQueue<T> implements MessageSender<T> {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(message: T, delaySeconds = 0): Promise<void> {
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify(message),
        DelaySeconds: Math.max(0, Math.min(SQS_MAX_DELAY_SECONDS, Math.ceil(delaySeconds))),
      }),
    );
  }
}

/** What a consumer asks for: nothing (done), or to see the message again after a delay. */
export type ConsumerResult = void | { retryAfterSeconds: number };

export interface LocalQueueOptions<T> {
  name: string;
  consume(message: T): Promise<ConsumerResult>;
  /** Messages handled at once. */
  concurrency?: number;
  /** Deliveries that end in a thrown error before the message is dead-lettered. */
  maxReceives?: number;
  /** Delay before redelivering after a thrown error, by receive count (1-based). */
  errorBackoffSeconds?(receives: number): number;
  onDeadLetter(message: T, error: unknown): void;
}

interface Envelope<T> {
  message: T;
  receives: number;
}

export class LocalQueue<T> implements MessageSender<T> {
  private readonly ready: Envelope<T>[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = 0;
  private closed = false;
  private paused = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: LocalQueueOptions<T>) {}

  async send(message: T, delaySeconds = 0): Promise<void> {
    // A message is a copy, as on a real queue: the consumer never shares objects with the sender.
    this.enqueue({ message: structuredClone(message), receives: 0 }, delaySeconds);
  }

  /** Pending plus in-flight messages (delayed ones included). */
  get depth(): number {
    return this.ready.length + this.timers.size + this.running;
  }

  /** Resolves when nothing is ready or in flight (delayed messages may still be waiting). */
  async drained(): Promise<void> {
    if (this.ready.length === 0 && this.running === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Holds deliveries (messages still queue up) until resume(): lets a benchmark time one stage alone. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.ready.length = 0;
  }

  private enqueue(envelope: Envelope<T>, delaySeconds: number): void {
    if (this.closed) return;
    const ms = Math.max(0, delaySeconds * 1000);
    if (ms === 0) {
      this.ready.push(envelope);
      setImmediate(() => this.pump());
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.ready.push(envelope);
      this.pump();
    }, ms);
    this.timers.add(timer);
  }

  private pump(): void {
    const limit = this.options.concurrency ?? 1;
    while (!this.closed && !this.paused && this.running < limit && this.ready.length > 0) {
      const envelope = this.ready.shift()!;
      this.running++;
      void this.deliver(envelope).finally(() => {
        this.running--;
        this.pump();
        if (this.ready.length === 0 && this.running === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const resolve of waiters) resolve();
        }
      });
    }
  }

  private async deliver(envelope: Envelope<T>): Promise<void> {
    const receives = envelope.receives + 1;
    try {
      const result = await this.options.consume(envelope.message);
      if (result && result.retryAfterSeconds >= 0) {
        // A consumer-chosen delay is not a failure: it does not count towards maxReceives.
        this.enqueue({ message: envelope.message, receives: 0 }, result.retryAfterSeconds);
      }
    } catch (error) {
      if (receives >= (this.options.maxReceives ?? 5)) {
        this.options.onDeadLetter(envelope.message, error);
        return;
      }
      const backoff = this.options.errorBackoffSeconds?.(receives) ?? Math.min(60, 2 ** (receives - 1));
      this.enqueue({ message: envelope.message, receives }, backoff);
    }
  }
}
