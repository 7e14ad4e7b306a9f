/**
 * The node agent's command line.
 *
 * EC2 mode (default; the user data runs it as root with env AKANDA_CI_AGENT_MODE=ec2 and no
 * arguments; `--ec2` works too): the build id, claim token and node API URL come from the instance
 * tags through IMDSv2, the spot interruption notice is watched, and the instance powers off at the
 * end whatever happened (its shutdown behaviour is terminate), so a node never lingers.
 *
 * Local mode (`akanda-ci local` spawns it): `--api-url URL --build-id ID --claim-token TOKEN
 * --work-dir DIR [--scripts-dir DIR]`; the token may come from env `AKANDA_CI_CLAIM_TOKEN`
 * instead, which keeps it out of the process list. Exit status 0 when the result was reported
 * (or needs no report: timed out, cancelled), 1 otherwise.
 */
import { execFile } from 'node:child_process';
import { parseArgs } from 'node:util';
import { defaultLog, runNodeAgent, type AgentOutcome, type NodeAgentOptions } from './agent';
import { describeError, sleep } from './http';
import { DEFAULT_IMDS_URL, ImdsClient } from './imds';

export { runNodeAgent } from './agent';
export type { AgentOutcome, AgentResult, NodeAgentOptions } from './agent';

const USAGE = `usage:
  node-agent [--ec2] [--imds-url URL] [--work-dir DIR] [--scripts-dir DIR] [--no-poweroff]
  node-agent --api-url URL --build-id ID --claim-token TOKEN --work-dir DIR [--scripts-dir DIR]`;

/** Instance tags the launcher sets (docs/design.md "Nodes"). */
export const TAG_BUILD = 'akanda-ci:build';
export const TAG_CLAIM = 'akanda-ci:claim';
export const TAG_API = 'akanda-ci:api';

const DEFAULT_EC2_WORK_DIR = '/var/lib/akanda-ci';

/** Reads the build's tags; IMDS can lag at boot, so missing tags are retried for a while. */
export async function readInstanceTags(
  imds: ImdsClient,
  budgetMs: number,
): Promise<{ buildId: string; claimToken: string; apiUrl: string }> {
  const started = Date.now();
  for (;;) {
    try {
      return {
        buildId: await imds.tag(TAG_BUILD),
        claimToken: await imds.tag(TAG_CLAIM),
        apiUrl: await imds.tag(TAG_API),
      };
    } catch (error) {
      if (Date.now() - started >= budgetMs) {
        throw error;
      }
      await sleep(2000);
    }
  }
}

function powerOff(): Promise<void> {
  defaultLog('powering off');
  return new Promise((resolve) => {
    execFile('shutdown', ['-h', 'now'], (error) => {
      if (error) {
        defaultLog(`shutdown failed (${error.message}); trying poweroff`);
        execFile('poweroff', [], () => resolve());
        return;
      }
      resolve();
    });
  });
}

/** SIGTERM/SIGINT stop the job's process group (it runs detached and would outlive the agent), then the agent ends. */
function stopOnSignals(): AbortSignal {
  const controller = new AbortController();
  for (const name of ['SIGTERM', 'SIGINT'] as const) {
    process.once(name, () => {
      defaultLog(`${name} received`);
      controller.abort();
    });
  }
  return controller.signal;
}

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        ec2: { type: 'boolean' },
        'api-url': { type: 'string' },
        'build-id': { type: 'string' },
        'claim-token': { type: 'string' },
        'work-dir': { type: 'string' },
        'scripts-dir': { type: 'string' },
        'imds-url': { type: 'string' },
        'no-poweroff': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    process.stderr.write(`node-agent: ${describeError(error)}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }

  // The user data sets AKANDA_CI_AGENT_MODE=ec2; without it, local-mode arguments select local mode.
  const localMode =
    !values.ec2 &&
    process.env.AKANDA_CI_AGENT_MODE !== 'ec2' &&
    (values['api-url'] !== undefined || values['build-id'] !== undefined);
  if (localMode) {
    const claimToken = values['claim-token'] ?? process.env.AKANDA_CI_CLAIM_TOKEN;
    const missing = [
      values['api-url'] === undefined && '--api-url',
      values['build-id'] === undefined && '--build-id',
      claimToken === undefined && '--claim-token',
      values['work-dir'] === undefined && '--work-dir',
    ].filter(Boolean);
    if (missing.length > 0 || claimToken === undefined) {
      process.stderr.write(`node-agent: local mode needs ${missing.join(', ')}\n${USAGE}\n`);
      return 2;
    }
    const env = { ...process.env };
    delete env.AKANDA_CI_CLAIM_TOKEN;
    const outcome = await runNodeAgent({
      apiUrl: values['api-url'] as string,
      buildId: values['build-id'] as string,
      claimToken,
      workDir: values['work-dir'] as string,
      scriptsDir: values['scripts-dir'],
      imdsUrl: values['imds-url'],
      env,
      signal: stopOnSignals(),
    });
    return exitStatus(outcome);
  }

  const imdsUrl = values['imds-url'] ?? DEFAULT_IMDS_URL;
  let status = 1;
  try {
    const tags = await readInstanceTags(new ImdsClient(imdsUrl), 60_000);
    const options: NodeAgentOptions = {
      ...tags,
      workDir: values['work-dir'] ?? DEFAULT_EC2_WORK_DIR,
      scriptsDir: values['scripts-dir'],
      imdsUrl,
      signal: stopOnSignals(),
    };
    status = exitStatus(await runNodeAgent(options));
  } catch (error) {
    defaultLog(`cannot run the build: ${describeError(error)}`);
  }
  if (!values['no-poweroff']) {
    await powerOff();
  }
  return status;
}

function exitStatus(outcome: AgentOutcome): number {
  return outcome.reported || outcome.result === 'TIMED_OUT' || outcome.result === 'CANCELLED' ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status;
    },
    (error: unknown) => {
      defaultLog(`unexpected failure: ${describeError(error)}`);
      process.exitCode = 1;
    },
  );
}
