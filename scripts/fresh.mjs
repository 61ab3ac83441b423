#!/usr/bin/env node
/**
 * `npm start` without a needless rebuild: build only when a source file (src, test, scripts,
 * labs are read at run time and need no build) or a config file is newer than the last build
 * (dist/.tsbuildinfo, written by every `tsc` run). Prints why it rebuilds.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const stamp = join(root, 'dist', '.tsbuildinfo');
const main = join(root, 'dist', 'src', 'cli', 'main.js');

function newest(dir, re) {
  let best = { mtime: 0, file: '' };
  if (!existsSync(dir)) return best;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const b = newest(p, re);
      if (b.mtime > best.mtime) best = b;
    } else if (re.test(e.name)) {
      const m = statSync(p).mtimeMs;
      if (m > best.mtime) best = { mtime: m, file: p };
    }
  }
  return best;
}

let reason = '';
if (!existsSync(stamp) || !existsSync(main)) reason = 'no build yet';
else {
  const built = statSync(stamp).mtimeMs;
  const src = [
    newest(join(root, 'src'), /\.(ts|tsx)$/),
    newest(join(root, 'test'), /\.(ts|tsx)$/),
    newest(join(root, 'scripts'), /\.(ts|mjs)$/),
  ];
  for (const f of ['tsconfig.json', 'package.json', 'package-lock.json'])
    if (existsSync(join(root, f))) src.push({ mtime: statSync(join(root, f)).mtimeMs, file: join(root, f) });
  const n = src.reduce((a, b) => (b.mtime > a.mtime ? b : a));
  if (n.mtime > built) reason = `${n.file.slice(root.length)} changed since the last build`;
}
if (reason) {
  process.stderr.write(`building (${reason})…\n`);
  const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
