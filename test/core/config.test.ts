import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configSchemaText } from '../../bin/commands/config-schema';
import {
  ConfigError,
  configJsonSchema,
  DEFAULT_RECHECK_REGEX,
  findJob,
  findProject,
  formatIssuePath,
  gitBaseUrl,
  jobTimeoutSeconds,
  parseConfig,
  PIPELINES,
} from '../../lambda/core/config';
import { REPO_ROOT, shippedConfig } from './support';

const MINIMAL = `
gerrit: { url: https://review.example.org, username: ci }
nodes: { small: { instanceTypes: [t3.small] } }
jobs: [{ name: unit, run: make test, node: small }]
projects: [{ name: stackforge/akanda-rug, check: [unit] }]
`;

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message.split('\n');
  }
  throw new Error('expected a ConfigError');
}

describe('the shipped akanda-ci.yaml', () => {
  const config = shippedConfig();

  it('covers the five Akanda repositories with pep8, py27 and dsvm-tempest-akanda in check and gate', () => {
    expect(config.projects.map((p) => p.name)).toEqual([
      'stackforge/akanda-rug',
      'stackforge/akanda-appliance',
      'stackforge/akanda-appliance-builder',
      'stackforge/akanda-neutron',
      'stackforge/akanda-horizon',
    ]);
    for (const project of config.projects) {
      expect(project.check).toEqual(['pep8', 'py27', 'dsvm-tempest-akanda']);
      expect(project.gate).toEqual(['pep8', 'py27', 'dsvm-tempest-akanda']);
    }
  });

  it('publishes the appliance image after merges to the appliance repositories only', () => {
    const publishing = config.jobs.filter((j) => j.publishesImage).map((j) => j.name);
    expect(publishing).toEqual(['akanda-appliance-image']);
    const withPost = config.projects.filter((p) => p.post.length > 0).map((p) => p.name);
    expect(withPost).toEqual(config.appliance.projects);
    expect(config.appliance.projects).toEqual(['stackforge/akanda-appliance', 'stackforge/akanda-appliance-builder']);
  });

  it('runs the integration job on nested-virtualization nodes with the image', () => {
    const dsvm = findJob(config, 'dsvm-tempest-akanda')!;
    expect(dsvm.needsImage).toBe(true);
    expect(config.nodes[dsvm.node]?.nestedVirtualization).toBe(true);
    expect(findJob(config, 'pep8')?.node).toBe('small');
  });

  it('uses the OpenStack recheck convention and Workflow +1 for the gate', () => {
    expect(config.pipelines.recheckRegex).toBe(DEFAULT_RECHECK_REGEX);
    expect(config.pipelines.gateApproval).toEqual({ label: 'Workflow', value: 1 });
  });

  it('leaves latestImageUrl unset for the stacks to fill in', () => {
    expect(config.appliance.latestImageUrl).toBeUndefined();
  });
});

describe('defaults and helpers', () => {
  const config = parseConfig(MINIMAL);

  it('fills in every default', () => {
    expect(config.jobs[0]).toEqual({
      name: 'unit',
      run: 'make test',
      node: 'small',
      timeout: '60m',
      voting: true,
      needsImage: false,
      publishesImage: false,
    });
    expect(config.projects[0]).toEqual({ name: 'stackforge/akanda-rug', check: ['unit'], gate: [], post: [] });
    expect(config.appliance).toEqual({
      projects: ['stackforge/akanda-appliance', 'stackforge/akanda-appliance-builder'],
      pinnedImages: {},
      latestImageName: 'akanda-appliance-latest.qcow2',
    });
    expect(config.pipelines).toEqual({
      recheckRegex: DEFAULT_RECHECK_REGEX,
      gateApproval: { label: 'Workflow', value: 1 },
    });
    expect(config.report).toEqual({ label: 'Verified', footer: '', commentOnly: false });
    expect(config.limits).toEqual({
      maxConcurrentNodes: 10,
      buildTimeLimit: '4h',
      timeoutGrace: '10m',
      claimTimeout: '15m',
      maxAttempts: 3,
    });
    expect(config.nodes.small).toMatchObject({
      nestedVirtualization: false,
      metalFallbackTypes: [],
      onDemandFallback: true,
    });
  });

  it('gitBaseUrl defaults to the REST URL, without trailing slashes', () => {
    expect(gitBaseUrl(config)).toBe('https://review.example.org');
    const withGit = parseConfig(MINIMAL.replace('username: ci', 'username: ci, gitUrl: "file:///srv/git/"'));
    expect(gitBaseUrl(withGit)).toBe('file:///srv/git');
  });

  it('jobTimeoutSeconds is the job timeout capped by limits.buildTimeLimit', () => {
    const capped = parseConfig(`${MINIMAL}limits: { buildTimeLimit: 30m }\n`);
    expect(jobTimeoutSeconds(config, config.jobs[0]!)).toBe(3600);
    expect(jobTimeoutSeconds(capped, capped.jobs[0]!)).toBe(1800);
  });

  it('findJob, findProject and PIPELINES', () => {
    expect(findJob(config, 'unit')?.run).toBe('make test');
    expect(findJob(config, 'nope')).toBeUndefined();
    expect(findProject(config, 'stackforge/akanda-rug')?.check).toEqual(['unit']);
    expect(findProject(config, 'stackforge/akanda')).toBeUndefined();
    expect(PIPELINES).toEqual(['check', 'gate', 'post']);
  });

  it('formatIssuePath', () => {
    expect(formatIssuePath(['jobs', 2, 'timeout'])).toBe('jobs[2].timeout');
    expect(formatIssuePath(['appliance', 'pinnedImages', 'stable/kilo'])).toBe('appliance.pinnedImages["stable/kilo"]');
    expect(formatIssuePath([])).toBe('(root)');
  });
});

