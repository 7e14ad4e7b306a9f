/**
 * Synthesizes the whole CDK app in-process the way `cdk synth` does (cdk.json context, cdk-nag),
 * for the infrastructure tests. Bundling the handlers is the slow part: suites synthesize once
 * per config in beforeAll, and configs that only test template wiring skip bundling.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { parseConfig, type Config } from '../../lambda/core/config';
import { buildAgentBundle, type AgentBundle } from '../../lib/agent-bundle';
import { addAkandaCi, type AkandaCiStacks } from '../../lib/akanda-ci';
import { deployProblems } from '../../lambda/core/deploy-rules';

export const REPOSITORY_ROOT = join(__dirname, '..', '..');

const created: string[] = [];

/** A fresh directory under the OS temp dir, removed by removeTempDirs(). */
export function tempDir(label: string): string {
  const directory = mkdtempSync(join(tmpdir(), `akanda-ci-infra-${label}-`));
  created.push(directory);
  return directory;
}

/** Call in afterAll: synth outputs hold tens of MB of assets each. */
export function removeTempDirs(): void {
  for (const directory of created.splice(0)) rmSync(directory, { recursive: true, force: true });
}

export interface Synthesized {
  readonly config: Config;
  readonly stacks: AkandaCiStacks;
  readonly assembly: CloudAssembly;
  readonly artifacts: Template;
  readonly fleet: Template;
  readonly controlPlane: Template;
  readonly agentBundle: AgentBundle;
}

export function defaultConfigText(): string {
  return readFileSync(join(REPOSITORY_ROOT, 'akanda-ci.yaml'), 'utf8');
}

/** The context `cdk synth` passes from cdk.json. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(REPOSITORY_ROOT, 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  };
  return cdkJson.context;
}

let sharedAgentBundle: AgentBundle | undefined;

export function synthesize(
  configText: string,
  options: { bundle?: boolean; nodeImagePipeline?: boolean; modify?: (stacks: AkandaCiStacks) => void } = {},
): Synthesized {
  const config = parseConfig(configText, 'test.yaml');
  const problems = deployProblems(config, 'test.yaml');
  if (problems.length > 0) throw new Error(problems.join('\n'));
  const outdir = tempDir('synth');
  sharedAgentBundle ??= buildAgentBundle({ outputRoot: tempDir('agent') });
  const app = new App({
    outdir,
    context: { ...cdkJsonContext(), ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) },
  });
  const stacks = addAkandaCi(app, config, {
    agentBundle: sharedAgentBundle,
    nodeImagePipeline: options.nodeImagePipeline,
  });
  options.modify?.(stacks);
  const assembly = app.synth();
  return {
    config,
    stacks,
    assembly,
    artifacts: Template.fromStack(stacks.artifacts),
    fleet: Template.fromStack(stacks.fleet),
    controlPlane: Template.fromStack(stacks.controlPlane),
    agentBundle: sharedAgentBundle,
  };
}

export interface DashboardWidget {
  readonly properties: {
    readonly title: string;
    readonly metrics: unknown[][];
    readonly annotations?: { horizontal?: { value: number; label: string }[] };
  };
}

/** The dashboard's widgets, with deploy-time tokens (region, queue names) replaced by "TOKEN". */
export function dashboardWidgets(template: Template): DashboardWidget[] {
  const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as {
    Properties: { DashboardBody: { 'Fn::Join': [string, unknown[]] } };
  }[];
  if (!dashboard) throw new Error('no dashboard');
  const parts = dashboard.Properties.DashboardBody['Fn::Join'][1];
  const body = parts.map((part) => (typeof part === 'string' ? part : 'TOKEN')).join('');
  return (JSON.parse(body) as { widgets: DashboardWidget[] }).widgets;
}
