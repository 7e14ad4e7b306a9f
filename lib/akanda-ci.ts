import { Validations, type App, type Environment } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { Config } from '../lambda/core/config';
import { buildAgentBundle, type AgentBundle } from './agent-bundle';
import { ArtifactsStack } from './artifacts-stack';
import { ControlPlaneStack } from './control-plane-stack';
import { FleetStack } from './fleet-stack';

export interface AkandaCiOptions {
  /** @default environment-agnostic */
  readonly env?: Environment;
  /** @default built from lambda/node-agent and scripts/ */
  readonly agentBundle?: AgentBundle;
  /** Node subnet AZs (context `availabilityZones`). @default the region's first three, resolved at deploy */
  readonly availabilityZones?: readonly string[];
  /** Bake the node image with EC2 Image Builder (context `nodeImagePipeline`). @default false */
  readonly nodeImagePipeline?: boolean;
  /** @default true: cdk-nag AwsSolutions fails synth on any unacknowledged finding */
  readonly nag?: boolean;
}

export interface AkandaCiStacks {
  readonly artifacts: ArtifactsStack;
  readonly fleet: FleetStack;
  readonly controlPlane: ControlPlaneStack;
}

/** Every stack of one deployment, named `<stackPrefix>-Artifacts|Fleet|ControlPlane`. */
export function addAkandaCi(app: App, config: Config, options: AkandaCiOptions = {}): AkandaCiStacks {
  const prefix = config.deploy.stackPrefix;
  const env = options.env;
  const artifacts = new ArtifactsStack(app, `${prefix}-Artifacts`, {
    env,
    description: 'akanda-ci: images and logs buckets, CloudFront, build table (stateful, retained)',
    stackPrefix: prefix,
    logRetentionDays: config.deploy.logRetentionDays,
    latestImageName: config.appliance.latestImageName,
  });
  const fleet = new FleetStack(app, `${prefix}-Fleet`, {
    env,
    description: 'akanda-ci: node VPC, launch templates per node label, node agent',
    config,
    agentBundle: options.agentBundle ?? buildAgentBundle(),
    imagesBucketName: artifacts.bucketNames.images,
    distribution: artifacts.distribution,
    publicBaseUrl: artifacts.publicBaseUrl,
    availabilityZones: options.availabilityZones,
    nodeImagePipeline: options.nodeImagePipeline,
  });
  const controlPlane = new ControlPlaneStack(app, `${prefix}-ControlPlane`, {
    env,
    description: 'akanda-ci: Gerrit webhook, scheduler, node API, reporter, reaper (stateless)',
    config,
    table: artifacts.table,
    imagesBucketName: artifacts.bucketNames.images,
    logsBucketName: artifacts.bucketNames.logs,
    distribution: artifacts.distribution,
    publicBaseUrl: artifacts.publicBaseUrl,
    fleet,
  });
  // Bucket names carry no reference, so the order must be explicit.
  fleet.addStackDependency(artifacts);
  controlPlane.addStackDependency(artifacts);
  controlPlane.addStackDependency(fleet);
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { artifacts, fleet, controlPlane };
}
