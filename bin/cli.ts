/**
 * The `akanda-ci` command. Each subcommand lives in bin/commands/<name>.ts and is loaded only
 * when used, so `akanda-ci plan` does not pay for the local-mode servers.
 *
 * Exit codes: 0 success, 2 invalid input or usage (one line on stderr), 1 unexpected failure.
 */
type Command = { summary: string; load: () => Promise<{ main(argv: string[]): Promise<number> }> };

const commands: Record<string, Command> = {
  plan: { summary: 'print what a Gerrit event triggers, as JSON', load: () => import('./commands/plan') },
  'validate-config': { summary: 'check an akanda-ci.yaml', load: () => import('./commands/validate-config') },
  'config-schema': {
    summary: 'print the JSON Schema of akanda-ci.yaml',
    load: () => import('./commands/config-schema'),
  },
  local: { summary: 'run the whole CI on this machine', load: () => import('./commands/local') },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(16)} ${c.summary}`);
  return `usage: akanda-ci <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`akanda-ci: unknown command ${JSON.stringify(name)}\n${usage()}`);
    return 2;
  }
  return (await command.load()).main(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`akanda-ci: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
