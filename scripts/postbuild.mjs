// After tsc: make the bin entry executable (tsc keeps the shebang but not the mode).
import { chmodSync } from 'node:fs';
chmodSync(new URL('../dist/src/cli/main.js', import.meta.url), 0o755);
// The build stamp `npm start` compares sources against (scripts/fresh.mjs): tsc leaves it alone when nothing changed.
import { utimesSync, existsSync } from 'node:fs';
const stamp = new URL('../dist/.tsbuildinfo', import.meta.url);
if (existsSync(stamp)) utimesSync(stamp, new Date(), new Date());
