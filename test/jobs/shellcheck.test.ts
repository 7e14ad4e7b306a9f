/**
 * Every shell script under scripts/ passes shellcheck (with `source` directives followed) and, if
 * it is a program rather than a sourced library, starts with `set -euo pipefail`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT, SCRIPTS, SYSTEM_PATH } from './support';

function shellScripts(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return shellScripts(path);
    const text = readFileSync(path, 'utf8');
    return name.endsWith('.sh') || /^#!.*\b(ba)?sh\b/.test(text) ? [relative(REPO_ROOT, path)] : [];
  });
}

const scripts = shellScripts(SCRIPTS);

it('finds the job and node-image scripts', () => {
  expect(scripts).toEqual(
    expect.arrayContaining([
      'scripts/jobs/tox.sh',
      'scripts/jobs/dsvm-tempest-akanda.sh',
      'scripts/jobs/akanda-appliance-image.sh',
      'scripts/jobs/lib/common.sh',
      'scripts/node-image/bake.sh',
    ]),
  );
});

it.each(scripts)('%s passes shellcheck', (script) => {
  let output = '';
  try {
    execFileSync('shellcheck', ['--external-sources', '--severity=style', script], {
      cwd: REPO_ROOT,
      env: { PATH: SYSTEM_PATH },
      encoding: 'utf8',
    });
  } catch (error) {
    output = String((error as { stdout?: string }).stdout ?? error);
  }
  expect(output).toBe('');
});

it.each(scripts.filter((script) => !script.includes('/lib/')))('%s runs with set -euo pipefail', (script) => {
  const text = readFileSync(join(REPO_ROOT, script), 'utf8');
  expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
  expect(text).toMatch(/^set -euo pipefail$/m);
});
