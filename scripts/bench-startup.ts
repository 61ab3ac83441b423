/**
 * Startup time of the built CLI: runs each command line N times as a fresh process and prints
 * the median, min and max wall time (process spawn to exit), with the load average.
 *
 * Run: npm run bench:startup [-- --runs 15]
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const runs = (() => {
  const i = process.argv.indexOf('--runs');
  return i > 0 ? Number(process.argv[i + 1]) : 11;
})();
const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const cases: string[][] = [
  ['--version'],
  ['--help'],
  ['start', '--help'],
  ['labs', '--json'],
  ['bench', '--help'],
  ['start', '--lab', 'kv-routing', '--target', 'cluster', '--dry-run'],
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `dynamo-lab startup, ${runs} runs each, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
console.log(`${'command'.padEnd(62)} ${'median ms'.padStart(10)} ${'min'.padStart(7)} ${'max'.padStart(7)}`);
for (const args of cases) {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, [main, ...args], {
      stdio: 'ignore',
      env: { ...process.env, DYNAMO_LAB_STATE_DIR: process.env.DYNAMO_LAB_STATE_DIR ?? '/tmp/dynamo-lab-bench-startup' },
    });
    times.push(performance.now() - t);
    if (r.status !== 0) throw new Error(`dynamo-lab ${args.join(' ')} exited with ${r.status}`);
  }
  console.log(
    `${`dynamo-lab ${args.join(' ')}`.padEnd(62)} ${median(times).toFixed(0).padStart(10)} ${Math.min(...times)
      .toFixed(0)
      .padStart(7)} ${Math.max(...times)
      .toFixed(0)
      .padStart(7)}`,
  );
}
