/**
 * The boot script of every CI node. It holds no secret and nothing per build (CreateFleet cannot
 * vary user data per request): the agent reads its build id, claim token and API URL from the
 * instance's tags through IMDSv2, then claims its job.
 */
import { AGENT_ARCHIVE_NAME, AGENT_HOME } from './agent-bundle';

export interface NodeBootstrapProps {
  /** `https://<distribution>/agent/node-agent.tar.gz`; may contain deploy-time tokens. */
  readonly agentUrl: string;
  /** sha256 of the archive, computed at synth. */
  readonly agentSha256: string;
  /**
   * Minutes after boot when the node powers itself off whatever happens (shutdown behaviour
   * terminate turns that into termination): a backstop for the control plane's build time limit.
   */
  readonly maxLifetimeMinutes: number;
  /** Where the archive is unpacked and run. @default /opt/akanda-ci */
  readonly agentHome?: string;
}

/** Single-quotes a value for bash; only ever used on values this file controls, as defence in depth. */
function quote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The script's lines, for `UserData.addCommands` (which supplies the shebang). */
export function nodeBootstrapCommands(props: NodeBootstrapProps): string[] {
  if (!/^[0-9a-f]{64}$/.test(props.agentSha256)) throw new Error('agentSha256 must be 64 hex digits');
  if (!Number.isInteger(props.maxLifetimeMinutes) || props.maxLifetimeMinutes < 1) {
    throw new Error('maxLifetimeMinutes must be a positive integer');
  }
  const home = props.agentHome ?? AGENT_HOME;
  if (!/^\/[A-Za-z0-9._/-]+$/.test(home)) throw new Error('agentHome must be an absolute path of safe characters');
  const archive = `${home}/${AGENT_ARCHIVE_NAME}`;
  return [
    'set -euo pipefail',
    `shutdown -h +${props.maxLifetimeMinutes} 'akanda-ci: node lifetime limit reached'`,
    // A node that cannot start its agent would otherwise idle until the reaper finds it.
    `trap 'echo "akanda-ci: bootstrap failed at line $LINENO" >&2; shutdown -h now' ERR`,
    'export DEBIAN_FRONTEND=noninteractive',
    // unattended-upgrades often holds the dpkg lock right after boot: wait for it instead of failing.
    'for attempt in 1 2 3 4 5; do apt-get -o DPkg::Lock::Timeout=300 update -q && break; sleep 15; done',
    'apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends nodejs git curl ca-certificates',
    `install -d -m 0755 ${home}`,
    `curl --fail --silent --show-error --location --proto '=https' --retry 5 --retry-all-errors -o ${archive} ${quote(props.agentUrl)}`,
    `echo ${quote(`${props.agentSha256}  ${archive}`)} | sha256sum --check --strict`,
    `tar -xzf ${archive} -C ${home} --no-same-owner`,
    'trap - ERR',
    'set +e',
    `cd ${home}`,
    `node ${home}/node-agent.js --ec2`,
    'echo "akanda-ci: node agent exited with status $?"',
    // The agent powers off itself; this covers an agent that crashed. One node, one build.
    'shutdown -h now',
  ];
}
