/**
 * Polls for the spot interruption notice (AWS gives two minutes; it recommends polling every 5 s)
 * and calls `onNotice` once.
 */
import { describeError } from './http';
import type { ImdsClient, InstanceAction } from './imds';

export function watchForInterruption(
  imds: ImdsClient,
  intervalMs: number,
  onNotice: (notice: InstanceAction) => void,
  log: (line: string) => void,
): { stop(): void } {
  let stopped = false;
  let failing = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async (): Promise<void> => {
    try {
      const notice = await imds.spotInstanceAction();
      failing = false;
      if (notice && !stopped) {
        stopped = true;
        onNotice(notice);
        return;
      }
    } catch (error) {
      if (!failing) {
        log(`spot interruption check failed (${describeError(error)})`);
      }
      failing = true;
    }
    if (!stopped) {
      timer = setTimeout(() => void poll(), intervalMs);
    }
  };
  timer = setTimeout(() => void poll(), 0);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
