/**
 * Router core micro-benchmark. Prints one JSON object (with --json) or a short table.
 *
 *   npx tsx scripts/bench-router.ts --json [--trace <jsonl>] [--workers 8] [--repeat 3]
 *   node dist/scripts/bench-router.js --json          (after `npm run build`)
 *
 * Workload: the Mooncake-style conversation trace (hash_ids = 512-token blocks, used directly as
 * local block hashes). Requests are spread round-robin over the workers as Stored events (chain
 * from the root, block_hash = chained hash), interleaved with find_matches lookups of the next
 * requests. The Stored events carry their hashes as u32 pairs (storedFromPairs), the form in which
 * the router receives them from simulated workers' threads and the vLLM decoder; the harness's
 * events hold plain u64s. Block ops = stored blocks + looked-up blocks. route_* times a full KvRouter.route of
 * 8,192 token ids (a Uint32Array, as the request path hands them) at block size 16 over 8 workers: block hashing + find_matches + sequence
 * hashing + load projection + selection + booking (the request is freed right after).
 * Without the trace file (e.g. a clean clone outside the workspace) a synthetic trace is used.
 *
 * hash_impl compares the XXH3-64 backends in the same run (routes interleaved per repeat so load on
 * a shared machine hits all alike): 'wasm' (src/router/wasm/xxh3.wat, batched: one call per
 * request; the default, used for route_*), 'js' (src/router/xxh3.ts) and 'native'
 * (@node-rs/xxhash, one N-API call per block). For each: route p50/p99, the route's stage
 * breakdown (medians of timings_us) and hashing alone (8,192 tokens, block size 16: block
 * hashes, sequence hashes; hash_8192_p50_us is both together; token ids as a number[] (what a
 * caller with a plain array pays), and block_hash_8192_u32_p50_us from a Uint32Array (what the
 * router's request path hands over), which the wasm backend copies with one memcpy instead of an
 * element loop).
 * dynamo_radix_tree: the same indexer event stream (Stored events + find_matches of the next
 * request, untimed loop) replayed through Dynamo's own Rust RadixTree, crate dynamo-kv-router
 * 1.6.1 from crates.io, by the harness in scripts/dynamo-radix-bench (built here with
 * `cargo build --release` on first use; needs cargo and crates.io; --no-rust skips it), and
 * indexer_vs_dynamo_ratio = our indexer_block_ops_per_s / its block_ops_per_s: the two take turns
 * (max(9, --repeat) pairs: one run of ours, then one harness process; each side runs 3 uncounted
 * warm-up rounds, then reports the median of 7 rounds, a fresh index per round, dropped after the
 * round's timer (ours: RadixIndexer.dispose, which hands its arrays to the pool for the next index);
 * our median with the warm-up rounds included is indexer_block_ops_per_s_warmup_included), and the
 * ratio is the median of the pairs' ratios, so load from elsewhere on the machine falls on both alike
 * (indexer_vs_dynamo_cpu_ratio: the same on CPU time). Then as many pairs again with each of our
 * indexes left to the GC instead: indexer_block_ops_per_s_without_dispose and
 * indexer_vs_dynamo_ratio_without_dispose.
 * request_path_hashing: block hashing of the ids the router's tokenizer returns for a ~8k-token
 * chat prompt (ChatTokenizer.encodeChatIds: a Uint32Array), as route() hashes them.
 * --hash-impl wasm|js|native|all picks what runs (default all; route_* reports the default backend when run).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvRouter, RadixIndexer, storedFromPairs, toPairs, type RouterEvent } from '../src/router/index.js';
import { loadChatTokenizer } from '../src/tokenizer/index.js';
import {
  computeBlockHashPairs,
  computeSequenceHashPairs,
  getHashBackend,
  setHashBackend,
  type HashBackend,
} from '../src/router/hashing.js';

interface Args {
  json: boolean;
  trace?: string;
  workers: number;
  repeat: number;
  routeIters: number;
  hashImpl: HashBackend | 'all';
  rust: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { json: false, workers: 8, repeat: 3, routeIters: 3000, hashImpl: 'all', rust: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--json') a.json = true;
    else if (k === '--trace') a.trace = v();
    else if (k === '--workers') a.workers = Number(v());
    else if (k === '--repeat') a.repeat = Number(v());
    else if (k === '--route-iters') a.routeIters = Number(v());
    else if (k === '--no-rust') a.rust = false;
    else if (k === '--hash-impl') {
      const x = v();
      if (x !== 'wasm' && x !== 'js' && x !== 'native' && x !== 'all')
        throw new Error(`--hash-impl must be wasm, js, native or all, got ${x}`);
      a.hashImpl = x;
    } else if (k === '--help' || k === '-h') {
      process.stdout.write(
        'usage: bench-router [--json] [--trace <jsonl>] [--workers n] [--repeat n] [--route-iters n] [--hash-impl wasm|js|native|all] [--no-rust]\n',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'dynamo-lab') return dir;
      } catch {
        /* keep looking */
      }
    }
    dir = dirname(dir);
  }
  return process.cwd();
}

