#!/usr/bin/env node
// The `akanda-ci` command: runs the TypeScript CLI through tsx so `npx akanda-ci` works right after `npm ci`.
require('tsx/cjs');
require('./cli.ts');
