/**
 * Checks a validated config against what AWS can actually run, before any template is written.
 *
 * The config schema (lambda/core/config.ts) knows what a label *is*; only the deploy knows that
 * nested virtualization exists on C8i/M8i/R8i alone, that devstack needs 8 vCPU and 16 GiB, or
 * that an amd64 AMI cannot boot on Graviton. Every problem names the key path, like the schema's.
 */
import { formatIssuePath, type Config, type NodeLabelConfig } from './config';

/** Virtual (non-metal) families that expose /dev/kvm when CpuOptions.NestedVirtualization is enabled. */
export const NESTED_VIRTUALIZATION_FAMILIES: readonly string[] = [
  'c8i',
  'm8i',
  'r8i',
  'c8i-flex',
  'm8i-flex',
  'r8i-flex',
];

/** devstack plus an appliance VM per router needs at least 8 vCPU (16 GiB on C8i) and room for images. */
export const DEVSTACK_MIN_VCPUS = 8;
export const DEVSTACK_MIN_ROOT_GIB = 60;

/** `<prefix>-images-<12-digit account>-<region>` must fit S3's 63 characters. */
export const MAX_STACK_PREFIX_LENGTH = 20;

const INSTANCE_TYPE = /^([a-z][a-z0-9-]*)\.([a-z0-9-]+)$/;
const SSM_PARAMETER = /^\/[A-Za-z0-9_.\-/]+$/;
/** vCPUs of a size on the 2-vCPU-per-large scale every current family uses; undefined for metal and unknown sizes. */
export function vcpusOfSize(size: string): number | undefined {
  if (size === 'large') return 2;
  if (size === 'xlarge') return 4;
  const match = /^(\d+)xlarge$/.exec(size);
  return match ? Number(match[1]) * 4 : undefined;
}

/** Graviton families carry a `g` after the generation digit: c7g, m7gd, c8gn, t4g, r8g. */
function isArmFamily(family: string): boolean {
  return /^[a-z]+\d+g/.test(family) || family === 'a1';
}

function labelProblems(label: string, node: NodeLabelConfig): { path: PropertyKey[]; message: string }[] {
  const problems: { path: PropertyKey[]; message: string }[] = [];
  const at = (...rest: PropertyKey[]) => ['nodes', label, ...rest];
  const amiArch = node.amiSsmParameter.includes('arm64')
    ? 'arm64'
    : node.amiSsmParameter.includes('amd64')
      ? 'amd64'
      : '';

  const checkArch = (family: string, path: PropertyKey[]) => {
    const arch = isArmFamily(family) ? 'arm64' : 'amd64';
    if (amiArch && arch !== amiArch) {
      problems.push({
        path,
        message: `${arch} instance family ${JSON.stringify(family)} cannot boot the ${amiArch} AMI of amiSsmParameter`,
      });
    }
  };

  node.instanceTypes.forEach((type, i) => {
    const match = INSTANCE_TYPE.exec(type);
    if (!match) {
      problems.push({
        path: at('instanceTypes', i),
        message: `expected an instance type like c8i.2xlarge, got ${JSON.stringify(type)}`,
      });
      return;
    }
    const [, family = '', size = ''] = match;
    checkArch(family, at('instanceTypes', i));
    if (size.startsWith('metal')) {
      problems.push({
        path: at('instanceTypes', i),
        message: `${JSON.stringify(type)} is bare metal: list it in metalFallbackTypes, which launch without nested virtualization`,
      });
      return;
    }
    if (!node.nestedVirtualization) return;
    if (!NESTED_VIRTUALIZATION_FAMILIES.includes(family)) {
      problems.push({
        path: at('instanceTypes', i),
        message: `nested virtualization needs a C8i, M8i or R8i type (${NESTED_VIRTUALIZATION_FAMILIES.join(', ')}), got ${JSON.stringify(type)}`,
      });
      return;
    }
    const vcpus = vcpusOfSize(size);
    if (vcpus === undefined || vcpus < DEVSTACK_MIN_VCPUS) {
      problems.push({
        path: at('instanceTypes', i),
        message: `${JSON.stringify(type)} is too small for devstack: use ${family}.2xlarge or larger (at least ${DEVSTACK_MIN_VCPUS} vCPU and 16 GiB)`,
      });
    }
  });

  node.metalFallbackTypes.forEach((type, i) => {
    const match = INSTANCE_TYPE.exec(type);
    if (!match || !match[2]?.startsWith('metal')) {
      problems.push({
        path: at('metalFallbackTypes', i),
        message: `expected a bare-metal type like c5.metal, got ${JSON.stringify(type)}`,
      });
      return;
    }
    checkArch(match[1] ?? '', at('metalFallbackTypes', i));
  });

  if (node.nestedVirtualization && node.rootVolumeGiB < DEVSTACK_MIN_ROOT_GIB) {
    problems.push({
      path: at('rootVolumeGiB'),
      message: `devstack nodes need at least ${DEVSTACK_MIN_ROOT_GIB} GiB of root volume, got ${node.rootVolumeGiB}`,
    });
  }
  if (!SSM_PARAMETER.test(node.amiSsmParameter)) {
    problems.push({
      path: at('amiSsmParameter'),
      message:
        'expected an SSM parameter name like /aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id',
    });
  }
  return problems;
}

/**
 * Everything in a schema-valid config that would fail at deploy time or produce an unusable fleet,
 * one line per problem: `akanda-ci.yaml: nodes.devstack.instanceTypes[2]: ...`.
 */
export function deployProblems(config: Config, source = 'akanda-ci.yaml'): string[] {
  const problems: { path: PropertyKey[]; message: string }[] = [];
  for (const [label, node] of Object.entries(config.nodes)) problems.push(...labelProblems(label, node));
  if (config.deploy.stackPrefix.length > MAX_STACK_PREFIX_LENGTH) {
    problems.push({
      path: ['deploy', 'stackPrefix'],
      message: `at most ${MAX_STACK_PREFIX_LENGTH} characters: it also names the S3 buckets, whose names are limited to 63`,
    });
  }
  return problems.map(({ path, message }) => `${source}: ${formatIssuePath(path)}: ${message}`);
}