function loadTrace(path: string | undefined): { source: string; requests: number[][] } {
  const p = path ? resolve(path) : join(repoRoot(), '..', 'shared', 'data', 'traces', 'conversation_trace.jsonl');
  if (existsSync(p)) {
    const requests: number[][] = [];
    for (const line of readFileSync(p, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const o = JSON.parse(line) as { hash_ids?: number[] };
      if (Array.isArray(o.hash_ids) && o.hash_ids.length > 0) requests.push(o.hash_ids);
    }
    return { source: p, requests };
  }
  if (path) throw new Error(`trace not found: ${p}`);
  // Synthetic fallback: sessions that grow turn by turn over a shared system prompt.
  let s = 12345;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  const requests: number[][] = [];
  let next = 1000;
  const sessions: number[][] = [];
  for (let i = 0; i < 12000; i++) {
    if (sessions.length < 200 || rnd() < 0.3) sessions.push([0]);
    const k = Math.floor(rnd() * sessions.length);
    const sess = sessions[k]!;
    const add = 1 + Math.floor(rnd() * 4);
    for (let j = 0; j < add; j++) sess.push(next++);
    requests.push([...sess]);
    if (sess.length > 40) sessions.splice(k, 1);
  }
  return { source: 'synthetic', requests };
}

function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Chained 64-bit block hash for the trace's hash ids (setup only, not timed). */
function chainHashes(ids: number[]): bigint[] {
  const out: bigint[] = [];
  let h = 0x9e3779b97f4a7c15n;
  for (const id of ids) {
    h = BigInt.asUintN(64, (h ^ BigInt(id)) * 0x100000001b3n + 0x632be59bd9b4e019n);
    out.push(h);
  }
  return out;
}

/**
 * The indexer's event stream, built once (untimed, as the harness builds its events before its
 * timer) and replayed by every benchIndexer call. Stored events carry their hashes as u32 pairs
 * (storedFromPairs), as the router receives them from a simulated worker's thread or the vLLM
 * decoder: the counterpart of the harness's Vec<KvCacheStoredBlockData> of plain u64s.
 */
function indexerStream(requests: number[][], workers: number) {
  const ids = Array.from({ length: workers }, (_, i) => `worker-${i}`);
  const events: RouterEvent[] = requests.map((r, i) => ({
    workerId: ids[i % workers]!,
    dpRank: 0,
    eventId: Math.floor(i / workers),
    data: storedFromPairs(null, toPairs(chainHashes(r)), toPairs(r.map((id) => BigInt(id)))),
  }));
  const queries = requests.map((r) => toPairs(r.map((id) => BigInt(id))));
  return { ids, events, queries };
}

function benchIndexer({ ids, events, queries }: ReturnType<typeof indexerStream>) {
  const LOOKAHEAD = 1;
  const ix = new RadixIndexer();
  for (const id of ids) ix.ensureSlot(id, 0);
  const lat = new Float64Array(events.length);
  let ops = 0;
  let storeOps = 0;
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    ix.applyEvent(ev);
    const blocks = ev.data.type === 'stored' ? ev.data.pairs!.block.length >>> 1 : 0;
    ops += blocks;
    storeOps += blocks;
    const q = queries[i + LOOKAHEAD];
    if (q) {
      const n = q.length >>> 1;
      const s0 = process.hrtime.bigint();
      const sc = ix.findMatchesPairs(q, n);
      const s1 = process.hrtime.bigint();
      lat[i] = Number(s1 - s0) / 1000;
      sink += sc[0]!;
      ops += n;
    }
  }
  const elapsedNs = Number(process.hrtime.bigint() - t0);
  const nodes = ix.nodeCount;
  const indexed = ix.indexedBlocks;
  ix.dispose();
  // Timer reads inside the loop are included in elapsed; subtract their measured cost.
  const timerNs = timerOverheadNs() * 2 * (events.length - LOOKAHEAD);
  const found = lat
    .subarray(0, events.length - LOOKAHEAD)
    .slice()
    .sort();
  const rounds = indexerRounds({ ids, events, queries }, ops, true);
  sink += rounds.sink;
  // Stores only.
  const ix3 = new RadixIndexer();
  for (const id of ids) ix3.ensureSlot(id, 0);
  const v0 = process.hrtime.bigint();
  for (let i = 0; i < events.length; i++) ix3.applyEvent(events[i]!);
  const storeNs = Number(process.hrtime.bigint() - v0);
  ix3.dispose();
  return {
    blockOps: ops,
    opsPerS: rounds.opsPerS,
    opsPerCpuS: rounds.opsPerCpuS,
    opsPerSAllRounds: rounds.opsPerSAllRounds,
    opsPerSTimed: ops / (Math.max(1, elapsedNs - timerNs) / 1e9),
    storeOpsPerS: storeOps / (storeNs / 1e9),
    p50: pct(found, 50),
    p99: pct(found, 99),
    mean: found.reduce((a, b) => a + b, 0) / Math.max(1, found.length),
    nodes,
    indexed,
    sink,
  };
}

