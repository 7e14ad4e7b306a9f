/**
 * The one config file, `akanda-ci.yaml`: its schema, its defaults and its cross-checks.
 *
 * The schema is the single definition: `parseConfig` validates with it, and
 * `configJsonSchema` turns the same definition into a JSON Schema for editors.
 * Everything here is pure: reading the file is the caller's job.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { durationSeconds, DURATION_PATTERN } from './duration';
import { nameProblem } from './names';

const nonEmpty = z.string().min(1, { message: 'must not be empty' });

const duration = z
  .string({ message: 'expected a duration like 90m' })
  .regex(DURATION_PATTERN, { message: 'expected a duration like 90m' });

const regexSource = z.string({ message: 'expected a regular expression string' });

const httpUrl = z
  .string({ message: 'expected a URL' })
  .regex(/^https?:\/\/[^\s]+$/, { message: 'expected an http(s) URL' });

const gitUrl = z
  .string({ message: 'expected a URL' })
  .regex(/^(https?|file|ssh|git):\/\/[^\s]+$/, { message: 'expected an http(s)://, ssh://, git:// or file:// URL' });

const jobNameList = z.array(nonEmpty).default([]);

const labelVote = z.strictObject({
  label: nonEmpty.default('Workflow'),
  value: z.number().int().min(-2).max(2).default(1),
});

export const DEFAULT_RECHECK_REGEX = '^(Patch Set [0-9]+:)?( [\\w\\\\+-]*)*(\\n\\n)?\\s*recheck';

const gerritSchema = z.strictObject({
  url: httpUrl.describe('REST base URL, e.g. https://review.openstack.org'),
  gitUrl: gitUrl.optional().describe('Where nodes `git fetch` projects and change refs; defaults to `url`.'),
  username: nonEmpty.describe(
    'The CI account; its HTTP password comes from env GERRIT_HTTP_PASSWORD or Secrets Manager.',
  ),
});

const projectSchema = z.strictObject({
  name: nonEmpty.describe('Gerrit project name, e.g. stackforge/akanda-rug.'),
  branches: z
    .array(regexSource)
    .optional()
    .describe('Regexes; a change is planned only when its branch matches one. Default: every branch.'),
  check: jobNameList.describe('Jobs run on each new patchset, restore and recheck comment.'),
  gate: jobNameList.describe('Jobs run when the gate approval (pipelines.gateApproval) is newly granted.'),
  post: jobNameList.describe('Jobs run after a merge: on ref-updated of refs/heads/*.'),
});

const jobSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'expected a job name of letters, digits, ".", "_" and "-"' }),
  run: nonEmpty.describe(
    'Shell command the node runs inside the checked-out project (a trusted value from this file).',
  ),
  node: nonEmpty.describe('Node label: a key of `nodes`.'),
  timeout: duration.default('60m').describe('Job timeout, e.g. 90m or 1h30m (capped by limits.buildTimeLimit).'),
  voting: z.boolean().default(true).describe('A non-voting job is reported but does not decide the vote.'),
  files: z
    .array(regexSource)
    .optional()
    .describe(
      'Run only when a changed file matches one of these regexes (matched from the start of the path, as in Zuul).',
    ),
  'irrelevant-files': z
    .array(regexSource)
    .optional()
    .describe('Skip when every changed file matches one of these regexes (from the start of the path).'),
  needsImage: z
    .boolean()
    .default(false)
    .describe('Whether the job needs the appliance image (built from source or prebuilt).'),
  publishesImage: z
    .boolean()
    .default(false)
    .describe('Post-merge image publishing job: its artifacts are promoted to the public image path.'),
});

const nodeLabelSchema = z.strictObject({
  instanceTypes: z
    .array(nonEmpty)
    .min(1, { message: 'expected at least one instance type' })
    .describe('Instance types in preference-free order; CreateFleet picks by price and capacity.'),
  nestedVirtualization: z
    .boolean()
    .default(false)
    .describe('Enables CpuOptions.NestedVirtualization (c8i/m8i/r8i), so devstack gets /dev/kvm.'),
  metalFallbackTypes: z
    .array(nonEmpty)
    .default([])
    .describe('Bare-metal types tried only when every virtual pool has no capacity (~10x the price).'),
  onDemandFallback: z.boolean().default(true).describe('After spot capacity errors in every pool, launch on-demand.'),
  rootVolumeGiB: z.number().int().min(8).max(16384).default(30),
  amiSsmParameter: nonEmpty
    .default('/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id')
    .describe('Public SSM parameter holding the AMI id; default Ubuntu 24.04 LTS amd64.'),
});

const applianceSchema = z.strictObject({
  projects: z
    .array(nonEmpty)
    .default(['stackforge/akanda-appliance', 'stackforge/akanda-appliance-builder'])
    .describe('Projects whose changes are tested with an image built from the change.'),
  latestImageUrl: httpUrl
    .optional()
    .describe('Public URL of the rolling image; unset: the deployed stacks fill in their CloudFront URL.'),
  pinnedImages: z
    .record(z.string(), httpUrl)
    .default({})
    .describe('Image URL per stable branch, e.g. {"stable/kilo": "https://.../akanda-appliance-stable-kilo.qcow2"}.'),
  latestImageName: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'expected a file name of letters, digits, ".", "_" and "-"' })
    .default('akanda-appliance-latest.qcow2')
    .describe('File name of the rolling image in the image store.'),
});

const pipelinesSchema = z.strictObject({
  recheckRegex: regexSource
    .default(DEFAULT_RECHECK_REGEX)
    .describe(
      'Case-insensitive regex a comment must match to re-run the check pipeline (it sees the first 1000 characters).',
    ),
  gateApproval: labelVote
    .default({ label: 'Workflow', value: 1 })
    .describe('The approval that enters the gate pipeline when newly granted.'),
});

const reportSchema = z.strictObject({
  label: nonEmpty
    .default('Verified')
    .describe('The label voted on; OpenStack third-party CIs vote Verified +1/-1 only.'),
  footer: z
    .string()
    .default('')
    .describe("Last line of every report: the CI's contact page (an OpenStack third-party CI rule)."),
  commentOnly: z.boolean().default(false).describe('Comment without voting (for a new or unstable system).'),
});

const limitsSchema = z.strictObject({
  maxConcurrentNodes: z.number().int().min(1).max(1000).default(10),
  buildTimeLimit: duration.default('4h').describe('Hard cap on any build, whatever its job timeout says.'),
  timeoutGrace: duration
    .default('10m')
    .describe("Extra time after a job's timeout before the reaper declares TIMED_OUT."),
  claimTimeout: duration
    .refine((text) => !DURATION_PATTERN.test(text) || durationSeconds(text) > 0, { message: 'must be longer than 0s' })
    .default('15m')
    .describe(
      'How long a launched node may take to claim its build (boot, agent download) before the reaper ' +
        'terminates it and relaunches the build as its next attempt (NODE_FAILURE after limits.maxAttempts).',
    ),
  maxAttempts: z
    .number()
    .int()
    .min(1)
    .max(10)
    .default(3)
    .describe('Launch attempts of one build (spot interruptions included) before RETRY_LIMIT.'),
});

const deploySchema = z.strictObject({
  logRetentionDays: z
    .number()
    .int()
    .min(1)
    .max(3650)
    .default(45)
    .describe('Days CI logs are kept; OpenStack asks for at least one month.'),
  alarmEmail: z
    .string()
    .email({ message: 'expected an email address' })
    .optional()
    .describe('Alarm notifications go here when set.'),
  ssmSessionManager: z
    .boolean()
    .default(false)
    .describe('Gives nodes an instance profile for SSM Session Manager (off: nodes have no AWS identity).'),
  stackPrefix: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]*$/, { message: 'expected letters, digits and "-"' })
    .default('AkandaCi')
    .describe('Prefix for stack names.'),
});

export const configSchema = z
  .strictObject({
    gerrit: gerritSchema,
    projects: z.array(projectSchema).min(1, { message: 'expected at least one project' }),
    jobs: z.array(jobSchema).min(1, { message: 'expected at least one job' }),
    nodes: z.record(
      z.string().regex(/^[a-z][a-z0-9-]*$/, { message: 'expected a node label of lowercase letters, digits and "-"' }),
      nodeLabelSchema,
    ),
    appliance: applianceSchema.default(() => applianceSchema.parse({})),
    pipelines: pipelinesSchema.default(() => pipelinesSchema.parse({})),
    report: reportSchema.default(() => reportSchema.parse({})),
    limits: limitsSchema.default(() => limitsSchema.parse({})),
    deploy: deploySchema.default(() => deploySchema.parse({})),
  })
  .superRefine((config, ctx) => {
    const jobNames = new Set<string>();
    config.jobs.forEach((job, i) => {
      if (jobNames.has(job.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['jobs', i, 'name'],
          message: `duplicate job name ${JSON.stringify(job.name)}`,
        });
      }
      jobNames.add(job.name);
      if (!(job.node in config.nodes)) {
        ctx.addIssue({
          code: 'custom',
          path: ['jobs', i, 'node'],
          message: `unknown node label ${JSON.stringify(job.node)} (known: ${Object.keys(config.nodes).join(', ') || 'none'})`,
        });
      }
      if (DURATION_PATTERN.test(job.timeout) && durationSeconds(job.timeout) === 0) {
        ctx.addIssue({ code: 'custom', path: ['jobs', i, 'timeout'], message: 'must be longer than 0s' });
      }
      checkRegexes(ctx, job.files, ['jobs', i, 'files']);
      checkRegexes(ctx, job['irrelevant-files'], ['jobs', i, 'irrelevant-files']);
    });
    const projectNames = new Set<string>();
    config.projects.forEach((project, i) => {
      if (projectNames.has(project.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['projects', i, 'name'],
          message: `duplicate project ${JSON.stringify(project.name)}`,
        });
      }
      projectNames.add(project.name);
      checkName(ctx, 'project', project.name, ['projects', i, 'name']);
      checkRegexes(ctx, project.branches, ['projects', i, 'branches']);
      for (const pipeline of ['check', 'gate', 'post'] as const) {
        project[pipeline].forEach((name, j) => {
          if (!jobNames.has(name)) {
            ctx.addIssue({
              code: 'custom',
              path: ['projects', i, pipeline, j],
              message: `unknown job ${JSON.stringify(name)}`,
            });
          }
        });
      }
    });
    checkRegexes(ctx, [config.pipelines.recheckRegex], ['pipelines', 'recheckRegex'], true);
    config.appliance.projects.forEach((name, i) => checkName(ctx, 'project', name, ['appliance', 'projects', i]));
    for (const branch of Object.keys(config.appliance.pinnedImages)) {
      checkName(ctx, 'branch', branch, ['appliance', 'pinnedImages', branch]);
    }
  });

/** The validated config, defaults filled in. */
export type Config = z.output<typeof configSchema>;
/** What a config file may contain (defaults optional). */
export type ConfigInput = z.input<typeof configSchema>;
export type JobConfig = Config['jobs'][number];
export type ProjectConfig = Config['projects'][number];
export type NodeLabelConfig = Config['nodes'][string];
export type PipelineName = 'check' | 'gate' | 'post';
export const PIPELINES: readonly PipelineName[] = ['check', 'gate', 'post'];

