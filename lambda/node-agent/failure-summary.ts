/**
 * The job scripts name the phase that failed in `$AKANDA_CI_LOG_DIR/failure.txt` (docs/jobs.md); its first
 * line, sanitised, travels with a FAILURE or ERROR result so the report says where the job failed.
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import { sanitiseSummary } from '../core/summary';

// The first line is all that is used: a job cannot make the agent read a huge file into memory.
const READ_BYTES = 4096;

/** The sanitised first line of `logDir/failure.txt`, or undefined when there is none (or it cannot be read). */
export async function readFailureSummary(logDir: string): Promise<string | undefined> {
  let file;
  try {
    file = await open(path.join(logDir, 'failure.txt'), 'r');
  } catch {
    return undefined;
  }
  try {
    const buffer = Buffer.alloc(READ_BYTES);
    const { bytesRead } = await file.read(buffer, 0, READ_BYTES, 0);
    return sanitiseSummary(buffer.subarray(0, bytesRead).toString('utf8'));
  } catch {
    return undefined;
  } finally {
    await file.close();
  }
}