/**
 * Throughput passes without per-call timers: the same statistic as the Rust harness, a fresh index
 * per round and the median round's ops/s (one round is tens of ms, so a single GC or preemption
 * moves one round a lot); CPU over the counted rounds. Both sides first run WARMUP rounds that are
 * not counted. `dispose`: each round's index is disposed after the timer, as the harness drops its
 * tree after its timer, so its arrays go back to the pool (src/router/pool.ts) for the next index
 * as the tree's nodes go back to Rust's allocator. Without it each index is left to the GC (what a
 * caller that never disposes gets): fresh typed arrays from the OS, with page faults on first touch
 * (8-20 ms of system time in some rounds) and GC work in others.
 */
function indexerRounds({ ids, events, queries }: ReturnType<typeof indexerStream>, ops: number, dispose: boolean) {
  const LOOKAHEAD = 1;
  const roundNs: number[] = [];
  const allNs: number[] = [];
  let cpuUs = 0;
  let sink = 0;
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    const ix = new RadixIndexer();
    for (const id of ids) ix.ensureSlot(id, 0);
    const c0 = process.cpuUsage();
    const u0 = process.hrtime.bigint();
    for (let i = 0; i < events.length; i++) {
      ix.applyEvent(events[i]!);
      const q = queries[i + LOOKAHEAD];
      if (q) sink += ix.findMatchesPairs(q, q.length >>> 1)[0]!;
    }
    const ns = Number(process.hrtime.bigint() - u0);
    const c = process.cpuUsage(c0);
    if (dispose) ix.dispose();
    allNs.push(ns);
    if (round < WARMUP) continue;
    roundNs.push(ns);
    cpuUs += c.user + c.system;
  }
  return {
    opsPerS: ops / (median(roundNs) / 1e9),
    opsPerCpuS: ops / (Math.max(1, (cpuUs * 1000) / ROUNDS) / 1e9),
    opsPerSAllRounds: ops / (median(allNs) / 1e9),
    sink,
  };
}

const DEFAULT_BACKEND = getHashBackend();

let timerCost = -1;
function timerOverheadNs(): number {
  if (timerCost >= 0) return timerCost;
  const n = 100000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) process.hrtime.bigint();
  timerCost = Number(process.hrtime.bigint() - t0) / n;
  return timerCost;
}

