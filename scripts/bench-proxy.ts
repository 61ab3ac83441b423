/**
 * Benchmark of the router as a proxy: the same load sent directly to one simulated worker
 * (speedup 0 = no simulated delays, so the worker is as fast as it can be) and through
 * `dynamo-lab router` to that worker. Worker and router run as separate processes (the CLI),
 * the load generator here. Streaming, ~8k prompt tokens each by default, in two formats:
 *   - chat: chat text to /v1/chat/completions (the default and what clients send): both the
 *     router and the worker tokenize it (chat template + tokenizer);
 *   - tokens: token ids to /v1/completions (no tokenizer on either side).
 * Prompts cycle through --distinct-prompts documents; with --unique-chat every chat prompt also
 * ends with a per-request line, so no tokenizer cache can serve it whole (the cold case).
 *
 * Each format runs at 1 stream (the bare per-request cost) and at --concurrency streams, direct
 * and through the router. Loaded, they take turns for --rounds rounds (default 3; the order
 * rotates by round) and the throughput ratio is the median of the rounds' ratios: one run each,
 * always in the same order, moved the ratio by 0.7-1.0 from one invocation to the next on this
 * shared 2-core machine. Each loaded run first opens its streams' connections (one untimed request
 * per stream), so the timed requests measure serving, not connection setup. Two more sides take
 * their turns in the same rounds: scripts/bare-proxy.ts,
 * a proxy that only parses the JSON and relays (node:http + undici, as the router), so the router's
 * ratio can be read against what any Node.js HTTP proxy costs here; and the same script with --tcp,
 * which pipes bytes without speaking HTTP: the cost of the extra hop alone. The CPU time per
 * request of the load generator, the worker and the proxy is read for every side: on 2 shared
 * cores, whatever a proxy spends is taken from the worker. Through every loaded run GET /health
 * of the server under load is probed every 20 ms (every side carries the probe).
 * With --sglang, sglang-router (Rust; from the peers venv, as bench:peers runs it) takes its turns in
 * the chat rounds in front of the same worker (0.3.2 takes no token-id prompts): what a native router costs here, with
 * --sglang-policy cache_aware (its approximate prefix tree on the text, the default) or round_robin.
 * Then (unless --no-sim) `router --sim 8` (engines in the router's process tree) takes
 * --concurrency chat streams while /health is probed the same way.
 *
 * Prints per format the router's added TTFT p50 (1 stream) and the throughput ratio router/direct
 * (--concurrency streams); --json prints everything. Under load it also reads the router's own
 * event-loop delay (GET /metrics, dynamo_lab_router_event_loop_delay_*) and, on Linux, the CPU time
 * per request of the router and of the worker (the schedstat of every thread in /proc/<pid>/task) and how long the
 * router's main thread waited for a CPU while it was runnable (the machine's share, not the router's
 * own work).
 *
 * The load generator keeps its connections alive as OpenAI clients do; --no-keepalive opens one
 * connection per request instead (undici pipelining 0, what this benchmark did before).
 *
 * Run: npm run bench:proxy -- [--json] [--prompt chat,tokens] [--concurrency 256] [--requests 1024]
 *                             [--prompt-tokens 8192] [--max-tokens 16] [--events zmq|none]
 *                             [--distinct-prompts 64] [--unique-chat] [--no-sim | --only-sim] [--sim-speedup 1]
 *                             [--rounds 3] [--no-keepalive] [--profile-router <dir>]   (node --cpu-prof of the router process; <dir>/sim8
 *                                                         for the `router --sim 8` phase, all threads)
 *                             [--profile-worker <dir>]   (the same for the worker process)
 *                             [--router-b-cli <main.js>] [--router-b-node-flags "<flags>"]   (a second router taking turns
 *                                                         in the same rounds: another build's CLI and/or other Node.js flags)
 *                             [--sglang] [--sglang-policy cache_aware|round_robin]   (sglang-router 0.3.2 as one more side;
 *                                                         creates the peers venv on first use, ~4 min)
 *   or: node --import tsx scripts/bench-proxy.ts ...
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { ensureVenv, PINS } from '../src/engine/venv.js';
import { freePort } from './peers/common.js';

const argv = process.argv.slice(2);
function arg(name: string, def: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
}
const JSON_OUT = argv.includes('--json');
const CONCURRENCY = Number(arg('concurrency', '256'));
const REQUESTS = Number(arg('requests', '1024'));
const PROMPT_TOKENS = Number(arg('prompt-tokens', '8192'));
const MAX_TOKENS = Number(arg('max-tokens', '16'));
const EVENTS = arg('events', 'zmq');
const DISTINCT = Number(arg('distinct-prompts', '64'));
const SERIAL_REQUESTS = Number(arg('serial-requests', '200'));
const FORMATS = arg('prompt', 'chat,tokens').split(',') as Format[];
const UNIQUE_CHAT = argv.includes('--unique-chat');
const RUN_SIM = !argv.includes('--no-sim');
const ONLY_SIM = argv.includes('--only-sim');
const SIM_SPEEDUP = arg('sim-speedup', '1');
const KEEPALIVE = !argv.includes('--no-keepalive');
const ROUNDS = Number(arg('rounds', '3'));
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1)) throw new Error(`--rounds must be a positive integer, got ${arg('rounds', '3')}`);
const MODEL = 'Qwen/Qwen2.5-1.5B-Instruct';
type Format = 'chat' | 'tokens';
for (const f of FORMATS) if (f !== 'chat' && f !== 'tokens') throw new Error(`--prompt takes chat and/or tokens, got ${f}`);

const fromTs = import.meta.url.endsWith('.ts');
const CLI = fileURLToPath(new URL(fromTs ? '../src/cli/main.ts' : '../src/cli/main.js', import.meta.url));
const NODE_ARGS = fromTs ? ['--import', 'tsx', CLI] : [CLI];

const say = (s: string) => process.stderr.write(s + '\n');

interface Child {
  proc: ChildProcess;
  firstLine: Promise<string>;
}

const PROFILE_DIR = arg('profile-router', '');
const PROFILE_WORKER_DIR = arg('profile-worker', '');
/**
 * A second router (side "router B") that takes its turns in the same rounds: the same CLI under other
 * Node.js flags, or another build's CLI (its dist/src/cli/main.js), for an A/B of a change.
 */
