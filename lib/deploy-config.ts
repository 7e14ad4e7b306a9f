/**
 * Reads the config file for `cdk synth`: schema validation (lambda/core/config.ts) plus the
 * deploy checks, both reported as `<file>: <key path>: <problem>` lines in one ConfigError.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, parseConfig, type Config } from '../lambda/core/config';
import { deployProblems } from '../lambda/core/deploy-rules';

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

/** The VPC is a /16 cut into /20 subnets, one per AZ. */
export const MAX_AVAILABILITY_ZONES = 16;
const AVAILABILITY_ZONE = /^[a-z]{2}(-[a-z]+)+-\d+[a-z]$/;

/**
 * The `availabilityZones` context value (`us-east-1a,us-east-1b` from `-c`, or a JSON array from
 * cdk.json): undefined when unset, otherwise a checked list of AZ names.
 */
export function parseAvailabilityZones(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const zones =
    typeof value === 'string'
      ? value
          .split(',')
          .map((zone) => zone.trim())
          .filter(Boolean)
      : Array.isArray(value)
        ? value.map((zone) => String(zone).trim())
        : undefined;
  const problem = (message: string) => new ConfigError(`context availabilityZones: ${message}`);
  if (!zones) throw problem('expected a comma-separated list like us-east-1a,us-east-1b');
  if (zones.length === 0 || zones.length > MAX_AVAILABILITY_ZONES) {
    throw problem(`expected 1 to ${MAX_AVAILABILITY_ZONES} AZ names, got ${zones.length}`);
  }
  const bad = zones.find((zone) => !AVAILABILITY_ZONE.test(zone));
  if (bad !== undefined) throw problem(`expected AZ names like us-east-1a, got ${JSON.stringify(bad)}`);
  if (new Set(zones).size !== zones.length) throw problem('an AZ is listed twice');
  return zones;
}
