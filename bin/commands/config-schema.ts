/**
 * `akanda-ci config-schema`: prints the JSON Schema of akanda-ci.yaml, generated from the same zod
 * definition that validates it. The committed akanda-ci.schema.json is this output (a test checks).
 */
import { parseArgs } from 'node:util';
import { configJsonSchema } from '../../lambda/core/config';

/** The schema as committed: two-space JSON with a final newline. */
export function configSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

export async function main(argv: string[]): Promise<number> {
  try {
    parseArgs({ args: argv, options: {}, strict: true });
  } catch (error) {
    process.stderr.write(`akanda-ci config-schema: ${(error as Error).message}\nusage: akanda-ci config-schema\n`);
    return 2;
  }
  process.stdout.write(configSchemaText());
  return 0;
}
