/**
 * Reading the config file for the CLI commands: a missing or invalid file is a usage error
 * (exit 2, clear message), never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Config, ConfigError, parseConfig } from '../../lambda/core/config';

export const DEFAULT_CONFIG_PATH = 'akanda-ci.yaml';

export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(`${path}: cannot read the config file (${code ?? 'read error'})`);
  }
  return parseConfig(text, path === DEFAULT_CONFIG_PATH ? basename(path) : path);
}

/** A usage problem with the command line itself. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