function benchRoute(iters: number, breakdown = false) {
  const BS = 16;
  const ISL = 8192;
  const r = new KvRouter(breakdown ? { blockSize: BS, seed: 1, clock: () => performance.now() } : { blockSize: BS, seed: 1 });
  const workers = Array.from({ length: 8 }, (_, i) => `worker-${i}`);
  for (const w of workers) r.addWorker(w);
  let s = 42;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  // 16 shared "system prompts" of 4,096 tokens; each worker caches some of them (via a routed request
  // in approximate-free style: Stored events built from the router's own hashes).
  const prefixes = Array.from({ length: 16 }, () => Array.from({ length: 4096 }, () => rnd() % 150000));
  // Token ids as the request path hands them to route(): a Uint32Array (the tokenizer's output).
  const prompts = Array.from({ length: 64 }, (_, i) =>
    Uint32Array.from([...prefixes[i % 16]!, ...Array.from({ length: ISL - 4096 }, () => rnd() % 150000)]),
  );
  // Warm the indexer: route each prompt once and keep it cached on the chosen worker (as a worker would).
  for (let i = 0; i < prompts.length; i++) {
    const d = r.route({ requestId: `warm-${i}`, tokens: prompts[i]!, nowMs: i });
    r.free(`warm-${i}`, i);
    void d;
  }
  // A few in-flight requests so the load projection has work to do.
  for (let i = 0; i < 16; i++) r.route({ requestId: `bg-${i}`, tokens: prompts[(i * 5) % 64]!, nowMs: 100 });
  const lat = new Float64Array(iters);
  const stages = {
    block_hashing: new Float64Array(iters),
    find_matches: new Float64Array(iters),
    seq_hashing: new Float64Array(iters),
    scheduling: new Float64Array(iters),
  };
  let sink = 0;
  for (let i = 0; i < iters; i++) {
    const toks = prompts[i % 64]!;
    const t0 = process.hrtime.bigint();
    const d = r.route({ requestId: `q-${i}`, tokens: toks, nowMs: 1000 + i });
    const t1 = process.hrtime.bigint();
    lat[i] = Number(t1 - t0) / 1000;
    sink += d.overlap_blocks;
    if (d.timings_us) for (const k of Object.keys(stages) as Array<keyof typeof stages>) stages[k][i] = d.timings_us[k];
    r.free(`q-${i}`, 1000 + i);
  }
  lat.sort();
  const stageP50: Record<string, number> = {};
  if (breakdown) for (const k of Object.keys(stages) as Array<keyof typeof stages>) stageP50[k] = pct(stages[k].sort(), 50);
  return { p50: pct(lat, 50), p99: pct(lat, 99), sink, stageP50 };
}

/** Hashing alone: 8,192 tokens at block size 16 (512 block hashes, 511 chained sequence hashes). */
function benchHashing(iters: number) {
  let s = 7;
  const toks = Array.from({ length: 8192 }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 150000);
  const blk = new Float64Array(iters);
  const seq = new Float64Array(iters);
  const both = new Float64Array(iters);
  const blkU32 = new Float64Array(iters);
  const toksU32 = Uint32Array.from(toks);
  let sink = 0;
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    const local = computeBlockHashPairs(toks, 16);
    const t1 = process.hrtime.bigint();
    const sq = computeSequenceHashPairs(local);
    const t2 = process.hrtime.bigint();
    blk[i] = Number(t1 - t0) / 1000;
    seq[i] = Number(t2 - t1) / 1000;
    both[i] = Number(t2 - t0) / 1000;
    const t3 = process.hrtime.bigint();
    const lu = computeBlockHashPairs(toksU32, 16);
    blkU32[i] = Number(process.hrtime.bigint() - t3) / 1000;
    sink += lu[0]!;
    sink += sq[sq.length - 1]!;
  }
  blk.sort();
  seq.sort();
  both.sort();
  blkU32.sort();
  return { block: pct(blk, 50), seq: pct(seq, 50), both: pct(both, 50), blockU32: pct(blkU32, 50), sink };
}