/** A config file that cannot be used; the message names the file and the path of the bad key. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Names here must be names Gerrit events can carry, or they would never match one. */
function checkName(ctx: z.RefinementCtx, kind: 'project' | 'branch', value: string, path: PropertyKey[]) {
  const problem = nameProblem(kind, value);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', path, message: `${kind} name ${problem}` });
}

function checkRegexes(
  ctx: z.RefinementCtx,
  sources: readonly string[] | undefined,
  path: PropertyKey[],
  single = false,
) {
  sources?.forEach((source, k) => {
    try {
      new RegExp(source);
    } catch {
      ctx.addIssue({
        code: 'custom',
        path: single ? path : [...path, k],
        message: `invalid regular expression ${JSON.stringify(source)}`,
      });
    }
  });
}

/** `jobs[2].timeout`, `gerrit.url`, `(root)`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(String(part))) out += out ? `.${String(part)}` : String(part);
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out || '(root)';
}

/** What a YAML reader calls the value it found, for "expected a list, got a string". */
function describeYamlValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'true/false';
  return typeof value;
}

const EXPECTED_TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

/** One `path: message` line per problem, in words a YAML author uses (zod's defaults name JS types). */
function describeIssue(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: [...issue.path, key], message: 'unknown key' }));
    case 'invalid_type':
      if (issue.input === undefined) return [{ path: issue.path, message: 'required' }];
      if (issue.message.startsWith('Invalid input')) {
        const expected = EXPECTED_TYPE_NAMES[issue.expected] ?? issue.expected;
        return [{ path: issue.path, message: `expected ${expected}, got ${describeYamlValue(issue.input)}` }];
      }
      return [{ path: issue.path, message: issue.message }];
    case 'invalid_key':
      return [{ path: issue.path, message: issue.issues[0]?.message ?? 'invalid key' }];
    default:
      return [{ path: issue.path, message: issue.message }];
  }
}

