#!/usr/bin/env node
// The `akanda-ci` command: runs the TypeScript CLI through tsx so `npx akanda-ci ...` works right after `npm ci`.
// Both hooks: cli.ts loads its subcommands with dynamic import(), which goes through the ESM loader.
require('tsx/cjs');
import('tsx/esm/api').then(({ register }) => {
  register();
  require('./cli.ts');
});
