/**
 * The CDK app: `npx cdk synth` / `npx cdk deploy --all` (cdk.json runs this with tsx).
 * Context: `config` (default akanda-ci.yaml), `availabilityZones` (comma-separated node AZs),
 * `nodeImagePipeline` (true: bake the node image with EC2 Image Builder).
 * Works offline: no lookups, no credentials; the env comes from CDK_DEFAULT_ACCOUNT/REGION when set.
 */
import { App } from 'aws-cdk-lib';
import { ConfigError, type Config } from '../lambda/core/config';
import { addAkandaCi } from '../lib/akanda-ci';
import { DEFAULT_CONFIG_PATH, loadDeployConfig, parseAvailabilityZones } from '../lib/deploy-config';

const app = new App();
const configPath = String(app.node.tryGetContext('config') ?? DEFAULT_CONFIG_PATH);

let config: Config;
let availabilityZones: string[] | undefined;
try {
  config = loadDeployConfig(configPath);
  availabilityZones = parseAvailabilityZones(app.node.tryGetContext('availabilityZones'));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  // The operator needs the key path, not a stack trace.
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}

const account = process.env.CDK_DEFAULT_ACCOUNT;
const region = process.env.CDK_DEFAULT_REGION;

addAkandaCi(app, config, {
  env: account && region ? { account, region } : undefined,
  availabilityZones,
  nodeImagePipeline: ['true', true].includes(app.node.tryGetContext('nodeImagePipeline') as string | boolean),
});