const ROUTER_B_FLAGS = arg('router-b-node-flags', '').split(/\s+/).filter(Boolean);
const ROUTER_B_CLI = arg('router-b-cli', '');
const ROUTER_B = ROUTER_B_FLAGS.length > 0 || ROUTER_B_CLI !== '';
/** sglang-router, a router in Rust, as one more side in the same rounds (the peers venv has it). */
const SGLANG = argv.includes('--sglang');
const SGLANG_POLICY = arg('sglang-policy', 'cache_aware');
if (SGLANG_POLICY !== 'cache_aware' && SGLANG_POLICY !== 'round_robin')
  throw new Error(`--sglang-policy takes cache_aware or round_robin, got ${SGLANG_POLICY}`);

function startCli(args: string[], nodeFlags: string[] = []): Child {
  return startNode([...nodeFlags, ...NODE_ARGS, ...args], `dynamo-lab ${args.join(' ')}`);
}

/** scripts/bare-proxy.ts in front of `workerUrl`: what node:http + undici cost without the router. */
function startBareProxy(workerUrl: string, tcp = false): Child {
  const script = fileURLToPath(new URL(fromTs ? './bare-proxy.ts' : './bare-proxy.js', import.meta.url));
  return startNode([...(fromTs ? ['--import', 'tsx'] : []), script, workerUrl, ...(tcp ? ['--tcp'] : [])], 'bare-proxy');
}

/**
 * sglang-router in front of `workerUrl`, from the peers venv (created on first use), logging
 * warnings only (at info it logs every request). Its circuit breaker is off: one failed request
 * would otherwise fail the next ones for a minute, and the run counts every failure anyway.
 */
async function startSglang(workerUrl: string): Promise<Child & { url: string }> {
  const venv = await ensureVenv({ say });
  const [port, promPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(
    venv.python,
    [
      '-m',
      'sglang_router.launch_router',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--prometheus-host',
      '127.0.0.1',
      '--prometheus-port',
      String(promPort),
      '--policy',
      SGLANG_POLICY,
      '--log-level',
      'warn',
      '--disable-circuit-breaker',
      '--worker-urls',
      workerUrl,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HF_HUB_OFFLINE: '1', NO_COLOR: '1' } },
  );
  let err = '';
  proc.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`sglang-router exited with ${code}:\n${err}`))),
  );
  exited.catch(() => {});
  const deadline = performance.now() + 60_000;
  for (;;) {
    const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (proc.exitCode !== null) await exited;
    if (performance.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`sglang-router at ${url} did not answer /health within 60 s:\n${err}`);
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 250))]);
  }
  return { proc, firstLine: Promise.resolve(''), url };
}

function startNode(argv: string[], what: string): Child {
  const proc = spawn(process.execPath, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: 'true', FORCE_COLOR: '0' },
  });
  let out = '';
  let err = '';
  const firstLine = new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    proc.stderr!.on('data', (d) => (err += d));
    proc.once('exit', (code) => reject(new Error(`${what} exited with ${code}:\n${err}`)));
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

function rng(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
}

function tokenBodies(): Buffer[] {
  // Distinct prompts (cycled): each starts with its own first block so the worker's prefix
  // cache and the router's index both see realistic, partly repeated traffic.
  const out: Buffer[] = [];
  const rnd = rng(12345);
  for (let p = 0; p < DISTINCT; p++) {
    const prompt = Array.from({ length: PROMPT_TOKENS }, () => rnd() % 150_000);
    out.push(
      Buffer.from(
        JSON.stringify({
          model: MODEL,
          prompt,
          max_tokens: MAX_TOKENS,
          stream: true,
          stream_options: { include_usage: true },
          ignore_eos: true,
        }),
      ),
    );
  }
  return out;
}

// Common English words: with a leading space each is one token in the Qwen and Llama-3
// vocabularies, so a document of n words is about n tokens (the first response reports the count).
const WORDS = (
  'the of and to in is was for on are with as by at from that this be or an not have has it which one all were can more ' +
  'there their also new when time been other some would into first two after only its these than about many most such ' +
  'may over then them used city where during between well under year system three people state world part number each ' +
  'since through school later both while because known before work life name same called group made high large small ' +
  'cache router worker block token prefix request model stream latency memory engine event index hash score load'
).split(' ');

function chatDocuments(): string[] {
  const docs: string[] = [];
  const rnd = rng(777);
  for (let p = 0; p < DISTINCT; p++) {
    // ~1 token per word, +1 per full stop or paragraph break; the template adds ~30 tokens.
    const words: string[] = [`Document ${p}.`];
    for (let est = 4; est < PROMPT_TOKENS - 40; est++) {
      words.push(WORDS[rnd() % WORDS.length]!);
      if (rnd() % 12 === 0) {
        words[words.length - 1] += '.';
        est++;
      }
      if (rnd() % 97 === 0) {
        words.push('\n\n');
        est++;
      }
    }
    docs.push(words.join(' '));
  }
  return docs;
}

/** Request bodies for a phase: `total` requests, cycling the distinct prompts. */
function makeBodies(format: Format, total: number, docs: string[], tokenPayloads: Buffer[], phase: string): Buffer[] {
  if (format === 'tokens') return Array.from({ length: total }, (_, i) => tokenPayloads[i % tokenPayloads.length]!);
  return Array.from({ length: total }, (_, i) => {
    const doc = docs[i % docs.length]!;
    const content = UNIQUE_CHAT ? `${doc}\nRequest ${phase}-${i}: summarise the document.` : `${doc}\nSummarise the document.`;
    return Buffer.from(
      JSON.stringify({
        model: MODEL,
        messages: [{ role: 'user', content }],
        max_tokens: MAX_TOKENS,
        stream: true,
        ignore_eos: true,
        stream_options: { include_usage: true },
      }),
    );
  });
}

