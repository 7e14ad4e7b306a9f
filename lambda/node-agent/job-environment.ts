/**
 * The environment of the job's `run` command (docs/design.md "Job environment").
 *
 * Built from an allow list, not from the agent's own environment: in local mode the agent is a
 * child of `akanda-ci local`, whose environment holds the Gerrit password and the webhook token,
 * and the job runs the patch under test.
 */
import type { JobSpec } from './job-spec';

export interface JobPaths {
  workspace: string;
  logDir: string;
  artifactDir: string;
  scriptsDir: string;
}

const INHERITED = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'TERM',
  'SHELL',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
];

export function jobEnvironment(job: JobSpec, paths: JobPaths, base: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of INHERITED) {
    const value = base[name];
    if (value !== undefined) {
      env[name] = value;
    }
  }
  env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  // cloud-init starts the agent without HOME; devstack and tox need one.
  env.HOME ??= '/root';
  env.LANG ??= 'C.UTF-8';
  const projects = [...new Set(job.repositories.map((repository) => repository.project))];
  return {
    ...env,
    AKANDA_CI_PROJECT: job.project,
    AKANDA_CI_BRANCH: job.branch,
    AKANDA_CI_CHANGE: job.change === undefined ? '' : String(job.change),
    AKANDA_CI_PATCHSET: job.patchset === undefined ? '' : String(job.patchset),
    AKANDA_CI_REF: job.ref,
    AKANDA_CI_REVISION: job.revision,
    AKANDA_CI_PIPELINE: job.pipeline,
    AKANDA_CI_JOB: job.jobName,
    AKANDA_CI_IMAGE_MODE: job.imageMode,
    AKANDA_CI_IMAGE_URL: job.imageUrl ?? '',
    AKANDA_CI_WORKSPACE: paths.workspace,
    AKANDA_CI_LOG_DIR: paths.logDir,
    AKANDA_CI_ARTIFACT_DIR: paths.artifactDir,
    AKANDA_CI_GIT_URL: job.gitUrl,
    AKANDA_CI_PREPARED_PROJECTS: projects.join(' '),
    AKANDA_CI_SCRIPTS: paths.scriptsDir,
    AKANDA_CI_TIMEOUT: String(job.timeoutSeconds),
  };
}
