/**
 * The local demo, N times: simulated workers + the embedded router, the long-prefix scenarios
 * in kv and in round-robin mode (caches emptied before each mode), and the TTFT of the requests
 * that can reuse a prefix. Prints a table per scenario and mode and how many runs reached the
 * ratio the labs promise.
 *
 * Run: npm run bench:demo [-- --runs 10 --workers 4 --min-ratio 3]
 */
import { LocalSession } from '../src/lab/session.js';
import { actionFor } from '../src/lab/actions/index.js';
import { compareModes } from '../src/lab/compare.js';
import { loadScenarios } from '../src/lab/scenarios.js';
import type { StepResult } from '../src/lab/results.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const runs = arg('runs', 10);
const workers = arg('workers', 4);
const minRatio = arg('min-ratio', 3);
const speedup = arg('speedup', 0.025);
const scenarios = Object.entries(loadScenarios())
  .filter(([, s]) => s.long)
  .map(([n]) => n);
const signal = new AbortController().signal;
const quiet = { out: () => {}, emit: (_r: StepResult) => {}, signal };

async function act(session: LocalSession, name: string, params: Record<string, unknown>): Promise<void> {
  const r = await actionFor(name)!.run(params, { session, ...quiet });
  if (!r.ok) throw new Error(`${name}: ${r.error}`);
}

const perScenario = new Map<string, { kv: number[]; rr: number[]; ratio: number[]; n: number }>();
for (let run = 0; run < runs; run++) {
  const session = new LocalSession();
  try {
    await act(session, 'sim.start', { workers, block_size: 16, speedup, decode_speedup: 1 / speedup });
    await act(session, 'router.start', { mode: 'kv' });
    await act(session, 'demo.run', { mode: 'kv', reset_cache: true, scenarios });
    await act(session, 'demo.run', { mode: 'round-robin', reset_cache: true, scenarios });
    for (const c of compareModes(session.demo, 'round-robin', scenarios)) {
      const e = perScenario.get(c.group) ?? { kv: [], rr: [], ratio: [], n: 0 };
      e.kv.push(c.kv!.ttft_avg_ms);
      e.rr.push(c.other!.ttft_avg_ms);
      e.ratio.push(c.ratio ?? 0);
      e.n = c.kv!.n;
      perScenario.set(c.group, e);
    }
  } finally {
    await session.stop();
  }
  process.stderr.write(`run ${run + 1}/${runs} done\n`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f = (x: number) => x.toFixed(1);
console.log(`${runs} local runs, ${workers} workers, TTFT of the requests that can reuse a prefix (ms, per-run averages)`);
console.log(
  [
    'scenario'.padEnd(20),
    'reqs/mode',
    'kv median (min-max)'.padStart(22),
    'round-robin median (min-max)'.padStart(30),
    'ratio median (min)'.padStart(20),
    `runs >= ${minRatio}x`.padStart(10),
  ].join('  '),
);
for (const [g, e] of perScenario) {
  console.log(
    [
      g.padEnd(20),
      String(e.n).padStart(9),
      `${f(median(e.kv))} (${f(Math.min(...e.kv))}-${f(Math.max(...e.kv))})`.padStart(22),
      `${f(median(e.rr))} (${f(Math.min(...e.rr))}-${f(Math.max(...e.rr))})`.padStart(30),
      `${median(e.ratio).toFixed(2)}x (${Math.min(...e.ratio).toFixed(2)}x)`.padStart(20),
      `${e.ratio.filter((r) => r >= minRatio).length}/${runs}`.padStart(10),
    ].join('  '),
  );
}
