/**
 * Benchmark of the router as a proxy: the same load sent directly to one simulated worker
 * (speedup 0 = no simulated delays, so the worker is as fast as it can be) and through
 * `dynamo-lab router` to that worker. Worker and router run as separate processes (the CLI),
 * the load generator here. Prompts are token ids to /v1/completions (no tokenizer on either
 * side), streaming, 8k tokens each by default.
 *
 * Prints JSON with --json: per phase the latency (TTFT and full request) percentiles and
 * throughput, and the router's added latency (p50 / p99 differences) and throughput ratio, at
 * the load's concurrency and at concurrency 1 (the bare per-request cost).
 *
 * Run: npm run bench:proxy -- [--json] [--concurrency 256] [--requests 2048] [--prompt-tokens 8192]
 *                             [--max-tokens 16] [--events zmq|none] [--distinct-prompts 64]
 *                             [--profile-router <dir>]   (node --cpu-prof of the router process)
 *   or: node --import tsx scripts/bench-proxy.ts ...
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

const argv = process.argv.slice(2);
function arg(name: string, def: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
}
const JSON_OUT = argv.includes('--json');
const CONCURRENCY = Number(arg('concurrency', '256'));
const REQUESTS = Number(arg('requests', '2048'));
const PROMPT_TOKENS = Number(arg('prompt-tokens', '8192'));
const MAX_TOKENS = Number(arg('max-tokens', '16'));
const EVENTS = arg('events', 'zmq');
const DISTINCT = Number(arg('distinct-prompts', '64'));
const SERIAL_REQUESTS = Number(arg('serial-requests', '200'));

const fromTs = import.meta.url.endsWith('.ts');
const CLI = fileURLToPath(new URL(fromTs ? '../src/cli/main.ts' : '../src/cli/main.js', import.meta.url));
const NODE_ARGS = fromTs ? ['--import', 'tsx', CLI] : [CLI];

const say = (s: string) => process.stderr.write(s + '\n');

interface Child {
  proc: ChildProcess;
  firstLine: Promise<string>;
}

const PROFILE_DIR = arg('profile-router', '');

function startCli(args: string[], nodeFlags: string[] = []): Child {
  const proc = spawn(process.execPath, [...nodeFlags, ...NODE_ARGS, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true', FORCE_COLOR: '0' } });
  let out = '';
  let err = '';
  const firstLine = new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    proc.stderr!.on('data', (d) => (err += d));
    proc.once('exit', (code) => reject(new Error(`dynamo-lab ${args.join(' ')} exited with ${code}:\n${err}`)));
  });
  return { proc, firstLine };
}

async function stop(c: Child): Promise<void> {
  if (c.proc.exitCode !== null) return;
  const exited = new Promise((r) => c.proc.once('exit', r));
  c.proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function bodies(): Buffer[] {
  // Distinct prompts (cycled): each starts with its own first block so the worker's prefix
  // cache and the router's index both see realistic, partly repeated traffic.
  const out: Buffer[] = [];
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % 150_000;
  for (let p = 0; p < DISTINCT; p++) {
    const prompt = Array.from({ length: PROMPT_TOKENS }, () => rnd());
    out.push(Buffer.from(JSON.stringify({ model: 'Qwen/Qwen2.5-1.5B-Instruct', prompt, max_tokens: MAX_TOKENS, stream: true, ignore_eos: true })));
  }
  return out;
}

interface PhaseResult {
  requests: number;
  errors: number;
  concurrency: number;
  wall_s: number;
  requests_per_s: number;
  ttft_ms: { p50: number; p90: number; p99: number };
  latency_ms: { p50: number; p90: number; p99: number };
}

async function load(baseUrl: string, payloads: Buffer[], total: number, concurrency: number): Promise<PhaseResult> {
  const agent = new Agent({ connections: concurrency + 8, pipelining: 0, keepAliveTimeout: 30_000 });
  const ttft: number[] = [];
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const s = performance.now();
      try {
        const r = await request(`${baseUrl}/v1/completions`, { method: 'POST', body: payloads[i % payloads.length]!, headers: { 'content-type': 'application/json' }, dispatcher: agent, headersTimeout: 120_000, bodyTimeout: 120_000 });
        let first = 0;
        for await (const _ of r.body) if (first === 0) first = performance.now();
        const e = performance.now();
        if (r.statusCode !== 200) errors++;
        else {
          ttft.push(first - s);
          lat.push(e - s);
        }
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wall = (performance.now() - t0) / 1000;
  await agent.close();
  ttft.sort((a, b) => a - b);
  lat.sort((a, b) => a - b);
  const q = (a: number[]) => ({ p50: r3(pct(a, 50)), p90: r3(pct(a, 90)), p99: r3(pct(a, 99)) });
  return { requests: total, errors, concurrency, wall_s: r3(wall), requests_per_s: r3((total - errors) / wall), ttft_ms: q(ttft), latency_ms: q(lat) };
}

/** p50 of a Prometheus histogram from its cumulative buckets (upper bound of the bucket). */
function histP50(metrics: string, name: string): number | undefined {
  const rows = [...metrics.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => ({ le: m[1] === '+Inf' ? Infinity : Number(m[1]), n: Number(m[2]) }));
  const count = Number(new RegExp(`^${name}_count (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
  if (!count) return undefined;
  return rows.find((r) => r.n >= count / 2)?.le;
}
function histMean(metrics: string, name: string): number | undefined {
  const sum = Number(new RegExp(`^${name}_sum (\\S+)`, 'm').exec(metrics)?.[1]);
  const count = Number(new RegExp(`^${name}_count (\\d+)`, 'm').exec(metrics)?.[1]);
  return count ? r3(sum / count) : undefined;
}

async function main(): Promise<void> {
  const payloads = bodies();
  const blocks = Math.ceil(((PROMPT_TOKENS + MAX_TOKENS) / 16) * (CONCURRENCY + DISTINCT)) + 1024;
  const sim = startCli(['sim', '--workers', '1', '--port', '0', '--speedup', '0', '--gpu-blocks', String(blocks), '--max-num-seqs', String(Math.max(256, CONCURRENCY)), '--max-num-batched-tokens', String(Math.max(8192, PROMPT_TOKENS)), '--quiet', '--json', ...(EVENTS === 'zmq' ? ['--zmq-port', '0', '--replay-port', '0'] : [])]);
  let router: Child | undefined;
  try {
    const [w] = JSON.parse(await sim.firstLine) as Array<{ id: string; url: string; zmq: string | null; zmq_replay: string | null }>;
    const spec = EVENTS === 'zmq' ? `id=${w!.id},url=${w!.url},zmq=${w!.zmq},replay=${w!.zmq_replay}` : w!.url;
    router = startCli(['router', '--worker', spec, '--events', EVENTS === 'zmq' ? 'zmq' : 'none', '--port', '0', '--health-interval', '0', '--json'], PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : []);
    const { url: routerUrl } = JSON.parse(await router.firstLine) as { url: string };
    say(`worker ${w!.url}, router ${routerUrl} (events ${EVENTS}); ${REQUESTS} requests x ${PROMPT_TOKENS} prompt tokens, ${MAX_TOKENS} output tokens, ${CONCURRENCY} concurrent streams`);

    // Warm both paths (connections, JIT, the worker's prefix cache for the cycled prompts).
    await load(w!.url, payloads, Math.min(REQUESTS, 2 * DISTINCT), Math.min(CONCURRENCY, 64));
    await load(routerUrl, payloads, Math.min(REQUESTS, 2 * DISTINCT), Math.min(CONCURRENCY, 64));

    // Alternate the order so neither path always runs on a warmer machine.
    say('serial (1 stream): direct, router ...');
    const serialDirect = await load(w!.url, payloads, SERIAL_REQUESTS, 1);
    const serialRouter = await load(routerUrl, payloads, SERIAL_REQUESTS, 1);
    say(`${CONCURRENCY} streams: router, direct ...`);
    const loadRouter = await load(routerUrl, payloads, REQUESTS, CONCURRENCY);
    const loadDirect = await load(w!.url, payloads, REQUESTS, CONCURRENCY);
    const metrics = await (await fetch(`${routerUrl}/metrics`)).text();

    const added = (r: PhaseResult, d: PhaseResult) => ({
      ttft_p50_ms: r3(r.ttft_ms.p50 - d.ttft_ms.p50),
      ttft_p99_ms: r3(r.ttft_ms.p99 - d.ttft_ms.p99),
      latency_p50_ms: r3(r.latency_ms.p50 - d.latency_ms.p50),
      latency_p99_ms: r3(r.latency_ms.p99 - d.latency_ms.p99),
    });
    const doc = {
      workload: { prompt_tokens: PROMPT_TOKENS, prompt_format: 'token ids (/v1/completions)', max_tokens: MAX_TOKENS, stream: true, distinct_prompts: DISTINCT, requests: REQUESTS, concurrency: CONCURRENCY, events: EVENTS, worker_speedup: 0 },
      machine: { cpus: (await import('node:os')).cpus().length, node: process.versions.node },
      direct: loadDirect,
      router: loadRouter,
      added_latency: added(loadRouter, loadDirect),
      throughput_ratio: r3(loadRouter.requests_per_s / loadDirect.requests_per_s),
      serial: { direct: serialDirect, router: serialRouter, added_latency: added(serialRouter, serialDirect) },
      router_overhead_ms: {
        note: 'the router process\'s own histograms (receipt -> worker chosen), all requests incl. warm-up',
        total_mean: histMean(metrics, 'dynamo_router_overhead_total_ms'),
        total_p50_bucket: histP50(metrics, 'dynamo_router_overhead_total_ms'),
        read_parse_tokenize_mean: histMean(metrics, 'dynamo_lab_router_overhead_tokenize_ms'),
        block_hashing_mean: histMean(metrics, 'dynamo_router_overhead_block_hashing_ms'),
        indexer_find_matches_mean: histMean(metrics, 'dynamo_router_overhead_indexer_find_matches_ms'),
        seq_hashing_mean: histMean(metrics, 'dynamo_router_overhead_seq_hashing_ms'),
        scheduling_mean: histMean(metrics, 'dynamo_router_overhead_scheduling_ms'),
      },
      targets: { added_latency_p50_ms_max: 1, throughput_ratio_min: 0.9 },
    };
    const pass = { added_latency_p50: doc.added_latency.latency_p50_ms <= 1, throughput: doc.throughput_ratio >= 0.9 };
    if (JSON_OUT) process.stdout.write(JSON.stringify({ ...doc, meets_targets: pass }, null, 2) + '\n');
    else {
      say(`direct: ${loadDirect.requests_per_s} req/s, latency p50 ${loadDirect.latency_ms.p50} ms p99 ${loadDirect.latency_ms.p99} ms`);
      say(`router: ${loadRouter.requests_per_s} req/s, latency p50 ${loadRouter.latency_ms.p50} ms p99 ${loadRouter.latency_ms.p99} ms`);
      say(`added latency p50 ${doc.added_latency.latency_p50_ms} ms, p99 ${doc.added_latency.latency_p99_ms} ms; throughput ratio ${doc.throughput_ratio}`);
      say(`serial added latency p50 ${doc.serial.added_latency.latency_p50_ms} ms; router overhead mean ${doc.router_overhead_ms.total_mean} ms`);
    }
  } finally {
    if (router) await stop(router);
    await stop(sim);
  }
}

main().catch((err) => {
  process.stderr.write(`bench-proxy failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
