/**
 * Config problems stop `cdk synth` with the file and key path, exit status 1 and no stack trace:
 * the schema's own errors and the deploy checks (what AWS can actually run).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { parseConfig } from '../../lambda/core/config';
import { deployProblems, vcpusOfSize } from '../../lambda/core/deploy-rules';
import { loadDeployConfig, parseAvailabilityZones } from '../../lib/deploy-config';
import { cdkJsonContext, defaultConfigText, removeTempDirs, REPOSITORY_ROOT, tempDir } from './synth';

afterAll(removeTempDirs);

const directory = tempDir('config');

function withChanges(changes: [path: (string | number)[], value: unknown][]): string {
  const document = parseDocument(defaultConfigText());
  for (const [path, value] of changes) document.setIn(path, value);
  return document.toString();
}

function problemsOf(text: string): string[] {
  return deployProblems(parseConfig(text, 'akanda-ci.yaml'), 'akanda-ci.yaml');
}

describe('deploy checks', () => {
  test('the default config passes', () => {
    expect(problemsOf(defaultConfigText())).toEqual([]);
  });

  test('nested virtualization on a type without it names the key', () => {
    const text = withChanges([[['nodes', 'devstack', 'instanceTypes', 2], 'c7i.2xlarge']]);
    expect(problemsOf(text)).toEqual([
      'akanda-ci.yaml: nodes.devstack.instanceTypes[2]: nested virtualization needs a C8i, M8i or R8i type (c8i, m8i, r8i, c8i-flex, m8i-flex, r8i-flex), got "c7i.2xlarge"',
    ]);
  });

  test('devstack nodes need 8 vCPU and room on disk; metal belongs in metalFallbackTypes', () => {
    const text = withChanges([
      [
        ['nodes', 'devstack', 'instanceTypes'],
        ['c8i.xlarge', 'm8i.metal-48xl'],
      ],
      [['nodes', 'devstack', 'rootVolumeGiB'], 40],
      [['nodes', 'devstack', 'metalFallbackTypes'], ['c5.24xlarge']],
    ]);
    expect(problemsOf(text)).toEqual([
      expect.stringMatching(
        /^akanda-ci\.yaml: nodes\.devstack\.instanceTypes\[0\]: "c8i\.xlarge" is too small for devstack/,
      ),
      expect.stringMatching(/^akanda-ci\.yaml: nodes\.devstack\.instanceTypes\[1\]: "m8i\.metal-48xl" is bare metal/),
      'akanda-ci.yaml: nodes.devstack.metalFallbackTypes[0]: expected a bare-metal type like c5.metal, got "c5.24xlarge"',
      'akanda-ci.yaml: nodes.devstack.rootVolumeGiB: devstack nodes need at least 60 GiB of root volume, got 40',
    ]);
  });

  test('Graviton types cannot boot the amd64 AMI; hostile names are refused', () => {
    const text = withChanges([
      [
        ['nodes', 'small', 'instanceTypes'],
        ['c7g.large', 'c8i.large; rm -rf /'],
      ],
      [['nodes', 'small', 'amiSsmParameter'], '/aws/service/x/amd64/$(id)'],
      [['deploy', 'stackPrefix'], 'AVeryLongStackPrefixIndeed'],
    ]);
    expect(problemsOf(text)).toEqual([
      'akanda-ci.yaml: nodes.small.instanceTypes[0]: arm64 instance family "c7g" cannot boot the amd64 AMI of amiSsmParameter',
      'akanda-ci.yaml: nodes.small.instanceTypes[1]: expected an instance type like c8i.2xlarge, got "c8i.large; rm -rf /"',
      expect.stringMatching(/^akanda-ci\.yaml: nodes\.small\.amiSsmParameter: expected an SSM parameter name/),
      expect.stringMatching(/^akanda-ci\.yaml: deploy\.stackPrefix: at most 20 characters/),
    ]);
  });

  test('sizes map to vCPUs', () => {
    expect([vcpusOfSize('large'), vcpusOfSize('xlarge'), vcpusOfSize('2xlarge'), vcpusOfSize('48xlarge')]).toEqual([
      2, 4, 8, 192,
    ]);
    expect(vcpusOfSize('metal-48xl')).toBeUndefined();
  });
});

describe('availabilityZones context', () => {
  test('a comma-separated string or a JSON array; unset means the default', () => {
    expect(parseAvailabilityZones(undefined)).toBeUndefined();
    expect(parseAvailabilityZones(' us-east-1a, us-east-1b ,')).toEqual(['us-east-1a', 'us-east-1b']);
    expect(parseAvailabilityZones(['eu-central-1a', 'eu-central-1c'])).toEqual(['eu-central-1a', 'eu-central-1c']);
  });

  test('refuses what is not an AZ list, with the context key in the message', () => {
    expect(() => parseAvailabilityZones('us-east-1a,$(reboot)')).toThrow(
      'context availabilityZones: expected AZ names like us-east-1a, got "$(reboot)"',
    );
    expect(() => parseAvailabilityZones('')).toThrow('context availabilityZones: expected 1 to 16 AZ names, got 0');
    expect(() => parseAvailabilityZones('us-east-1a,us-east-1a')).toThrow('an AZ is listed twice');
    expect(() => parseAvailabilityZones(42)).toThrow('expected a comma-separated list');
  });
});

describe('loading', () => {
  test('a missing file is a ConfigError naming the file', () => {
    expect(() => loadDeployConfig(join(directory, 'absent.yaml'))).toThrow(
      /absent\.yaml: cannot read the config file \(ENOENT\)/,
    );
  });

  test('a schema problem is a ConfigError with the file and key path', () => {
    const path = join(directory, 'schema.yaml');
    writeFileSync(path, withChanges([[['jobs', 2, 'timeout'], 'soon']]));
    expect(() => loadDeployConfig(path)).toThrow(`${path}: jobs[2].timeout: expected a duration like 90m`);
  });
});

describe('bin/app.ts', () => {
  /** Runs the app as the CDK CLI does: context in CDK_CONTEXT_JSON, output to CDK_OUTDIR; no AWS credentials. */
  function runApp(configPath: string, context: Record<string, unknown> = {}, env: Record<string, string> = {}) {
    const outdir = tempDir('out');
    const run = spawnSync(
      process.execPath,
      [join(REPOSITORY_ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'bin/app.ts'],
      {
        cwd: REPOSITORY_ROOT,
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH ?? '',
          HOME: directory,
          CDK_OUTDIR: outdir,
          CDK_CONTEXT_JSON: JSON.stringify({ ...cdkJsonContext(), config: configPath, ...context }),
          ...env,
        },
      },
    );
    return { ...run, outdir };
  }

  test('a valid config synthesizes (cdk-nag included) with the AZs and environment it is given', () => {
    const path = join(directory, 'good.yaml');
    writeFileSync(path, defaultConfigText());
    const run = runApp(
      path,
      // Template wiring only: skipping the handler bundling keeps this fast.
      { availabilityZones: 'eu-west-1a, eu-west-1b', 'aws:cdk:bundling-stacks': [] },
      { CDK_DEFAULT_ACCOUNT: '123456789012', CDK_DEFAULT_REGION: 'eu-west-1' },
    );
    expect(run.stderr).not.toMatch(/ERROR|Error:/);
    expect(run.status).toBe(0);
    const manifest = JSON.parse(readFileSync(join(run.outdir, 'manifest.json'), 'utf8')) as {
      artifacts: Record<string, { environment?: string }>;
      missing?: unknown[];
    };
    expect(manifest.artifacts['AkandaCi-Fleet']?.environment).toBe('aws://123456789012/eu-west-1');
    expect(manifest.missing).toBeUndefined();
    const fleet = JSON.parse(readFileSync(join(run.outdir, 'AkandaCi-Fleet.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string; Properties: { AvailabilityZone?: unknown } }>;
    };
    const zones = Object.values(fleet.Resources)
      .filter((r) => r.Type === 'AWS::EC2::Subnet')
      .map((r) => r.Properties.AvailabilityZone);
    expect(zones).toEqual(['eu-west-1a', 'eu-west-1b']);
  });

  test('a schema error prints the file and key path and exits 1 without a stack trace', () => {
    const path = join(directory, 'bad-timeout.yaml');
    writeFileSync(path, withChanges([[['jobs', 2, 'timeout'], '150 minutes']]));
    const run = runApp(path);
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe(`${path}: jobs[2].timeout: expected a duration like 90m`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  test('a deploy problem prints the key path and exits 1', () => {
    const path = join(directory, 'bad-type.yaml');
    writeFileSync(path, withChanges([[['nodes', 'devstack', 'instanceTypes', 0], 'c5.2xlarge']]));
    const run = runApp(path);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`${path}: nodes.devstack.instanceTypes[0]: nested virtualization needs`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});