function compareHashImpls(args: Args) {
  const impls: HashBackend[] = args.hashImpl === 'all' ? ['native', 'js', 'wasm'] : [args.hashImpl];
  const acc = new Map<
    HashBackend,
    { routes: ReturnType<typeof benchRoute>[]; stages: ReturnType<typeof benchRoute>[]; hashing: ReturnType<typeof benchHashing>[] }
  >();
  for (const b of impls) acc.set(b, { routes: [], stages: [], hashing: [] });
  for (let i = 0; i < Math.max(1, args.repeat); i++) {
    for (const b of impls) {
      setHashBackend(b);
      const a = acc.get(b)!;
      a.routes.push(benchRoute(args.routeIters));
      a.stages.push(benchRoute(Math.max(200, args.routeIters >> 2), true));
      a.hashing.push(benchHashing(Math.max(200, args.routeIters >> 2)));
    }
  }
  setHashBackend(DEFAULT_BACKEND);
  const out: Record<string, unknown> = {};
  for (const [b, a] of acc) {
    const stage = (k: string) => round3(median(a.stages.map((r) => r.stageP50[k]!)));
    out[b] = {
      route_p50_us: round3(median(a.routes.map((r) => r.p50))),
      route_p99_us: round3(median(a.routes.map((r) => r.p99))),
      route_stage_p50_us: {
        block_hashing: stage('block_hashing'),
        find_matches: stage('find_matches'),
        seq_hashing: stage('seq_hashing'),
        scheduling: stage('scheduling'),
      },
      block_hash_8192_p50_us: round3(median(a.hashing.map((h) => h.block))),
      block_hash_8192_u32_p50_us: round3(median(a.hashing.map((h) => h.blockU32))),
      seq_hash_512_p50_us: round3(median(a.hashing.map((h) => h.seq))),
      hash_8192_p50_us: round3(median(a.hashing.map((h) => h.both))),
    };
  }
  const def = acc.get(DEFAULT_BACKEND);
  return { hash_impl: out, routes: (def ?? acc.get(impls[0]!)!).routes, routeImpl: def ? DEFAULT_BACKEND : impls[0]! };
}

/** The indexer stream in the harness's format: per request u64 worker, event id, n, n x (block, tokens hash). */
function writeRustEvents(requests: number[][], workers: number, path: string): void {
  let words = 0;
  for (const r of requests) words += 3 + 2 * r.length;
  const buf = new BigUint64Array(words);
  let k = 0;
  requests.forEach((r, i) => {
    buf[k++] = BigInt(i % workers);
    buf[k++] = BigInt(Math.floor(i / workers));
    buf[k++] = BigInt(r.length);
    const chain = chainHashes(r);
    for (let j = 0; j < r.length; j++) {
      buf[k++] = chain[j]!;
      buf[k++] = BigInt(r[j]!);
    }
  });
  writeFileSync(path, new Uint8Array(buf.buffer));
}

/**
 * Build (once) the Rust RadixTree harness and write the event stream for it; `run(rounds)` replays
 * it in a fresh process and returns its JSON line. An error string when that is not possible here.
 */