interface PhaseResult {
  requests: number;
  errors: number;
  concurrency: number;
  wall_s: number;
  requests_per_s: number;
  ttft_ms: { p50: number; p90: number; p99: number };
  latency_ms: { p50: number; p90: number; p99: number };
  /** Prompt tokens reported by the server (usage) for the first request. */
  prompt_tokens?: number;
}

const FIRST_TEXT = /"(?:content|text)":"[^"]/;

/**
 * Probes GET /health every `everyMs` until stopped, from a separate process (the load generator's
 * own event loop, busy with the streams, would add its delays to the figures); latency
 * percentiles and the worst.
 */
const PROBE_SRC = `
const url = process.argv[1] + '/health', every = Number(process.argv[2]);
const lat = []; let failures = 0, running = true;
process.stdin.on('data', () => { running = false; }); process.stdin.resume();
(async () => {
  // One untimed request first: the probe process's own first fetch (loading undici, connecting)
  // is not the router's latency.
  try { await (await fetch(url, { signal: AbortSignal.timeout(10000) })).text(); } catch {}
  while (running) {
    const s = performance.now();
    try { const r = await fetch(url, { signal: AbortSignal.timeout(10000) }); await r.text(); if (r.status !== 200) failures++; } catch { failures++; }
    lat.push(performance.now() - s);
    await new Promise((r) => setTimeout(r, every));
  }
  process.stdout.write(JSON.stringify({ lat, failures }));
  process.exit(0);
})();`;

