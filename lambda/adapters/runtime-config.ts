/**
 * The validated config at runtime. In AWS esbuild inlines the JSON text as
 * `process.env.AKANDA_CI_CONFIG_JSON` at synth time; local mode sets the variable before it
 * calls the handlers. Validation runs again here so a hand-edited bundle fails loudly.
 */
import { type Config, validateConfig } from '../core/config';

let cached: { text: string; config: Config } | undefined;

export function runtimeConfig(): Config {
  const text = process.env.AKANDA_CI_CONFIG_JSON;
  if (!text) throw new Error('AKANDA_CI_CONFIG_JSON is not set: the bundle was built without a config');
  if (cached?.text === text) return cached.config;
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new Error('AKANDA_CI_CONFIG_JSON is not valid JSON');
  }
  const config = validateConfig(document, 'AKANDA_CI_CONFIG_JSON');
  cached = { text, config };
  return config;
}
