/**
 * Reads the config file for `cdk synth`: schema validation (lambda/core/config.ts) plus the
 * deploy checks, both reported as `<file>: <key path>: <problem>` lines in one ConfigError.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, parseConfig, type Config } from '../lambda/core/config';
import { deployProblems } from './deploy-checks';

/** The config file used when the `config` context key is not set. */
export const DEFAULT_CONFIG_PATH = 'akanda-ci.yaml';

export function loadDeployConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`${path}: cannot read the config file (${code})`);
  }
  const config = parseConfig(text, path);
  const problems = deployProblems(config, path);
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return config;
}
