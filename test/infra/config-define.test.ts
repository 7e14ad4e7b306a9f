import { buildSync } from 'esbuild';
import { parseConfig } from '../../lambda/core/config';
import { configDefine } from '../../lib/control-plane-function';
import { defaultConfigText } from './synth';

/** Bundles a one-line program with the define the stacks give esbuild and runs it. */
function inlinedConfigText(define: Record<string, string>): string {
  const result = buildSync({
    stdin: { contents: 'module.exports = process.env.AKANDA_CI_CONFIG_JSON;', loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    minify: true,
    write: false,
    define,
  });
  const output = result.outputFiles[0]?.text ?? '';
  const module = { exports: '' as unknown };
  new Function('module', output)(module);
  return String(module.exports);
}

test('the bundle carries the validated config, byte for byte, shell characters included', () => {
  const config = parseConfig(defaultConfigText());
  // The default config holds "$AKANDA_CI_SCRIPTS", quotes and backslashed regexes: none may be mangled.
  expect(JSON.stringify(config)).toMatch(/\$AKANDA_CI_SCRIPTS/);
  expect(JSON.parse(inlinedConfigText(configDefine(config)))).toEqual(config);
});

test('latestImageUrl stays unset when the config leaves it unset (handlers use PUBLIC_BASE_URL)', () => {
  const config = parseConfig(defaultConfigText());
  const inlined = JSON.parse(inlinedConfigText(configDefine(config))) as typeof config;
  expect(inlined.appliance.latestImageUrl).toBeUndefined();
  expect(inlined.appliance.latestImageName).toBe('akanda-appliance-latest.qcow2');
});
