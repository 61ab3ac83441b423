/**
 * Benchmark of the simulated workers, in virtual time (no sleeping). Prints one JSON document:
 *  - ttft: a lone request's TTFT for 1k / 8k / 32k-token prompts vs Dynamo mocker's polynomial;
 *  - throughput: how many simulated requests per wall-clock second the engine sustains
 *    (performance.now()), for 1 engine and for 8 engines sharing one virtual clock.
 *
 * Run: node --import tsx scripts/bench-sim.ts [--requests N]   (or npm run bench:sim after a build)
 */
import { SimEngine, VirtualClock, type EngineResult } from '../src/sim/index.js';
import { Rng } from '../src/sim/rng.js';

// Dynamo mocker's polynomial (dynamo-facts §5), written out independently of src/sim/timing.ts.
const polyPrefill = (t: number) => (t === 0 ? 0 : 4.209989e-7 * t * t + 1.518344e-2 * t + 16.50142);
const polyDecode = (u: number) => Math.max(1.0, -25.74 * Math.min(1, u) ** 2 + 54.01 * Math.min(1, u) + 5.74);

function argInt(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function ttftCase(isl: number) {
  const blockSize = 16;
  const numGpuBlocks = 16384;
  const budget = 8192;
  const clock = new VirtualClock();
  const engine = new SimEngine({ blockSize, numGpuBlocks, maxNumBatchedTokens: budget }, clock);
  let ttft = NaN;
  const tokens = Array.from({ length: isl }, (_, i) => 10_000 + i);
  engine.submit({ requestId: 'a', tokens, maxTokens: 1, onFirstToken: (f) => (ttft = f.ttftMs) });
  clock.runUntilIdle();
  let poly = 0;
  for (let left = isl; left > 0; left -= budget) poly += polyPrefill(Math.min(left, budget));
  poly += polyDecode(Math.ceil(isl / blockSize) / numGpuBlocks);
  return {
    isl,
    passes: engine.stats().passes,
    ttft_ms: round(ttft),
    polynomial_ms: round(poly),
    rel_error: Number((Math.abs(ttft - poly) / poly).toExponential(2)),
  };
}

function round(x: number, d = 3): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/**
 * A shared-prefix workload: `groups` system prompts of 512 tokens, each request adds a 256-token
 * unique suffix and asks for 64 output tokens. Poisson arrivals at `ratePerEngine` req/s per engine.
 */
function throughputCase(opts: { engines: number; requests: number; ratePerEngine: number; blockSize: number }) {
  const clock = new VirtualClock();
  const engines = Array.from({ length: opts.engines }, (_, i) => new SimEngine({ id: `worker-${i}`, blockSize: opts.blockSize }, clock));
  let kvEvents = 0;
  for (const e of engines) e.onKvEvent(() => kvEvents++);
  const rng = new Rng(12345);
  const groups = 32;
  const prefixes = Array.from({ length: groups }, (_, g) => Array.from({ length: 512 }, (_, i) => 20_000 + g * 1000 + i));
  const results: EngineResult[] = [];
  const rate = opts.ratePerEngine * opts.engines;
  let t = 0;
  let uniq = 0;
  for (let i = 0; i < opts.requests; i++) {
    t += (-Math.log(1 - rng.next()) / rate) * 1000;
    const g = rng.int(0, groups);
    const tokens = prefixes[g]!.concat(Array.from({ length: 256 }, () => 100_000 + (uniq++ % 1_000_000)));
    // Stick each group to one engine (what a KV-aware router would mostly do).
    const engine = engines[g % opts.engines]!;
    const id = `r${i}`;
    clock.schedule(t, () => engine.submit({ requestId: id, tokens, maxTokens: 64, onDone: (r) => results.push(r) }));
  }
  const w0 = performance.now();
  const end = clock.runUntilIdle();
  const wallMs = performance.now() - w0;
  const ttfts = results.map((r) => r.ttftMs!).sort((a, b) => a - b);
  const stats = engines.map((e) => e.stats());
  const sum = (k: 'prefixHitTokens' | 'prefixQueryTokens' | 'passes' | 'generationTokens' | 'preemptions') =>
    stats.reduce((s, x) => s + x[k], 0);
  return {
    engines: opts.engines,
    requests: results.length,
    block_size: opts.blockSize,
    arrival_rate_per_s: rate,
    wall_ms: round(wallMs, 1),
    simulated_requests_per_wall_s: Math.round(results.length / (wallMs / 1000)),
    simulated_tokens_per_wall_s: Math.round(sum('generationTokens') / (wallMs / 1000)),
    scheduler_passes: sum('passes'),
    passes_per_wall_s: Math.round(sum('passes') / (wallMs / 1000)),
    kv_events: kvEvents,
    virtual_duration_s: round(end / 1000, 2),
    virtual_requests_per_s: round(results.length / (end / 1000), 1),
    ttft_ms_p50: round(ttfts[Math.floor(ttfts.length * 0.5)]!, 1),
    ttft_ms_p99: round(ttfts[Math.floor(ttfts.length * 0.99)]!, 1),
    prefix_hit_rate: round(sum('prefixHitTokens') / sum('prefixQueryTokens'), 4),
    preemptions: sum('preemptions'),
  };
}

const requests = argInt('requests', 10_000);
// Warm up the JIT a little so the figures are steady.
throughputCase({ engines: 1, requests: 500, ratePerEngine: 20, blockSize: 16 });
const out = {
  model: 'Dynamo mocker polynomial, vLLM-style scheduler (src/sim)',
  node: process.version,
  ttft: [1000, 8000, 32_000].map(ttftCase),
  throughput: [
    throughputCase({ engines: 1, requests, ratePerEngine: 20, blockSize: 16 }),
    throughputCase({ engines: 8, requests, ratePerEngine: 20, blockSize: 16 }),
    throughputCase({ engines: 8, requests, ratePerEngine: 20, blockSize: 64 }),
  ],
};
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
