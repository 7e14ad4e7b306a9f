// Placeholder so the stacks can bundle the node agent while it is written.
process.stderr.write('node-agent: not implemented yet\n');
process.exitCode = 1;