describe('errors name the file and the path of the offending key', () => {
  it('the issue example: jobs[2].timeout', () => {
    const yaml = `${MINIMAL.replace(
      'jobs: [{ name: unit, run: make test, node: small }]',
      'jobs: [{ name: a, run: x, node: small }, { name: b, run: x, node: small }, { name: unit, run: x, node: small, timeout: 90 }]',
    )}`;
    expect(problems(yaml)).toEqual(['test.yaml: jobs[2].timeout: expected a duration like 90m']);
  });

  it('a missing required key says required', () => {
    expect(problems(MINIMAL.replace(', username: ci', ''))).toEqual(['test.yaml: gerrit.username: required']);
    expect(problems(MINIMAL.replace('url: https://review.example.org, ', ''))).toEqual([
      'test.yaml: gerrit.url: required',
    ]);
    expect(problems(MINIMAL.replace(/^jobs:.*$/m, ''))).toEqual(['test.yaml: jobs: required']);
  });

  it('a value with a line break stays on its problem line (quoted, escaped)', () => {
    expect(problems(MINIMAL.replace('node: small }', 'node: "a\\nb" }'))).toEqual([
      'test.yaml: jobs[0].node: unknown node label "a\\nb" (known: small)',
    ]);
    expect(problems(MINIMAL.replace('check: [unit]', 'check: ["x\\ny"]'))).toEqual([
      'test.yaml: projects[0].check[0]: unknown job "x\\ny"',
    ]);
  });

  it('lists every unknown key (a password in the file is one)', () => {
    expect(problems(MINIMAL.replace('username: ci', 'username: ci, password: hunter2, sshKey: x'))).toEqual([
      'test.yaml: gerrit.password: unknown key',
      'test.yaml: gerrit.sshKey: unknown key',
    ]);
  });

  it('type errors use YAML words', () => {
    expect(problems(MINIMAL.replace('check: [unit]', 'check: [unit], branches: master'))).toEqual([
      'test.yaml: projects[0].branches: expected a list, got a string',
    ]);
    expect(problems(MINIMAL.replace('node: small }', 'node: small, voting: "yes" }'))).toEqual([
      'test.yaml: jobs[0].voting: expected true or false, got a string',
    ]);
    expect(
      problems(MINIMAL.replace('gerrit: { url: https://review.example.org, username: ci }', 'gerrit: [1]')),
    ).toEqual(['test.yaml: gerrit: expected a mapping, got a list']);
    expect(problems('- a\n- b\n')).toEqual(['test.yaml: (root): expected a mapping, got a list']);
    expect(problems(`${MINIMAL}limits: { maxAttempts: 2.5 }\n`)).toEqual([
      'test.yaml: limits.maxAttempts: expected an integer, got a number',
    ]);
  });

  it('checks values', () => {
    const cases: [string, string][] = [
      ['url: https://review.example.org', 'url: ftp://review.example.org'],
      ['node: small }', 'node: big }'],
      ['check: [unit]', 'check: [unit, lint]'],
      ['name: stackforge/akanda-rug', 'name: "stackforge/akanda rug"'],
      ['node: small }', 'node: small, timeout: 0m }'],
      ['node: small }', 'node: small, irrelevant-files: ["(unclosed"] }'],
      ['small: {', 'Small: {'],
    ];
    expect(cases.map(([from, to]) => problems(MINIMAL.replace(from, to)))).toEqual([
      ['test.yaml: gerrit.url: expected an http(s) URL'],
      ['test.yaml: jobs[0].node: unknown node label "big" (known: small)'],
      ['test.yaml: projects[0].check[1]: unknown job "lint"'],
      ['test.yaml: projects[0].name: project name may contain only letters, digits, ".", "_", "/", "+" and "-"'],
      ['test.yaml: jobs[0].timeout: must be longer than 0s'],
      ['test.yaml: jobs[0].irrelevant-files[0]: invalid regular expression "(unclosed"'],
      ['test.yaml: nodes.Small: expected a node label of lowercase letters, digits and "-"'],
    ]);
  });

  it('checks names and URLs in the appliance section', () => {
    const yaml = `${MINIMAL}appliance:
  projects: [stackforge/akanda-appliance, "bad;name"]
  pinnedImages: { "stable/kilo": "https://cdn.example.org/kilo.qcow2", "stable kilo": "https://x.example/k.qcow2", "stable/juno": "ftp://x/y" }
  latestImageName: ../latest.qcow2
`;
    expect(problems(yaml)).toEqual([
      'test.yaml: appliance.pinnedImages["stable/juno"]: expected an http(s) URL',
      'test.yaml: appliance.latestImageName: expected a file name of letters, digits, ".", "_" and "-"',
      'test.yaml: appliance.projects[1]: project name may contain only letters, digits, ".", "_", "/", "+" and "-"',
      'test.yaml: appliance.pinnedImages["stable kilo"]: branch name may contain only letters, digits, ".", "_", "/", "+" and "-"',
    ]);
    const namesOnly = yaml.replace(', "stable/juno": "ftp://x/y"', '').replace('../latest.qcow2', 'latest.qcow2');
    expect(problems(namesOnly)).toEqual([
      'test.yaml: appliance.projects[1]: project name may contain only letters, digits, ".", "_", "/", "+" and "-"',
      'test.yaml: appliance.pinnedImages["stable kilo"]: branch name may contain only letters, digits, ".", "_", "/", "+" and "-"',
    ]);
  });

  it('reports duplicates', () => {
    const yaml = `
gerrit: { url: https://review.example.org, username: ci }
nodes: { small: { instanceTypes: [t3.small] } }
jobs: [{ name: unit, run: a, node: small }, { name: unit, run: b, node: small }]
projects: [{ name: p, check: [unit] }, { name: p }]
`;
    expect(problems(yaml)).toEqual([
      'test.yaml: jobs[1].name: duplicate job name "unit"',
      'test.yaml: projects[1].name: duplicate project "p"',
    ]);
  });

  it('YAML syntax errors give the line and column, empty files say so, duplicate keys are errors', () => {
    expect(problems('gerrit: {url: x\n')[0]).toMatch(/^test\.yaml: line 2, column 1: Flow map/);
    expect(problems('gerrit:\n  url: "x\n')[0]).toBe('test.yaml: line 3, column 1: Missing closing "quote');
    expect(problems('')).toEqual(['test.yaml: the file is empty']);
    expect(problems('# only a comment\n')).toEqual(['test.yaml: the file is empty']);
    expect(problems(`${MINIMAL}gerrit: { url: https://x.example, username: y }\n`)[0]).toMatch(
      /^test\.yaml: line 6, column 1: Map keys must be unique/,
    );
  });

  it('messages carry no stack trace', () => {
    for (const line of problems(MINIMAL.replace(', username: ci', ''))) expect(line).not.toMatch(/\bat .*\.ts:\d+/);
  });
});

describe('the JSON Schema', () => {
  it('is generated from the same definition', () => {
    const schema = configJsonSchema() as { properties: Record<string, unknown>; required: string[]; title: string };
    expect(Object.keys(schema.properties)).toEqual([
      'gerrit',
      'projects',
      'jobs',
      'nodes',
      'appliance',
      'pipelines',
      'report',
      'limits',
      'deploy',
    ]);
    expect(schema.required).toEqual(['gerrit', 'projects', 'jobs', 'nodes']);
    expect(schema.title).toBe('akanda-ci.yaml');
  });

  it('the committed akanda-ci.schema.json equals the generated one (regenerate: npx akanda-ci config-schema > akanda-ci.schema.json)', () => {
    expect(readFileSync(join(REPO_ROOT, 'akanda-ci.schema.json'), 'utf8')).toBe(configSchemaText());
  });
});