function healthProbe(baseUrl: string, everyMs = 20): { stop: () => Promise<{ lat: number[]; failures: number }> } {
  const proc = spawn(process.execPath, ['-e', PROBE_SRC, baseUrl, String(everyMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  const exited = new Promise((r) => proc.once('exit', r));
  return {
    stop: async () => {
      proc.stdin!.write('stop\n');
      await exited;
      return JSON.parse(out) as { lat: number[]; failures: number };
    },
  };
}

interface HealthSummary {
  probes: number;
  failures: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** Latency percentiles and the worst of several probes' samples. */
function healthSummary(runs: { lat: number[]; failures: number }[]): HealthSummary {
  const lat = runs.flatMap((r) => r.lat).sort((a, b) => a - b);
  const failures = runs.reduce((n, r) => n + r.failures, 0);
  return { probes: lat.length, failures, p50_ms: r3(pct(lat, 50)), p99_ms: r3(pct(lat, 99)), max_ms: r3(lat[lat.length - 1] ?? NaN) };
}

/** Read and write system calls of `pid` so far (/proc/<pid>/io; Linux). */
function ioCalls(pid: number): { reads: number; writes: number } | undefined {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const n = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(io)?.[1]);
    return { reads: n('syscr'), writes: n('syscw') };
  } catch {
    return undefined;
  }
}

/** A thread's name (/proc/.../comm) without its number: V8's GC and compiler helpers, libuv's pool, workers. */
function threadGroup(comm: string): string {
  return comm.replace(/[\s#:_-]*\d+$/, '') || comm;
}

/** CPU time of every thread of `pid` and of its main thread, and the main thread's run-queue wait (ns; Linux). */
function schedTimes(
  pid: number | undefined,
): { cpu: number; mainRun: number; mainWait: number; byName: Map<string, number>; io?: { reads: number; writes: number } } | undefined {
  if (!pid || process.platform !== 'linux') return undefined;
  try {
    let cpu = 0;
    const byName = new Map<string, number>();
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        const ns = Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
        cpu += ns;
        const name = t === String(pid) ? 'main' : threadGroup(readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim());
        byName.set(name, (byName.get(name) ?? 0) + ns);
      } catch {
        // the thread ended meanwhile
      }
    }
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { cpu, mainRun: run!, mainWait: wait!, byName, io: ioCalls(pid) };
  } catch {
    return undefined;
  }
}

/** The router's event-loop delay gauges (ms) since the previous scrape; a scrape also starts a new period. */
async function loopDelay(routerUrl: string): Promise<{ p50: number; p99: number; max: number } | undefined> {
  try {
    const text = await (await fetch(`${routerUrl}/metrics`)).text();
    const g = (q: string) => Number(new RegExp(`^dynamo_lab_router_event_loop_delay_${q}_seconds (\\S+)`, 'm').exec(text)?.[1]) * 1000;
    const p99 = g('p99');
    return Number.isFinite(p99) ? { p50: r3(g('p50')), p99: r3(p99), max: r3(g('max')) } : undefined;
  } catch {
    return undefined;
  }
}

interface ProcessLoad {
  /** CPU time of the whole process (all threads) per request (ms). */
  cpu_ms_per_request?: number;
  /** CPU time of its main thread (the event loop) per request (ms). */
  main_thread_cpu_ms_per_request?: number;
  /** Share of the wall time the main thread ran / waited for a CPU while runnable. */
  main_thread_running_share?: number;
  main_thread_runqueue_wait_share?: number;
  /** CPU time per request (ms) by thread name: main, V8's helper threads (GC, compiler), libuv's pool, worker threads. */
  cpu_ms_per_request_by_thread?: Record<string, number>;
  /** Read / write system calls per request (socket reads and writes, all threads). */
  syscalls_per_request?: { read: number; write: number };
  /** The router's event-loop delay over the phase (ms beyond its 10 ms sampling interval). */
  event_loop_delay_ms?: { p50: number; p99: number; max: number };
  loadavg: { start: number[]; end: number[] };
}

function describeProcess(what: string, p: ProcessLoad): string {
  const parts: string[] = [];
  if (p.event_loop_delay_ms)
    parts.push(
      `event-loop delay p50 ${p.event_loop_delay_ms.p50} / p99 ${p.event_loop_delay_ms.p99} / max ${p.event_loop_delay_ms.max} ms`,
    );
  if (p.cpu_ms_per_request !== undefined)
    parts.push(
      `CPU ${p.cpu_ms_per_request} ms/request (main thread ${p.main_thread_cpu_ms_per_request}; main thread ran ${Math.round(100 * p.main_thread_running_share!)}% of the time and waited for a CPU ${Math.round(100 * p.main_thread_runqueue_wait_share!)}%)`,
    );
  if (p.cpu_ms_per_request_by_thread) {
    const others = Object.entries(p.cpu_ms_per_request_by_thread).filter(([n]) => n !== 'main');
    if (others.length) parts.push(`other threads ${others.map(([n, ms]) => `${n} ${ms}`).join(', ')} ms/request`);
  }
  if (p.syscalls_per_request)
    parts.push(`${p.syscalls_per_request.read} read / ${p.syscalls_per_request.write} write system calls per request`);
  parts.push(`load average ${p.loadavg.start[0]} -> ${p.loadavg.end[0]}`);
  return `${what} ${parts.join(', ')}`;
}

/** Watches a process over one load phase (`routerUrl`: also its event-loop delay). */
async function watchProcess(pid: number | undefined, routerUrl?: string): Promise<{ stop: (requests: number) => Promise<ProcessLoad> }> {
  if (routerUrl) await loopDelay(routerUrl); // starts a new measuring period
  const la = () => loadavg().map((x) => Math.round(x * 100) / 100);
  const start = { t: performance.now(), s: schedTimes(pid), la: la() };
  return {
    stop: async (requests) => {
      const wallNs = (performance.now() - start.t) * 1e6;
      const end = schedTimes(pid);
      const out: ProcessLoad = { loadavg: { start: start.la, end: la() } };
      if (start.s && end) {
        out.cpu_ms_per_request = r3((end.cpu - start.s.cpu) / 1e6 / requests);
        out.main_thread_cpu_ms_per_request = r3((end.mainRun - start.s.mainRun) / 1e6 / requests);
        out.main_thread_running_share = r3((end.mainRun - start.s.mainRun) / wallNs);
        out.main_thread_runqueue_wait_share = r3((end.mainWait - start.s.mainWait) / wallNs);
        const byThread: Record<string, number> = {};
        for (const [name, ns] of end.byName) {
          const ms = (ns - (start.s.byName.get(name) ?? 0)) / 1e6 / requests;
          if (ms >= 0.0005) byThread[name] = r3(ms);
        }
        out.cpu_ms_per_request_by_thread = byThread;
        if (start.s.io && end.io)
          out.syscalls_per_request = {
            read: r3((end.io.reads - start.s.io.reads) / requests),
            write: r3((end.io.writes - start.s.io.writes) / requests),
          };
      }
      if (routerUrl) out.event_loop_delay_ms = await loopDelay(routerUrl);
      return out;
    },
  };
}

/** The load generator's connections: one per stream, kept alive as OpenAI clients do (unless --no-keepalive). */
function loadAgent(concurrency: number): Agent {
  return new Agent({ connections: concurrency + 8, pipelining: KEEPALIVE ? 1 : 0, keepAliveTimeout: 30_000 });
}

/** `total` requests over `concurrency` streams, on `shared` connections when given (left open), else on new ones. */
async function load(
  baseUrl: string,
  payloads: Buffer[],
  total: number,
  concurrency: number,
  format: Format,
  shared?: Agent,
): Promise<PhaseResult> {
  const path = format === 'chat' ? '/v1/chat/completions' : '/v1/completions';
  let promptTokens: number | undefined;
  const agent = shared ?? loadAgent(concurrency);
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
        const r = await request(`${baseUrl}${path}`, {
          method: 'POST',
          body: payloads[i % payloads.length]!,
          headers: { 'content-type': 'application/json' },
          dispatcher: agent,
          headersTimeout: 120_000,
          bodyTimeout: 120_000,
        });
        // TTFT = the first chunk carrying generated text (an empty role chunk does not count).
        let first = 0;
        let head = '';
        let tail = '';
        for await (const chunk of r.body) {
          if (first === 0) {
            head += chunk;
            if (FIRST_TEXT.test(head)) first = performance.now();
            else head = head.slice(-64);
          }
          if (promptTokens === undefined) tail = (tail + chunk).slice(-600);
        }
        if (promptTokens === undefined) promptTokens = Number(/"prompt_tokens":(\d+)/.exec(tail)?.[1] ?? NaN);
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
  if (!shared) await agent.close();
  ttft.sort((a, b) => a - b);
  lat.sort((a, b) => a - b);
  const q = (a: number[]) => ({ p50: r3(pct(a, 50)), p90: r3(pct(a, 90)), p99: r3(pct(a, 99)) });
  return {
    requests: total,
    errors,
    concurrency,
    wall_s: r3(wall),
    requests_per_s: r3((total - errors) / wall),
    ttft_ms: q(ttft),
    latency_ms: q(lat),
    prompt_tokens: promptTokens,
  };
}

/** p50 of a Prometheus histogram from its cumulative buckets (upper bound of the bucket). */
function histP50(metrics: string, name: string): number | undefined {
  const rows = [...metrics.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => ({
    le: m[1] === '+Inf' ? Infinity : Number(m[1]),
    n: Number(m[2]),
  }));
  const count = Number(new RegExp(`^${name}_count (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
  if (!count) return undefined;
  return rows.find((r) => r.n >= count / 2)?.le;
}
function histMean(metrics: string, name: string): number | undefined {
  const sum = Number(new RegExp(`^${name}_sum (\\S+)`, 'm').exec(metrics)?.[1]);
  const count = Number(new RegExp(`^${name}_count (\\d+)`, 'm').exec(metrics)?.[1]);
  return count ? r3(sum / count) : undefined;
}

type Side = 'router' | 'direct' | 'bare' | 'tcp' | 'routerB' | 'sglang';

interface FormatResult {
  format: Format;
  prompt_tokens: number | undefined;
  serial: { direct: PhaseResult; router: PhaseResult; added_ttft_p50_ms: number; added_latency_p50_ms: number };
  loaded: {
    /** Each round's runs (router, direct and bare proxy take turns, the order rotating by round). */
    direct_runs: PhaseResult[];
    router_runs: PhaseResult[];
    /** Router / direct requests per second of each round, and their median. */
    throughput_ratios: number[];
    throughput_ratio: number;
    /** Median over rounds of the router's TTFT p50 minus the median of direct's. */
    added_ttft_p50_ms: number;
    /** GET /health of the router, probed every 20 ms through its runs. */
    router_health: HealthSummary;
    /** The same probe on the worker through the direct runs (so both sides carry it). */
    worker_health_direct: HealthSummary;
    router_process: ProcessLoad[];
    worker_process_direct: ProcessLoad[];
    /** scripts/bare-proxy.ts (node:http + undici, JSON parse, no router) in the same rounds: the platform's own cost. */
    bare_proxy_runs: PhaseResult[];
    bare_proxy_throughput_ratios: number[];
    bare_proxy_throughput_ratio: number;
    /** Median over rounds of router / bare proxy requests per second. */
    router_vs_bare_proxy_ratio: number;
    bare_proxy_process: ProcessLoad[];
    /** scripts/bare-proxy.ts --tcp (bytes piped both ways, no HTTP) in the same rounds: the cost of the hop alone. */
    tcp_relay_runs: PhaseResult[];
    tcp_relay_throughput_ratios: number[];
    tcp_relay_throughput_ratio: number;
    tcp_relay_process: ProcessLoad[];
    /** With --router-b-cli / --router-b-node-flags: another build or other Node.js flags, in the same rounds. */
    router_b?: {
      node_flags: string[];
      cli?: string;
      runs: PhaseResult[];
      throughput_ratios: number[];
      throughput_ratio: number;
      vs_router_ratio: number;
      process: ProcessLoad[];
    };
    /** With --sglang: sglang-router (Rust) in front of the same worker, in the same rounds. */
    sglang?: {
      version: string;
      policy: string;
      runs: PhaseResult[];
      throughput_ratios: number[];
      throughput_ratio: number;
      /** Median over rounds of the router's requests per second / sglang-router's. */
      router_vs_sglang_ratio: number;
      process: ProcessLoad[];
      cpu_ms_per_request: CpuBudget[];
    };
    /** The worker's process through the router's runs. */
    worker_process_router: ProcessLoad[];
    /** Per round and side: CPU time per request of the load generator, the worker and the proxy. */
    cpu_ms_per_request: Record<Exclude<Side, 'routerB' | 'sglang'>, CpuBudget[]>;
  };
}

/**
 * One loaded run against `url`, with its /health probed and its process (`pid`) watched. Every
 * stream's connection is opened first, by one untimed request per stream (`warmup`), as for
 * clients that have been sending for a while: on new connections, 1,024 requests over 256 streams
 * open a connection every 4 requests, and a proxy opens two (the client's and its own to the worker,
 * whose keep-alive has timed out while the other sides took their turns).
 */
async function loadedRun(
  url: string,
  pid: number | undefined,
  isRouter: boolean,
  payloads: Buffer[],
  warmup: Buffer[],
  format: Format,
  workerPid: number | undefined,
) {
  const agent = loadAgent(CONCURRENCY);
  await load(url, warmup, CONCURRENCY, CONCURRENCY, format, agent);
  const probe = healthProbe(url);
  const watch = await watchProcess(pid, isRouter ? url : undefined);
  // The worker behind a proxy too: a router that hands the worker token ids makes the worker's share smaller.
  const watchWorker = workerPid !== pid ? await watchProcess(workerPid) : undefined;
  const clientStart = process.cpuUsage();
  const result = await load(url, payloads, REQUESTS, CONCURRENCY, format, agent);
  const client = process.cpuUsage(clientStart);
  await agent.close();
  const proc = await watch.stop(REQUESTS);
  const worker = watchWorker ? await watchWorker.stop(REQUESTS) : proc;
  const health = await probe.stop();
  const cpu: CpuBudget = {
    client_ms: r3((client.user + client.system) / 1000 / REQUESTS),
    worker_ms: worker.cpu_ms_per_request,
    proxy_ms: watchWorker ? proc.cpu_ms_per_request : 0,
  };
  return { result, process: proc, worker, cpu, health };
}

/** CPU time per request of each process on the path (ms, all threads): the load generator, the worker, the proxy (0 when direct). */
interface CpuBudget {
  client_ms: number;
  worker_ms: number | undefined;
  proxy_ms: number | undefined;
}

function describeBudget(side: string, runs: { cpu: CpuBudget }[]): string {
  const med = (f: (b: CpuBudget) => number | undefined) => r3(median(runs.map((r) => f(r.cpu) ?? NaN)));
  const total = med((b) => b.client_ms + (b.worker_ms ?? NaN) + (b.proxy_ms ?? NaN));
  return `${side} ${total} (load generator ${med((b) => b.client_ms)}, worker ${med((b) => b.worker_ms)}${side === 'direct' ? '' : `, proxy ${med((b) => b.proxy_ms)}`})`;
}

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a.length === 0 ? NaN : a.length % 2 ? a[a.length >> 1]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2;
}

async function proxyPhases(): Promise<{ results: FormatResult[]; overhead: Record<string, unknown> }> {
  const tokenPayloads = FORMATS.includes('tokens') ? tokenBodies() : [];
  const docs = FORMATS.includes('chat') ? chatDocuments() : [];
  const blocks = Math.ceil(((PROMPT_TOKENS + 64 + MAX_TOKENS) / 16) * (CONCURRENCY + 2 * DISTINCT)) + 1024;
  const sim = startCli(
    [
      'sim',
      '--workers',
      '1',
      '--port',
      '0',
      '--speedup',
      '0',
      '--gpu-blocks',
      String(blocks),
      '--max-num-seqs',
      String(Math.max(256, CONCURRENCY)),
      '--max-num-batched-tokens',
      String(Math.max(8192, PROMPT_TOKENS + 64)),
      '--quiet',
      '--json',
      ...(EVENTS === 'zmq' ? ['--zmq-port', '0', '--replay-port', '0'] : []),
    ],
    PROFILE_WORKER_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_WORKER_DIR] : [],
  );
  let router: Child | undefined;
  let bare: Child | undefined;
  let tcp: Child | undefined;
  let routerB: Child | undefined;
  let sglang: (Child & { url: string }) | undefined;
  try {
    const [w] = JSON.parse(await sim.firstLine) as Array<{ id: string; url: string; zmq: string | null; zmq_replay: string | null }>;
    const spec = EVENTS === 'zmq' ? `id=${w!.id},url=${w!.url},zmq=${w!.zmq},replay=${w!.zmq_replay}` : w!.url;
    const routerArgs = [
      'router',
      '--worker',
      spec,
      '--events',
      EVENTS === 'zmq' ? 'zmq' : 'none',
      '--port',
      '0',
      '--health-interval',
      '0',
      '--json',
    ];
    router = startCli(routerArgs, PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : []);
    const { url: routerUrl } = JSON.parse(await router.firstLine) as { url: string };
    if (ROUTER_B)
      routerB = ROUTER_B_CLI
        ? startNode([...ROUTER_B_FLAGS, ROUTER_B_CLI, ...routerArgs], `router B (${ROUTER_B_CLI})`)
        : startCli(routerArgs, ROUTER_B_FLAGS);
    const routerBUrl = routerB ? (JSON.parse(await routerB.firstLine) as { url: string }).url : '';
    bare = startBareProxy(w!.url);
    const { url: bareUrl } = JSON.parse(await bare.firstLine) as { url: string };
    tcp = startBareProxy(w!.url, true);
    const { url: tcpUrl } = JSON.parse(await tcp.firstLine) as { url: string };
    if (SGLANG) sglang = await startSglang(w!.url);
    const sglangUrl = sglang?.url ?? '';
    say(
      `worker ${w!.url}, router ${routerUrl} (events ${EVENTS}); ${REQUESTS} requests x ~${PROMPT_TOKENS} prompt tokens, ${MAX_TOKENS} output tokens, ${CONCURRENCY} concurrent streams; formats ${FORMATS.join(', ')}${UNIQUE_CHAT ? ' (unique chat prompts)' : ''}`,
    );
    const results: FormatResult[] = [];
    for (const format of FORMATS) {
      const bodies = (phase: string, n: number) => makeBodies(format, n, docs, tokenPayloads, phase);
      // sglang-router 0.3.2 takes a prompt only as text (a string or strings): chat rounds only.
      const withSglang = sglang !== undefined && format === 'chat';
      if (sglang && !withSglang) say(`${format}: no sglang-router side (version ${PINS['sglang-router']} does not take token-id prompts)`);
      // Warm both paths (connections, JIT, the worker's prefix cache for the cycled prompts).
      await load(
        w!.url,
        bodies('warm-d', Math.min(REQUESTS, 2 * DISTINCT)),
        Math.min(REQUESTS, 2 * DISTINCT),
        Math.min(CONCURRENCY, 64),
        format,
      );
      for (const url of [routerUrl, bareUrl, tcpUrl, ...(routerB ? [routerBUrl] : []), ...(withSglang ? [sglangUrl] : [])])
        await load(
          url,
          bodies('warm-r', Math.min(REQUESTS, 2 * DISTINCT)),
          Math.min(REQUESTS, 2 * DISTINCT),
          Math.min(CONCURRENCY, 64),
          format,
        );
      // Alternate the order so neither path always runs on a warmer machine.
      say(`${format}: 1 stream: direct, router ...`);
      const serialDirect = await load(w!.url, bodies('sd', SERIAL_REQUESTS), SERIAL_REQUESTS, 1, format);
      const serialRouter = await load(routerUrl, bodies('sr', SERIAL_REQUESTS), SERIAL_REQUESTS, 1, format);
      say(
        `${format}: ${CONCURRENCY} streams, ${ROUNDS} rounds of router, direct, bare proxy, TCP relay${routerB ? ', router B' : ''}${withSglang ? `, sglang-router ${SGLANG_POLICY}` : ''}, taking turns ...`,
      );
      type Run = Awaited<ReturnType<typeof loadedRun>>;
      const runs: Record<Side, Run[]> = { router: [], direct: [], bare: [], tcp: [], routerB: [], sglang: [] };
      const sides: Side[] = [
        'router',
        'direct',
        'bare',
        'tcp',
        ...(routerB ? (['routerB'] as const) : []),
        ...(withSglang ? (['sglang'] as const) : []),
      ];
      const where: Record<Side, [string, number | undefined]> = {
        router: [routerUrl, router.proc.pid],
        direct: [w!.url, sim.proc.pid],
        bare: [bareUrl, bare.proc.pid],
        tcp: [tcpUrl, tcp.proc.pid],
        routerB: [routerBUrl, routerB?.proc.pid],
        sglang: [sglangUrl, sglang?.proc.pid],
      };
      for (let k = 0; k < ROUNDS; k++) {
        // The order rotates by round, so no side always runs first on a cooler machine.
        for (let j = 0; j < sides.length; j++) {
          const side = sides[(j + k) % sides.length]!;
          const [url, pid] = where[side];
          runs[side].push(
            await loadedRun(
              url,
              pid,
              side === 'router' || side === 'routerB',
              bodies(`l${side}${k}`, REQUESTS),
              bodies(`w${side}${k}`, CONCURRENCY),
              format,
              sim.proc.pid,
            ),
          );
        }
      }
      const routerRuns = runs.router;
      const directRuns = runs.direct;
      const perRound = (a: Run[], b: Run[]) => a.map((x, k) => r3(x.result.requests_per_s / b[k]!.result.requests_per_s));
      const ratios = perRound(routerRuns, directRuns);
      const bareRatios = perRound(runs.bare, directRuns);
      const tcpRatios = perRound(runs.tcp, directRuns);
      const routerHealth = healthSummary(routerRuns.map((r) => r.health));
      const r: FormatResult = {
        format,
        prompt_tokens: serialRouter.prompt_tokens,
        serial: {
          direct: serialDirect,
          router: serialRouter,
          added_ttft_p50_ms: r3(serialRouter.ttft_ms.p50 - serialDirect.ttft_ms.p50),
          added_latency_p50_ms: r3(serialRouter.latency_ms.p50 - serialDirect.latency_ms.p50),
        },
        loaded: {
          direct_runs: directRuns.map((x) => x.result),
          router_runs: routerRuns.map((x) => x.result),
          throughput_ratios: ratios,
          throughput_ratio: r3(median(ratios)),
          bare_proxy_runs: runs.bare.map((x) => x.result),
          bare_proxy_throughput_ratios: bareRatios,
          bare_proxy_throughput_ratio: r3(median(bareRatios)),
          router_vs_bare_proxy_ratio: r3(median(perRound(routerRuns, runs.bare))),
          added_ttft_p50_ms: r3(median(routerRuns.map((x) => x.result.ttft_ms.p50)) - median(directRuns.map((x) => x.result.ttft_ms.p50))),
          router_health: routerHealth,
          worker_health_direct: healthSummary(directRuns.map((x) => x.health)),
          router_process: routerRuns.map((x) => x.process),
          worker_process_direct: directRuns.map((x) => x.process),
          bare_proxy_process: runs.bare.map((x) => x.process),
          tcp_relay_runs: runs.tcp.map((x) => x.result),
          tcp_relay_throughput_ratios: tcpRatios,
          tcp_relay_throughput_ratio: r3(median(tcpRatios)),
          tcp_relay_process: runs.tcp.map((x) => x.process),
          ...(routerB
            ? {
                router_b: {
                  node_flags: ROUTER_B_FLAGS,
                  ...(ROUTER_B_CLI ? { cli: ROUTER_B_CLI } : {}),
                  runs: runs.routerB.map((x) => x.result),
                  throughput_ratios: perRound(runs.routerB, directRuns),
                  throughput_ratio: r3(median(perRound(runs.routerB, directRuns))),
                  vs_router_ratio: r3(median(perRound(runs.routerB, routerRuns))),
                  process: runs.routerB.map((x) => x.process),
                },
              }
            : {}),
          ...(withSglang
            ? {
                sglang: {
                  version: PINS['sglang-router'],
                  policy: SGLANG_POLICY,
                  runs: runs.sglang.map((x) => x.result),
                  throughput_ratios: perRound(runs.sglang, directRuns),
                  throughput_ratio: r3(median(perRound(runs.sglang, directRuns))),
                  router_vs_sglang_ratio: r3(median(perRound(routerRuns, runs.sglang))),
                  process: runs.sglang.map((x) => x.process),
                  cpu_ms_per_request: runs.sglang.map((x) => x.cpu),
                },
              }
            : {}),
          worker_process_router: routerRuns.map((x) => x.worker),
          cpu_ms_per_request: {
            router: routerRuns.map((x) => x.cpu),
            direct: directRuns.map((x) => x.cpu),
            bare: runs.bare.map((x) => x.cpu),
            tcp: runs.tcp.map((x) => x.cpu),
          },
        },
      };
      const rps = (rs: Run[]) => rs.map((x) => x.result.requests_per_s).join(' / ');
      results.push(r);
      say(
        `${format} (${r.prompt_tokens} prompt tokens): 1 stream added TTFT p50 ${r.serial.added_ttft_p50_ms} ms (direct ${serialDirect.ttft_ms.p50}, router ${serialRouter.ttft_ms.p50}); ` +
          `${CONCURRENCY} streams throughput router ${rps(routerRuns)} vs direct ${rps(directRuns)} req/s, ratios ${ratios.join(' / ')}, median ${r.loaded.throughput_ratio}x; router /health p99 ${routerHealth.p99_ms} ms, max ${routerHealth.max_ms} ms`,
      );
      say(
        `${format}: bare proxy ${rps(runs.bare)} req/s, ratios to direct ${bareRatios.join(' / ')}, median ${r.loaded.bare_proxy_throughput_ratio}x; router / bare proxy ${r.loaded.router_vs_bare_proxy_ratio}x; ` +
          `TCP relay (no HTTP) ${rps(runs.tcp)} req/s, ratios to direct ${tcpRatios.join(' / ')}, median ${r.loaded.tcp_relay_throughput_ratio}x`,
      );
      if (routerB)
        say(
          `${format}: router B (${ROUTER_B_CLI || 'node'}${ROUTER_B_FLAGS.length ? ` ${ROUTER_B_FLAGS.join(' ')}` : ''}) ${rps(runs.routerB)} req/s, ratios to direct ${perRound(runs.routerB, directRuns).join(' / ')}, ` +
            `median ${r3(median(perRound(runs.routerB, directRuns)))}x; router B / router ${r3(median(perRound(runs.routerB, routerRuns)))}x; ${describeBudget('router B', runs.routerB)}; ${describeProcess('router B', runs.routerB[0]!.process)}`,
        );
      if (withSglang) {
        const errors = runs.sglang.reduce((n, x) => n + x.result.errors, 0);
        say(
          `${format}: sglang-router ${PINS['sglang-router']} ${SGLANG_POLICY} (Rust) ${rps(runs.sglang)} req/s, ratios to direct ${perRound(runs.sglang, directRuns).join(' / ')}, ` +
            `median ${r3(median(perRound(runs.sglang, directRuns)))}x; router / sglang-router ${r3(median(perRound(routerRuns, runs.sglang)))}x; ${describeBudget('sglang-router', runs.sglang)}` +
            `${errors ? `; ${errors} failed requests (not counted in req/s)` : ''}; ${describeProcess('sglang-router', runs.sglang[0]!.process)}`,
        );
      }
      say(
        `${format}: CPU ms per request, all processes (median of rounds): ${describeBudget('direct', directRuns)}; ${describeBudget('router', routerRuns)}; ${describeBudget('bare proxy', runs.bare)}; ${describeBudget('TCP relay', runs.tcp)}`,
      );
      say(
        `${format}: ${describeProcess('router', routerRuns[0]!.process)}; ${describeProcess('bare proxy', runs.bare[0]!.process)}; ${describeProcess('worker (direct)', directRuns[0]!.process)} (first round)`,
      );
    }
    const metrics = await (await fetch(`${routerUrl}/metrics`)).text();
    const overhead = {
      note: "the router process's own histograms (receipt -> worker chosen), all requests of all formats incl. warm-up",
      total_mean: histMean(metrics, 'dynamo_router_overhead_total_ms'),
      total_p50_bucket: histP50(metrics, 'dynamo_router_overhead_total_ms'),
      read_parse_tokenize_mean: histMean(metrics, 'dynamo_lab_router_overhead_tokenize_ms'),
      block_hashing_mean: histMean(metrics, 'dynamo_router_overhead_block_hashing_ms'),
      indexer_find_matches_mean: histMean(metrics, 'dynamo_router_overhead_indexer_find_matches_ms'),
      seq_hashing_mean: histMean(metrics, 'dynamo_router_overhead_seq_hashing_ms'),
      scheduling_mean: histMean(metrics, 'dynamo_router_overhead_scheduling_ms'),
    };
    return { results, overhead };
  } finally {
    if (sglang) await stop(sglang);
    if (tcp) await stop(tcp);
    if (routerB) await stop(routerB);
    if (bare) await stop(bare);
    if (router) await stop(router);
    await stop(sim);
  }
}

/** `router --sim 8` under CONCURRENCY chat streams: does /health keep answering quickly? */
async function simPhase(): Promise<Record<string, unknown>> {
  const docs = chatDocuments();
  const router = startCli(
    ['router', '--sim', '8', '--speedup', SIM_SPEEDUP, '--port', '0', '--json'],
    PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', `${PROFILE_DIR}/sim8`] : [],
  );
  try {
    const { url } = JSON.parse(await router.firstLine) as { url: string };
    say(`router --sim 8 (speedup ${SIM_SPEEDUP}) at ${url}: ${REQUESTS} chat requests, ${CONCURRENCY} streams, probing /health ...`);
    await load(url, makeBodies('chat', 64, docs, [], 'warm'), 64, 32, 'chat');
    const probe = healthProbe(url);
    const watch = await watchProcess(router.proc.pid, url);
    const r = await load(url, makeBodies('chat', REQUESTS, docs, [], 'sim'), REQUESTS, CONCURRENCY, 'chat');
    const proc = await watch.stop(REQUESTS);
    const health = healthSummary([await probe.stop()]);
    say(
      `router --sim 8: ${r.requests_per_s} req/s, TTFT p50 ${r.ttft_ms.p50} ms; /health p50 ${health.p50_ms} ms, p99 ${health.p99_ms} ms, max ${health.max_ms} ms over ${health.probes} probes (${health.failures} failed)`,
    );
    say(`router --sim 8: ${describeProcess('process', proc)}`);
    return {
      speedup: Number(SIM_SPEEDUP),
      load: r,
      health,
      process: proc,
      health_max_within_50ms: health.max_ms <= 50 && health.failures === 0,
    };
  } finally {
    await stop(router);
  }
}

async function main(): Promise<void> {
  const os = await import('node:os');
  const started = { loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100) };
  const { results, overhead } = ONLY_SIM ? { results: [], overhead: {} } : await proxyPhases();
  const simResult = RUN_SIM ? await simPhase() : undefined;
  const doc = {
    workload: {
      prompt_tokens: PROMPT_TOKENS,
      formats: FORMATS,
      unique_chat: UNIQUE_CHAT,
      max_tokens: MAX_TOKENS,
      stream: true,
      distinct_prompts: DISTINCT,
      requests: REQUESTS,
      serial_requests: SERIAL_REQUESTS,
      concurrency: CONCURRENCY,
      events: EVENTS,
      worker_speedup: 0,
      client_keepalive: KEEPALIVE,
    },
    machine: {
      cpus: os.cpus().length,
      node: process.versions.node,
      loadavg_start: started.loadavg,
      loadavg_end: os.loadavg().map((x) => Math.round(x * 100) / 100),
    },
    formats: results,
    router_overhead_ms: overhead,
    router_sim8: simResult,
    targets: { added_ttft_p50_ms_max_1_stream: 5, throughput_ratio_min: 0.9, health_max_ms: 50 },
    meets_targets: Object.fromEntries(
      results.map((r) => [r.format, { added_ttft_p50: r.serial.added_ttft_p50_ms <= 5, throughput: r.loaded.throughput_ratio >= 0.9 }]),
    ),
  };
  if (JSON_OUT) process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  else {
    for (const r of results) {
      say(
        `${r.format.padEnd(6)} ~${r.prompt_tokens} tok | 1 stream: router added TTFT p50 ${r.serial.added_ttft_p50_ms} ms | ${CONCURRENCY} streams: throughput ${r.loaded.throughput_ratio}x direct (bare proxy ${r.loaded.bare_proxy_throughput_ratio}x${r.loaded.sglang ? `, sglang-router ${r.loaded.sglang.throughput_ratio}x` : ''}), added TTFT p50 ${r.loaded.added_ttft_p50_ms} ms, router /health max ${r.loaded.router_health.max_ms} ms`,
      );
    }
    say(`load average ${doc.machine.loadavg_start.join(' ')} -> ${doc.machine.loadavg_end.join(' ')}`);
  }
}

main().catch((err) => {
  process.stderr.write(`bench-proxy failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
