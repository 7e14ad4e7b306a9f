/**
 * The claim response (`POST /node/claim` -> `{job, upload, resultToken}`, docs/design.md),
 * validated before anything in it is used: it names directories, git refs and the upload target.
 */
import { z } from 'zod';
import {
  BUILD_ID_PATTERN,
  isSafeBranchName,
  isSafeGitRef,
  isSafeProjectName,
  JOB_NAME_PATTERN,
  REVISION_PATTERN,
} from './names';

const project = z
  .string()
  .refine(isSafeProjectName, { message: 'expected a safe project name like stackforge/akanda-rug' });
const gitRef = z.string().refine(isSafeGitRef, { message: 'expected refs/changes/NN/N/P or refs/heads/<branch>' });
const revision = z.string().regex(REVISION_PATTERN, { message: 'expected a 40-hex revision' });
const httpUrl = z.string().regex(/^https?:\/\/[^\s]+$/, { message: 'expected an http(s) URL' });
/** Absent values may arrive as null from a JSON encoder; both mean "not set". */
const optional = <T extends z.ZodType>(schema: T) => schema.nullish().transform((value) => value ?? undefined);

export const repositorySchema = z.object({
  project,
  ref: gitRef,
  revision: optional(revision),
});

export const jobSchema = z.object({
  buildId: z.string().regex(BUILD_ID_PATTERN, { message: 'expected a build id' }),
  buildsetId: z.string().min(1),
  pipeline: z.enum(['check', 'gate', 'post']),
  project,
  branch: z.string().refine(isSafeBranchName, { message: 'expected a safe branch name' }),
  change: optional(z.number().int().positive()),
  patchset: optional(z.number().int().positive()),
  ref: gitRef,
  revision,
  jobName: z.string().regex(JOB_NAME_PATTERN, { message: 'expected a job name' }),
  run: z
    .string()
    .min(1)
    .refine((run) => !run.includes('\0'), { message: 'must not contain NUL' }),
  timeoutSeconds: z.number().int().positive(),
  imageMode: z.enum(['build', 'prebuilt', 'none']),
  imageUrl: optional(httpUrl),
  gitUrl: z.string().regex(/^(https?|file|ssh|git):\/\/[^\s]+$/, { message: 'expected a git URL' }),
  repositories: z.array(repositorySchema).min(1, { message: 'expected at least the project under test' }),
});

export const uploadSchema = z.object({
  url: httpUrl,
  fields: z.record(z.string(), z.string()),
  keyPrefix: z.string().min(1),
  publicUrl: z.string().min(1),
});

export const claimResponseSchema = z.object({
  job: jobSchema,
  upload: uploadSchema,
  resultToken: z.string().min(1),
});

export type JobSpec = z.output<typeof jobSchema>;
export type RepositorySpec = z.output<typeof repositorySchema>;
export type PresignedUpload = z.output<typeof uploadSchema>;
export type ClaimedJob = z.output<typeof claimResponseSchema>;

/**
 * A claim answered with a job the agent will not run. When the answer still holds a result
 * token, the agent reports ERROR with it, so the build ends now rather than at its deadline.
 */
export class InvalidJobError extends Error {
  constructor(
    message: string,
    readonly resultToken: string | undefined,
  ) {
    super(message);
    this.name = 'InvalidJobError';
  }
}

/** Parses a claim response; the error lists each bad field by path, never the values (tokens). */
export function parseClaimResponse(body: unknown): ClaimedJob {
  const parsed = claimResponseSchema.safeParse(body);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`);
    const token = (body as { resultToken?: unknown } | null | undefined)?.resultToken;
    throw new InvalidJobError(
      `invalid claim response: ${problems.join('; ')}`,
      typeof token === 'string' && token !== '' ? token : undefined,
    );
  }
  return parsed.data;
}
