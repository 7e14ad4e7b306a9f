/** Shared by the core tests: the shipped config, configs written inline, and the Gerrit event fixtures. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Config, parseConfig } from '../../lambda/core/config';

export const REPO_ROOT = join(__dirname, '..', '..');
export const FIXTURE_DIR = join(REPO_ROOT, 'test', 'fixtures', 'gerrit-events');

/** The akanda-ci.yaml this repository ships. */
export function shippedConfig(): Config {
  return parseConfig(readFileSync(join(REPO_ROOT, 'akanda-ci.yaml'), 'utf8'), 'akanda-ci.yaml');
}

export function fixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR)
    .filter((name) => name.endsWith('.json'))
    .sort();
}

export function fixtureText(name: string): string {
  return readFileSync(join(FIXTURE_DIR, name), 'utf8');
}

/** A fixture as a fresh mutable object, so a test can change one field. */
export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(fixtureText(name)) as Record<string, unknown>;
}

/** A small config in YAML; `extra` is appended as top-level YAML (appliance:, pipelines:, ...). */
export function smallConfig(extra = '', projects?: string): Config {
  return parseConfig(
    `
gerrit: { url: https://review.example.org, username: akanda-ci }
nodes:
  small: { instanceTypes: [c8i.large] }
  devstack: { instanceTypes: [c8i.2xlarge], nestedVirtualization: true }
jobs:
  - { name: pep8, run: tox -e pep8, node: small, timeout: 30m }
  - { name: py27, run: tox -e py27, node: small, irrelevant-files: ['^doc/', '^.*\\.rst$'] }
  - { name: docs, run: tox -e docs, node: small, voting: false, files: ['^doc/'] }
  - { name: dsvm, run: ./dsvm.sh, node: devstack, timeout: 150m, needsImage: true, irrelevant-files: ['^doc/'] }
  - { name: image, run: ./image.sh, node: devstack, timeout: 60m, needsImage: true, publishesImage: true }
  - { name: smoke, run: ./smoke.sh, node: devstack, needsImage: true }
projects:
${
  projects ??
  `  - { name: stackforge/akanda-rug, branches: ['^master$', '^stable/.*$'], check: [pep8, py27, docs, dsvm], gate: [pep8, dsvm], post: [smoke] }
  - { name: stackforge/akanda-appliance, check: [pep8, dsvm], gate: [dsvm], post: [image, smoke] }
  - { name: stackforge/akanda-appliance-builder, check: [dsvm], post: [image] }
  - { name: stackforge/akanda-neutron, check: [pep8] }`
}
${extra}
`,
    'test.yaml',
  );
}