/** Validates an already-parsed document. Throws ConfigError listing every problem, one per line. */
export function validateConfig(document: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(document, { reportInput: true });
  if (result.success) return result.data;
  const lines = result.error.issues
    .flatMap(describeIssue)
    .map(({ path, message }) => `${source}: ${formatIssuePath(path)}: ${message}`);
  throw new ConfigError(lines.join('\n'));
}

/** `line L, column C` of a YAML error (1-based), from its character offset when the parser gives no line. */
function yamlErrorPosition(text: string, error: YAMLParseError): string {
  const linePos = error.linePos?.[0];
  if (linePos) return `line ${linePos.line}, column ${linePos.col}`;
  const offset = Math.min(error.pos[0], text.length);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}

/** Parses and validates YAML text. Throws ConfigError with the file name and line or key path. */
export function parseConfig(text: string, source = 'akanda-ci.yaml'): Config {
  let document: unknown;
  try {
    document = parseYaml(text, { prettyErrors: false, uniqueKeys: true });
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const where = yamlErrorPosition(text, error);
      throw new ConfigError(`${source}: ${where}: ${error.message.split('\n')[0]}`);
    }
    throw new ConfigError(`${source}: cannot parse YAML`);
  }
  if (document === null || document === undefined) throw new ConfigError(`${source}: the file is empty`);
  return validateConfig(document, source);
}

/** The JSON Schema of the config file, generated from the same definition (for editor completion). */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }),
    title: 'akanda-ci.yaml',
    description: 'The akanda-ci config: what is tested where.',
  };
}

/** Where nodes fetch `<project>` from. */
export function gitBaseUrl(config: Config): string {
  return (config.gerrit.gitUrl ?? config.gerrit.url).replace(/\/+$/, '');
}

export function jobTimeoutSeconds(config: Config, job: JobConfig): number {
  return Math.min(durationSeconds(job.timeout), durationSeconds(config.limits.buildTimeLimit));
}

export function findJob(config: Config, name: string): JobConfig | undefined {
  return config.jobs.find((job) => job.name === name);
}

export function findProject(config: Config, name: string): ProjectConfig | undefined {
  return config.projects.find((project) => project.name === name);
}
