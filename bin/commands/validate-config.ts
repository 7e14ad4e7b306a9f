/**
 * `akanda-ci validate-config [--config FILE]`: checks a config file and says what it covers.
 * Exit 0 when valid; 2 with one line per problem on stderr otherwise. "Valid" means `cdk synth`
 * accepts it too: the schema and the same deploy rules (lambda/core/deploy-rules.ts).
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../../lambda/core/config';
import { deployProblems } from '../../lambda/core/deploy-rules';
import { DEFAULT_CONFIG_PATH, loadConfigFile } from './load-config';

export async function main(argv: string[]): Promise<number> {
  let configPath: string;
  try {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } }, strict: true });
    configPath = values.config ?? DEFAULT_CONFIG_PATH;
  } catch (error) {
    process.stderr.write(`akanda-ci validate-config: ${(error as Error).message}\n`);
    process.stderr.write('usage: akanda-ci validate-config [--config FILE]\n');
    return 2;
  }
  try {
    const config = loadConfigFile(configPath);
    const problems = deployProblems(config, configPath);
    if (problems.length > 0) {
      process.stderr.write(`${problems.join('\n')}\n`);
      return 2;
    }
    const jobs = config.jobs.length;
    const projects = config.projects.length;
    process.stdout.write(
      `${configPath}: valid (${projects} project${projects === 1 ? '' : 's'}, ${jobs} job${jobs === 1 ? '' : 's'})\n`,
    );
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
}
