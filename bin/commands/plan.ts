/**
 * `akanda-ci plan --event FILE|- [--config FILE] [--files a,b,...] [--image-base-url URL]
 * [--current-patchset N] [--depends-on PROJECT:CHANGE:PATCHSET,...]`: prints what a Gerrit event
 * triggers, as JSON on stdout, exit 0 (also when nothing triggers). Invalid input (event, config,
 * options): one line on stderr, exit 2. `--depends-on` stands for the Depends-On changes the scheduler
 * would resolve through Gerrit REST, so `build` image mode (a dependency on an appliance change) shows.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../lambda/core/config';
import { EventError, MAX_EVENT_TEXT_LENGTH } from '../../lambda/core/events';
import { changeRef, isGerritNumber, nameProblem } from '../../lambda/core/names';
import { planEvent, PlanInputs, type ResolvedDependency } from '../../lambda/core/planner';
import { DEFAULT_CONFIG_PATH, loadConfigFile, UsageError } from './load-config';

const USAGE =
  'usage: akanda-ci plan --event FILE|- [--config FILE] [--files a,b,...] [--image-base-url URL] [--current-patchset N] [--depends-on PROJECT:CHANGE:PATCHSET,...]';

interface PlanOptions {
  eventPath: string;
  configPath: string;
  inputs: PlanInputs;
}

function parseOptions(argv: string[]): PlanOptions {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        event: { type: 'string' },
        config: { type: 'string' },
        files: { type: 'string' },
        'image-base-url': { type: 'string' },
        'current-patchset': { type: 'string' },
        'depends-on': { type: 'string' },
      },
      strict: true,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.event === undefined) throw new UsageError('--event FILE|- is required');
  const inputs: PlanInputs = {};
  if (values.files !== undefined) inputs.changedFiles = values.files.split(',').filter((path) => path !== '');
  const imageBaseUrl = values['image-base-url'];
  if (imageBaseUrl !== undefined) {
    if (!/^https?:\/\/[^\s]+$/.test(imageBaseUrl)) throw new UsageError('--image-base-url: expected an http(s) URL');
    inputs.imageBaseUrl = imageBaseUrl;
  }
  const current = values['current-patchset'];
  if (current !== undefined) {
    if (!/^[1-9]\d{0,9}$/.test(current)) throw new UsageError('--current-patchset: expected a patchset number');
    inputs.currentPatchset = Number(current);
  }
  const dependsOn = values['depends-on'];
  if (dependsOn !== undefined) inputs.dependencies = parseDependencies(dependsOn);
  return { eventPath: values.event, configPath: values.config ?? DEFAULT_CONFIG_PATH, inputs };
}

/**
 * `PROJECT:CHANGE:PATCHSET[,...]`. The planner reads only a dependency's project (an appliance
 * project means `build` image mode); the branch and revision the scheduler gets from Gerrit are
 * unknown here and left empty, since nothing is fetched from a plan.
 */
function parseDependencies(text: string): ResolvedDependency[] {
  return text.split(',').map((item) => {
    const match = /^(.+):(\d{1,10}):(\d{1,10})$/.exec(item);
    const where = `--depends-on ${JSON.stringify(item.slice(0, 120))}`;
    if (!match) throw new UsageError(`${where}: expected PROJECT:CHANGE:PATCHSET`);
    const [, project = '', changeText = '', patchsetText = ''] = match;
    const problem = nameProblem('project', project);
    if (problem !== undefined) throw new UsageError(`${where}: project ${problem}`);
    const change = Number(changeText);
    const patchset = Number(patchsetText);
    if (!isGerritNumber(change) || !isGerritNumber(patchset)) {
      throw new UsageError(`${where}: change and patchset must be numbers from 1`);
    }
    return { project, branch: '', change, patchset, ref: changeRef(change, patchset), revision: '' };
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_EVENT_TEXT_LENGTH) throw new EventError(`event is larger than ${MAX_EVENT_TEXT_LENGTH} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function readEventFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new EventError(`--event ${path}: cannot read the file (${code ?? 'read error'})`);
  }
}

function oneLine(message: string): string {
  return message.split('\n').join('; ');
}

export async function main(argv: string[]): Promise<number> {
  try {
    const options = parseOptions(argv);
    const config = loadConfigFile(options.configPath);
    const text = options.eventPath === '-' ? await readStdin() : readEventFile(options.eventPath);
    const plan = planEvent(config, text, options.inputs);
    process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`akanda-ci plan: ${oneLine(error.message)}\n${USAGE}\n`);
      return 2;
    }
    if (error instanceof EventError || error instanceof ConfigError) {
      process.stderr.write(`akanda-ci plan: ${oneLine(error.message)}\n`);
      return 2;
    }
    throw error;
  }
}