function dynamoRadixTree(
  requests: number[][],
  workers: number,
): { error: string } | { run: (rounds: number, warmup: number) => Record<string, unknown>; cleanup: () => void } {
  const dir = join(repoRoot(), 'scripts', 'dynamo-radix-bench');
  if (!existsSync(join(dir, 'Cargo.toml'))) return { error: `harness not found at ${dir}` };
  const build = spawnSync('cargo', ['build', '--release', '--quiet', '--manifest-path', join(dir, 'Cargo.toml')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (build.error) return { error: `cargo: ${build.error.message} (install Rust, or pass --no-rust)` };
  if (build.status !== 0)
    return { error: `cargo build failed: ${(build.stderr || build.stdout).trim().split('\n').slice(-8).join(' | ')}` };
  const tmp = mkdtempSync(join(tmpdir(), 'dynamo-radix-'));
  const file = join(tmp, 'events.bin');
  writeRustEvents(requests, workers, file);
  return {
    run: (rounds, warmup) => {
      const run = spawnSync(join(dir, 'target', 'release', 'dynamo-radix-bench'), [file, String(rounds), String(warmup)], {
        encoding: 'utf8',
      });
      if (run.status !== 0) throw new Error(`harness failed: ${(run.stderr || String(run.error)).trim().slice(-400)}`);
      return JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    },
    cleanup: () => rmSync(tmp, { recursive: true, force: true }),
  };
}

/** Rounds per harness process (its figure is the median round; CPU time is summed over them). */
const RUST_ROUNDS = 7;
/** Rounds of our indexer per pair: as many as the harness runs of Dynamo's. */
const ROUNDS = RUST_ROUNDS;
/** Uncounted rounds before them, on both sides. */
const WARMUP = 3;
/**
 * Turns of the two sides (at least). Single pairs range over about ±0.15 here (GC and page
 * faults land in some of our rounds), so the median takes nine.
 */
const INDEXER_PAIRS = 9;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Block hashing on the request path: the ids the router's tokenizer hands over for a ~8k-token chat
 * prompt (ChatTokenizer.encodeChatIds, through the piece cache, a Uint32Array), hashed as route()
 * does. p50 of the block hashes alone and of block + sequence hashes.
 */
async function benchRequestPathHashing(iters: number) {
  const tok = await loadChatTokenizer();
  let s = 11;
  const words = 'the cache router worker block token prefix request model stream latency memory engine event index hash'.split(' ');
  const text = Array.from({ length: 8000 }, () => words[(s = (Math.imul(s, 1103515245) + 12345) >>> 0) % words.length]).join(' ');
  const ids = await tok.encodeChatIds([{ role: 'user', content: text }]);
  const blk = new Float64Array(iters);
  const both = new Float64Array(iters);
  let sink = 0;
  for (let i = 0; i < iters; i++) {
    const again = await tok.encodeChatIds([{ role: 'user', content: text }]); // a fresh array each time, as per request
    const t0 = process.hrtime.bigint();
    const local = computeBlockHashPairs(again, 16);
    const t1 = process.hrtime.bigint();
    const sq = computeSequenceHashPairs(local);
    const t2 = process.hrtime.bigint();
    blk[i] = Number(t1 - t0) / 1000;
    both[i] = Number(t2 - t0) / 1000;
    sink += sq[0]!;
  }
  blk.sort();
  both.sort();
  return {
    tokens: ids.length,
    array: ids.constructor.name,
    block_p50_us: round3(pct(blk, 50)),
    block_and_seq_p50_us: round3(pct(both, 50)),
    sink,
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { source, requests } = loadTrace(args.trace);
  // Our indexer and Dynamo's RadixTree take turns on the same event stream (one of ours, then one
  // process of the harness), so load from elsewhere on the machine falls on both alike; the
  // ratios are medians over these pairs.
  const harness = args.rust ? dynamoRadixTree(requests, args.workers) : undefined;
  const stream = indexerStream(requests, args.workers);
  const runs: ReturnType<typeof benchIndexer>[] = [];
  const rustRuns: Record<string, unknown>[] = [];
  const gcRuns: ReturnType<typeof indexerRounds>[] = [];
  const rustGcRuns: Record<string, unknown>[] = [];
  let rustError = harness && 'error' in harness ? harness.error : undefined;
  try {
    const turn = (ours: () => void, theirs: Record<string, unknown>[]) => {
      for (let i = 0; i < Math.max(INDEXER_PAIRS, args.repeat); i++) {
        ours();
        if (harness && 'run' in harness && !rustError) {
          try {
            theirs.push(harness.run(RUST_ROUNDS, WARMUP));
          } catch (err) {
            rustError = (err as Error).message;
          }
        }
      }
    };
    turn(() => runs.push(benchIndexer(stream)), rustRuns);
    // Then the same turns with each index left to the GC (after the first phase, so its garbage
    // cannot land in the first phase's rounds).
    turn(() => gcRuns.push(indexerRounds(stream, runs[0]!.blockOps, false)), rustGcRuns);
  } finally {
    if (harness && 'cleanup' in harness) harness.cleanup();
  }
  const { hash_impl, routes, routeImpl } = compareHashImpls(args);
  const requestPath = [];
  for (let i = 0; i < Math.max(3, args.repeat); i++) requestPath.push(await benchRequestPathHashing(Math.max(200, args.routeIters >> 2)));
  const ours = Math.round(median(runs.map((r) => r.opsPerS)));
  const rust: Record<string, unknown> | undefined = !args.rust
    ? undefined
    : rustError || rustRuns.length === 0
      ? { error: rustError ?? 'no harness runs' }
      : {
          crate: rustRuns[0]!.crate,
          block_ops: rustRuns[0]!.block_ops,
          block_ops_per_s: Math.round(median(rustRuns.map((r) => r.block_ops_per_s as number))),
          block_ops_per_cpu_s: Math.round(median(rustRuns.map((r) => r.block_ops_per_cpu_s as number))),
          runs: rustRuns.length,
          rounds_per_run: RUST_ROUNDS,
          sink: rustRuns[0]!.sink,
        };
  const paired = (f: (r: (typeof runs)[number]) => number, key: string) =>
    round3(median(rustRuns.map((rr, i) => f(runs[i]!) / (rr[key] as number))));
  const out = {
    trace: source,
    requests: requests.length,
    workers: args.workers,
    repeat: args.repeat,
    block_ops: runs[0]!.blockOps,
    indexer_block_ops_per_s: ours,
    indexer_block_ops_per_cpu_s: Math.round(median(runs.map((r) => r.opsPerCpuS))),
    indexer_block_ops_per_s_warmup_included: Math.round(median(runs.map((r) => r.opsPerSAllRounds))),
    indexer_block_ops_per_s_without_dispose: Math.round(median(gcRuns.map((r) => r.opsPerS))),
    indexer_warmup_rounds: WARMUP,
    indexer_pairs: runs.length,
    store_block_ops_per_s: Math.round(median(runs.map((r) => r.storeOpsPerS))),
    find_matches_p50_us: round3(median(runs.map((r) => r.p50))),
    find_matches_p99_us: round3(median(runs.map((r) => r.p99))),
    find_matches_mean_us: round3(median(runs.map((r) => r.mean))),
    timer_overhead_ns: round3(timerOverheadNs()),
    radix_nodes: runs[0]!.nodes,
    indexed_blocks: runs[0]!.indexed,
    ...(rust
      ? {
          dynamo_radix_tree: rust,
          ...(typeof rust.block_ops_per_s === 'number'
            ? {
                indexer_vs_dynamo_ratio: paired((r) => r.opsPerS, 'block_ops_per_s'),
                indexer_vs_dynamo_cpu_ratio: paired((r) => r.opsPerCpuS, 'block_ops_per_cpu_s'),
                indexer_vs_dynamo_ratio_without_dispose: round3(
                  median(rustGcRuns.map((rr, i) => gcRuns[i]!.opsPerS / (rr.block_ops_per_s as number))),
                ),
                indexer_vs_dynamo_ratios_per_pair: rustRuns.map((rr, i) => round3(runs[i]!.opsPerS / (rr.block_ops_per_s as number))),
              }
            : {}),
        }
      : {}),
    route_isl_tokens: 8192,
    route_block_size: 16,
    route_p50_us: round3(median(routes.map((r) => r.p50))),
    route_p99_us: round3(median(routes.map((r) => r.p99))),
    route_hash_impl: routeImpl,
    request_path_hashing: {
      note: 'ids from ChatTokenizer.encodeChatIds (what the router hashes), block size 16, default hash backend; medians of the repeats',
      tokens: requestPath[0]!.tokens,
      array: requestPath[0]!.array,
      block_hash_p50_us: round3(median(requestPath.map((r) => r.block_p50_us))),
      block_and_seq_hash_p50_us: round3(median(requestPath.map((r) => r.block_and_seq_p50_us))),
    },
    hash_impl,
    node: process.version,
    loadavg_1m: round3(loadavg()[0]!),
  };
  if (args.json) process.stdout.write(JSON.stringify(out) + '\n');
  else for (const [k, v] of Object.entries(out)) process.stdout.write(`${k.padEnd(26)} ${typeof v === 'object' ? JSON.stringify(v) : v}\n`);
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

main().catch((err) => {
  process.stderr.write(`bench-router failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
