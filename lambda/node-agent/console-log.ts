/**
 * `job-output.txt`: the console log, one UTC-timestamped line per line of output, Zuul style
 * (`2026-11-25 09:01:48.123 | text`). Agent messages go to the same file so a failed git fetch
 * or a timeout is visible in the published log, not only on the node.
 */
import { createWriteStream, type WriteStream } from 'node:fs';

/** Longest line kept whole; a job printing megabytes without a newline is split here. */
const MAX_LINE_BYTES = 64 * 1024;

export function consoleTimestamp(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

export class ConsoleLog {
  private readonly stream: WriteStream;

  constructor(readonly path: string) {
    this.stream = createWriteStream(path, { flags: 'a' });
    // A full disk must not crash the agent: lines are lost, the job and the report go on.
    this.stream.on('error', () => undefined);
  }

  /** Writes one line (bytes as the job printed them, invalid UTF-8 included); a note with newlines becomes several. */
  line(text: string | Buffer): void {
    if (typeof text === 'string' && text.includes('\n')) {
      text.split('\n').forEach((part) => this.line(part));
      return;
    }
    this.stream.write(`${consoleTimestamp(new Date())} | `);
    this.stream.write(text);
    this.stream.write('\n');
  }

  /** A sink for a raw output stream: splits on newlines, keeping partial lines until they end. */
  lineWriter(): { write(chunk: Buffer): void; end(): void } {
    let pending: Buffer = Buffer.alloc(0);
    return {
      write: (chunk: Buffer) => {
        let data = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
        let newline = data.indexOf(10);
        while (newline !== -1) {
          const end = newline > 0 && data[newline - 1] === 13 ? newline - 1 : newline;
          this.line(data.subarray(0, end));
          data = data.subarray(newline + 1);
          newline = data.indexOf(10);
        }
        while (data.length > MAX_LINE_BYTES) {
          this.line(data.subarray(0, MAX_LINE_BYTES));
          data = data.subarray(MAX_LINE_BYTES);
        }
        pending = Buffer.from(data);
      },
      end: () => {
        if (pending.length > 0) {
          this.line(pending);
          pending = Buffer.alloc(0);
        }
      },
    };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.destroyed) {
        resolve();
        return;
      }
      this.stream.end(() => resolve());
    });
  }
}
