/**
 * cdk-nag 3 needs one acknowledgement per wildcard finding (`AwsSolutions-IAM5[Resource::...]`),
 * spelled exactly as cdk-nag flattens the resolved policy. Instead of copying those strings by hand
 * (they change with logical ids), each stack states *why* a class of wildcard is needed, and this
 * acknowledges exactly the findings that match a stated reason. Any other wildcard still fails synth.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
// cdk-nag's own formatter, so the ids match what AwsSolutions-IAM5 reports.
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference';
import type { IConstruct } from 'constructs';

/**
 * What a placeholder in nagFinding() matches: the pseudo parameter of an environment-agnostic
 * stack, or the concrete value of one synthesized for an account and region.
 */
const PLACEHOLDERS: Record<string, string> = {
  '{partition}': '(?:<AWS::Partition>|aws[a-z-]*)',
  '{region}': '(?:<AWS::Region>|[a-z]{2}(?:-[a-z]+)+-\\d+)',
  '{account}': '(?:<AWS::AccountId>|\\d{12})',
  '{name}': '[a-z0-9-]+',
};

/**
 * A finding matcher from readable patterns, e.g.
 * `nagFinding('Resource::arn:{partition}:ec2:{region}:{account}:instance/*')`; everything outside the
 * placeholders (including `*`) matches literally.
 */
export function nagFinding(...patterns: string[]): RegExp {
  const alternatives = patterns.map((pattern) =>
    pattern
      .split(/(\{[a-z]+\})/)
      .map((part) => PLACEHOLDERS[part] ?? part.replace(/[.*+?^$()|[\]\\{}]/g, '\\$&'))
      .join(''),
  );
  return new RegExp(`^(?:${alternatives.join('|')})$`);
}

export interface WildcardReason {
  /** Matched against the finding, e.g. `Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*`. */
  readonly finding: RegExp;
  readonly reason: string;
}

interface PolicyStatementJson {
  readonly Effect?: string;
  readonly Action?: unknown;
  readonly Resource?: unknown;
}

const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : value === undefined ? [] : [value]);

/** The IAM5 findings cdk-nag will report for a policy document. */
export function wildcardFindings(stack: Stack, document: unknown): string[] {
  const resolved = stack.resolve(document) as { Statement?: PolicyStatementJson[] } | undefined;
  const findings = new Set<string>();
  for (const statement of resolved?.Statement ?? []) {
    if (statement.Effect !== 'Allow') continue;
    for (const action of asArray(statement.Action)) {
      if (typeof action === 'string' && action.includes('*')) findings.add(`Action::${action}`);
    }
    for (const resource of asArray(statement.Resource)) {
      const flat = flattenCfnReference(resource);
      if (flat.includes('*')) findings.add(`Resource::${flat}`);
    }
  }
  return [...findings];
}

/** Acknowledges, on every IAM policy under `scope`, the wildcard findings that match a reason. */
export function acknowledgeWildcards(scope: IConstruct, reasons: readonly WildcardReason[]): void {
  const stack = Stack.of(scope);
  for (const construct of scope.node.findAll()) {
    if (!(construct instanceof iam.CfnPolicy)) continue;
    for (const finding of wildcardFindings(stack, construct.policyDocument)) {
      const match = reasons.find((candidate) => candidate.finding.test(finding));
      if (match) Validations.of(construct).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason: match.reason });
    }
  }
}
