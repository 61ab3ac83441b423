#!/usr/bin/env node
/**
 * dynamo-lab entry point. Kept tiny on purpose: check the Node version and colour switches
 * before anything imports chalk or ink (both decide colour support at import time), then
 * load the app.
 */
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  process.stderr.write(
    `dynamo-lab needs Node.js 20.19 or newer; this is ${process.versions.node}.\nInstall a current Node.js (https://nodejs.org) and run the command again.\n`,
  );
  process.exit(1);
}

const argv = process.argv.slice(2);
// chalk ignores NO_COLOR, and --json output must never carry colour codes.
if (argv.includes('--json') || argv.includes('--no-color') || (process.env.NO_COLOR ?? '') !== '' || process.env.TERM === 'dumb') {
  process.env.FORCE_COLOR = '0';
}

const { run } = await import('./app.js');
process.exitCode = await run(argv);
