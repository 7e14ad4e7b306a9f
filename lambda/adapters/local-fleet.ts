/**
 * The Fleet of `akanda-ci local`: each node is a child process running the node agent (the same
 * program EC2 nodes run) in its own temp workspace. The instance id is `local-<pid>`; terminate
 * kills the agent's process group and every process group below it (the agent runs its job in
 * a group of its own), like an instance that is switched off.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Fleet, LaunchOutcome, LaunchRequest, ManagedInstance } from './fleet';

const execFileAsync = promisify(execFile);

export interface LocalFleetOptions {
  /** Base URL of the node API (the local server). */
  apiUrl: string;
  /** Each launch gets `<workRoot>/<buildId>-<launchSeq>`. */
  workRoot: string;
  /** The agent's entry point; default lambda/node-agent/main.ts of this checkout. */
  agentEntry?: string;
  /**
   * Instance metadata endpoint each agent watches for the spot interruption notice (`--imds-url`);
   * unset, local nodes watch none. An IMDS stand-in here rehearses interruptions locally.
   */
  imdsUrl?: string;
  /** Between SIGTERM and SIGKILL on terminate. Default 10 s. */
  killGraceMs?: number;
  /** A node process ended (normally after reporting, or killed): the control plane decides. */
  onExit(node: { instanceId: string; buildId: string; code: number | null; signal: NodeJS.Signals | null }): void;
}

interface LocalNode {
  instanceId: string;
  buildId: string;
  launchSeq: number;
  child: ChildProcess;
  launchedAt: number;
  stopping?: boolean;
}

export class LocalFleet implements Fleet {
  private readonly nodes = new Map<string, LocalNode>();

  constructor(private readonly options: LocalFleetOptions) {}

  async launch(request: LaunchRequest): Promise<LaunchOutcome> {
    // The lifecycle may repeat a launch of the same seq: it must not add a second node.
    for (const node of this.nodes.values()) {
      if (node.buildId === request.buildId && node.launchSeq === request.launchSeq) {
        return { status: 'launched', instanceId: node.instanceId, lifecycle: 'local' };
      }
    }
    const workDir = join(this.options.workRoot, `${request.buildId}-${request.launchSeq}`);
    mkdirSync(workDir, { recursive: true });
    const entry = this.options.agentEntry ?? resolve(__dirname, '../node-agent/main.ts');
    const output = createWriteStream(join(workDir, 'node-agent.log'));
    let child: ChildProcess;
    try {
      child = spawn(
        process.execPath,
        [
          '--require',
          require.resolve('tsx/cjs'),
          entry,
          '--api-url',
          this.options.apiUrl,
          '--build-id',
          request.buildId,
          '--work-dir',
          workDir,
          ...(this.options.imdsUrl === undefined ? [] : ['--imds-url', this.options.imdsUrl]),
        ],
        {
          // The node runs untrusted code: it gets a clean environment (never the CI's secrets), and the
          // claim token by environment, so it is not in the process list.
          env: { ...nodeEnvironment(), AKANDA_CI_CLAIM_TOKEN: request.claimToken },
          cwd: workDir,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
    } catch (error) {
      return { status: 'failed', reason: `cannot start the node agent: ${(error as Error).message}` };
    }
    const pid = child.pid;
    if (pid === undefined) {
      return await new Promise<LaunchOutcome>((done) =>
        child.once('error', (error) =>
          done({ status: 'failed', reason: `cannot start the node agent: ${error.message}` }),
        ),
      );
    }
    child.stdout?.pipe(output, { end: false });
    child.stderr?.pipe(output, { end: false });
    const instanceId = `local-${pid}`;
    const node: LocalNode = {
      instanceId,
      buildId: request.buildId,
      launchSeq: request.launchSeq,
      child,
      launchedAt: Date.now() / 1000,
    };
    this.nodes.set(instanceId, node);
    child.once('exit', (code, signal) => {
      this.nodes.delete(instanceId);
      output.end();
      this.options.onExit({ instanceId, buildId: request.buildId, code, signal });
    });
    return { status: 'launched', instanceId, lifecycle: 'local' };
  }

  async terminateInstances(instanceIds: readonly string[]): Promise<void> {
    for (const instanceId of instanceIds) {
      const node = this.nodes.get(instanceId);
      const pid = node?.child.pid;
      if (!node || pid === undefined || node.stopping) continue;
      node.stopping = true;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        continue; // already gone
      }
      const timer = setTimeout(() => void killTree(pid), this.options.killGraceMs ?? 10_000);
      node.child.once('exit', () => clearTimeout(timer));
    }
  }

  async listManagedInstances(): Promise<ManagedInstance[]> {
    return [...this.nodes.values()].map((node) => ({
      instanceId: node.instanceId,
      buildId: node.buildId,
      state: 'running',
      launchedAt: node.launchedAt,
    }));
  }

  /** Stops every node at once (local mode shutting down). */
  async terminateAll(): Promise<void> {
    for (const node of this.nodes.values()) if (node.child.pid !== undefined) await killTree(node.child.pid);
  }

  get size(): number {
    return this.nodes.size;
  }
}

/** What a node may see of this machine's environment: enough to find git, bash and a temp dir. */
const PASSED_VARIABLES = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ', 'USER', 'SHELL'];

function nodeEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of PASSED_VARIABLES) if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

/** SIGKILL to the process group of `pid` and to the groups of all its descendants. */
async function killTree(pid: number): Promise<void> {
  const groups = new Set<number>([pid]);
  try {
    const { stdout } = await execFileAsync('ps', ['-eo', 'pid=,ppid=,pgid=']);
    const rows = stdout
      .split('\n')
      .map((line) => line.trim().split(/\s+/).map(Number))
      .filter((row) => row.length === 3 && row.every(Number.isInteger));
    const descendants = new Set<number>([pid]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [child, parent] of rows) {
        if (descendants.has(parent!) && !descendants.has(child!)) {
          descendants.add(child!);
          grew = true;
        }
      }
    }
    for (const [child, , group] of rows) if (descendants.has(child!)) groups.add(group!);
    // Never our own group (a descendant that did not detach would share it).
    for (const [self, , group] of rows) if (self === process.pid) groups.delete(group!);
  } catch {
    // Without ps, the agent's own group still goes.
  }
  groups.delete(process.pid);
  for (const group of groups) {
    try {
      process.kill(-group, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
