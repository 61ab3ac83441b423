#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with Node's built-in test runner.
// Usage: node scripts/run-tests.mjs [area ...]   e.g. `unit router` limits to test/unit, test/router.
// Node 20 does not expand globs for --test, so the files are listed here.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
if (!existsSync(root)) {
  console.error('No compiled tests in dist/test: run `npm run build` first (or `npm test`, which builds).');
  process.exit(1);
}
const areas = process.argv.slice(2);
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
};
for (const area of areas.length ? areas : readdirSync(root).sort()) {
  const dir = join(root, area);
  if (existsSync(dir) && statSync(dir).isDirectory()) walk(dir);
}
if (files.length === 0) {
  console.error(`No test files found under ${root}${areas.length ? ` for ${areas.join(', ')}` : ''}.`);
  process.exit(1);
}
// Files run one at a time: integration tests start servers and a TUI, and the machine has 2 cores.
// A file that has not finished in 20 minutes fails (a test that fails and leaves a server open
// would otherwise hold the run until CI kills it); the longest file takes a few minutes.
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=1200000', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(res.status ?? 1);
