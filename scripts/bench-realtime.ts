/**
 * Real-time routing quality on this machine, with no Python: a bounded slice of the Mooncake
 * conversation trace replayed on the wall clock (src/bench/realtime.ts: streaming completions,
 * token-id prompts, client-side TTFT, the workers' reported cached tokens) against dynamo-lab
 * routers started as child processes (their own process groups, 127.0.0.1 only).
 *
 *   --suite modes     one `dynamo-lab router --sim N --mode <m>` per (load, mode), fresh caches:
 *                     kv vs kv-ttft (or --modes) at each --loads factor.
 *   --suite replicas  `dynamo-lab sim` workers (ZMQ KV events) behind: one router; two router
 *                     replicas with --router-replica-sync over a private nats-server, requests
 *                     alternating between them; and the same two replicas without sync. Fresh
 *                     workers for each configuration.
 *
 * Time is compressed: the simulated engines run --sim-speedup times faster than the mocker's
 * model and the trace's arrivals are sent --sim-speedup x load times faster, so "load 7" is the
 * virtual bench's 7x. TTFTs are printed in wall milliseconds and in model milliseconds (x the
 * sim speedup) to compare with `dynamo-lab bench --virtual-time`. Prints one table per suite,
 * the machine load before and after each run, and with --json one JSON document on stdout.
 *
 * Run: npm run bench:realtime [-- --suite modes|replicas|all --requests 300 --loads 1,7
 *        --sim-speedup 4 --workers 8 --modes kv,kv-ttft --block-size 64 --json]
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadMooncakeTrace } from '../src/bench/trace.js';
import { takeRequests, type Workload } from '../src/bench/workload.js';
import { runRealtime } from '../src/bench/realtime.js';
import { summarize, type ModeResult } from '../src/bench/stats.js';
import { engineOracle } from '../src/bench/oracle.js';
import { PromptHasher } from '../src/bench/prompt-hashes.js';
import {
  cliArgv,
  freePort,
  getJson,
  LOOPBACK,
  machineLoad,
  repoRoot,
  say,
  simArgv,
  startDaemon,
  stopDaemon,
  waitFor,
  type Daemon,
  type Load,
} from './peers/common.js';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}
const numList = (s: string) => s.split(',').map(Number);

const suite = flag('suite', 'all');
const requests = Number(flag('requests', '300'));
const loads = numList(flag('loads', '1,7'));
const simSpeedup = Number(flag('sim-speedup', '4'));
const workers = Number(flag('workers', '8'));
const blockSize = Number(flag('block-size', '64'));
const gpuBlocks = Number(flag('gpu-blocks', '16384'));
const modes = flag('modes', 'kv,kv-ttft').split(',');
const replicaLoad = Number(flag('replica-load', String(loads[loads.length - 1] ?? 7)));
const json = process.argv.includes('--json');
const tracePath = flag('trace', join(repoRoot(), '..', 'shared', 'data', 'traces', 'conversation_trace.jsonl'));
if (!['modes', 'replicas', 'all'].includes(suite)) throw new Error(`--suite must be modes, replicas or all, not ${suite}`);
for (const [n, v] of Object.entries({ requests, simSpeedup, workers, blockSize, gpuBlocks, replicaLoad }))
  if (!(v > 0)) throw new Error(`--${n} must be > 0`);
if (!existsSync(tracePath)) throw new Error(`trace ${tracePath} not found (give --trace <jsonl>)`);

const env = { ...process.env, CI: 'true', FORCE_COLOR: '0' };
// The simulated workers serve a 32k context (Qwen2.5's, as vLLM would refuse longer prompts):
// requests that do not fit are left out of the slice (the count is printed).
const maxContext = Number(flag('max-context', '32768'));
const sliced = takeRequests(await loadMooncakeTrace(tracePath, { seed: 0 }), requests);
const fitting = sliced.requests.filter((r) => r.inputLength + r.outputLength <= maxContext);
const workload: Workload = { ...sliced, requests: fitting.map((r, index) => ({ ...r, index })) };
const leftOut = sliced.requests.length - fitting.length;
const dir = await mkdtemp(join(tmpdir(), 'dynamo-lab-bench-realtime-'));
const hasher = new PromptHasher(workload.seed, blockSize, workload.segmentTokens);
const oracle = engineOracle(workload, hasher, workers * gpuBlocks).hit_rate;

interface Row {
  suite: string;
  config: string;
  load: number;
  result: ModeResult;
  load_before: Load;
  load_after: Load;
  wall_s: number;
  /** Replica sync counters per replica after the run (published / applied / unknown worker). */
  sync?: Array<{ published: number; applied: number; unknown_worker: number; decode_errors: number }>;
}
const rows: Row[] = [];

/** A dynamo-lab router child; resolves with its URL once /health answers. */
async function startRouter(name: string, args: string[], seed = 1): Promise<{ d: Daemon; url: string }> {
  const d = startDaemon(name, [...cliArgv(), 'router', ...args, '--host', LOOPBACK, '--port', '0', '--seed', String(seed), '--json'], {
    env,
    logDir: dir,
  });
  const url = await waitFor(
    name,
    async () => {
      const first = d
        .output()
        .split('\n')
        .find((l) => l.startsWith('{'));
      if (!first) return undefined;
      const u = (JSON.parse(first) as { url: string }).url;
      const h = await fetch(`${u}/health`, { signal: AbortSignal.timeout(2000) });
      return h.ok ? u : undefined;
    },
    { timeoutMs: 90_000, daemons: [d] },
  );
  return { d, url };
}

async function modelOf(url: string): Promise<string> {
  const m = (await getJson(`${url}/v1/models`, 10_000)) as { data?: Array<{ id: string }> };
  const id = m.data?.[0]?.id;
  if (!id) throw new Error(`${url}/v1/models lists no model`);
  return id;
}

async function measure(suiteName: string, config: string, load: number, urls: string[]): Promise<Row> {
  const before = await machineLoad();
  say(`[${suiteName}] ${config}, load ${load}x: ${workload.requests.length} requests (load average ${before.loadavg1})`);
  const t0 = performance.now();
  const r = await runRealtime(workload, {
    url: urls[0]!,
    urls,
    model: await modelOf(urls[0]!),
    speedup: simSpeedup * load,
    prompt: 'tokens',
    blockSize,
    timeoutMs: 300_000,
  });
  const after = await machineLoad();
  const result = summarize(r.records).result;
  const row: Row = {
    suite: suiteName,
    config,
    load,
    result,
    load_before: before,
    load_after: after,
    wall_s: (performance.now() - t0) / 1000,
  };
  rows.push(row);
  say(
    `  done in ${((performance.now() - t0) / 1000).toFixed(1)} s: TTFT avg ${result.ttft_ms.avg.toFixed(0)} ms, hit ${(100 * result.prefix_hit_rate).toFixed(1)} %, ${result.errors} errors${result.error_summary ? ` (${result.error_summary.map((e) => `${e.count}x ${e.message}`).join('; ')})` : ''}`,
  );
  return row;
}

async function suiteModes(): Promise<void> {
  for (const load of loads) {
    for (const mode of modes) {
      const { d, url } = await startRouter(`router-${mode}-${load}x`, [
        '--sim',
        String(workers),
        '--mode',
        mode,
        '--block-size',
        String(blockSize),
        '--speedup',
        String(simSpeedup),
        '--health-interval',
        '0',
      ]);
      try {
        await measure('modes', mode, load, [url]);
      } finally {
        await stopDaemon(d);
      }
    }
  }
}

async function startSimWorkers(
  name: string,
): Promise<{ d: Daemon; list: Array<{ id: string; url: string; zmq: string; zmq_replay: string }> }> {
  const d = startDaemon(
    name,
    [...simArgv({ workers, gpuBlocks, blockSize, speedup: simSpeedup }), '--zmq-port', '0', '--replay-port', '0'],
    { env, logDir: dir },
  );
  const list = await waitFor(
    `${workers} sim workers`,
    async () => {
      const first = d
        .output()
        .split('\n')
        .find((l) => l.startsWith('['));
      return first ? (JSON.parse(first) as Array<{ id: string; url: string; zmq: string; zmq_replay: string }>) : undefined;
    },
    { timeoutMs: 90_000, daemons: [d] },
  );
  return { d, list };
}

async function suiteReplicas(): Promise<void> {
  if (spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status !== 0)
    throw new Error('the replicas suite needs nats-server on the PATH (apt-get install nats-server)');
  const natsPort = await freePort();
  const nats = startDaemon('nats-server', ['nats-server', '-a', LOOPBACK, '-p', String(natsPort)], { logDir: dir });
  const natsUrl = `nats://${LOOPBACK}:${natsPort}`;
  try {
    await waitFor('nats-server', async () => (/Server is ready/.test(nats.output()) ? true : undefined), {
      timeoutMs: 20_000,
      daemons: [nats],
    });
    const configs: Array<{ name: string; replicas: number; sync: boolean }> = [
      { name: 'one router', replicas: 1, sync: false },
      { name: '2 replicas, replica sync', replicas: 2, sync: true },
      { name: '2 replicas, no sync', replicas: 2, sync: false },
    ];
    for (const c of configs) {
      const sims = await startSimWorkers(`sims-${c.replicas}-${c.sync ? 'sync' : 'nosync'}`);
      const routers: Array<{ d: Daemon; url: string }> = [];
      try {
        const specs = sims.list.flatMap((w) => [
          '--worker',
          `id=${w.id},url=${w.url},zmq=${w.zmq},replay=${w.zmq_replay},kv_blocks=${gpuBlocks}`,
        ]);
        for (let i = 0; i < c.replicas; i++) {
          routers.push(
            await startRouter(
              `replica-${i}-${c.sync ? 'sync' : 'nosync'}`,
              [
                ...specs,
                '--events',
                'zmq',
                '--mode',
                'kv',
                '--block-size',
                String(blockSize),
                '--health-interval',
                '0',
                ...(c.sync ? ['--router-replica-sync', '--nats', natsUrl] : []),
              ],
              1 + i,
            ), // replicas draw their tie-breaks independently, as separate processes would
          );
        }
        if (c.sync) {
          // Both replicas see each other before traffic starts.
          await waitFor(
            'replica peers',
            async () => {
              const views = await Promise.all(
                routers.map((r) => getJson(`${r.url}/debug/workers`) as Promise<{ replica_sync?: { peers?: unknown[] } }>),
              );
              return views.every((v) => (v.replica_sync?.peers?.length ?? 0) >= 1) ? true : undefined;
            },
            { timeoutMs: 30_000, daemons: routers.map((r) => r.d) },
          );
        }
        const row = await measure(
          'replicas',
          c.name,
          replicaLoad,
          routers.map((r) => r.url),
        );
        if (c.sync) {
          row.sync = [];
          for (const r of routers) {
            const v = (await getJson(`${r.url}/debug/workers`)) as {
              replica_sync?: { published: number; applied: number; unknown_worker: number; decode_errors: number };
            };
            const x = v.replica_sync;
            if (x)
              row.sync.push({
                published: x.published,
                applied: x.applied,
                unknown_worker: x.unknown_worker,
                decode_errors: x.decode_errors,
              });
          }
          say(
            `  replica sync: ${row.sync.map((x, i) => `replica ${i} published ${x.published}, applied ${x.applied}, unknown worker ${x.unknown_worker}`).join('; ')}`,
          );
        }
      } finally {
        for (const r of routers) await stopDaemon(r.d);
        await stopDaemon(sims.d);
      }
    }
  } finally {
    await stopDaemon(nats);
  }
}

if (suite === 'modes' || suite === 'all') await suiteModes();
if (suite === 'replicas' || suite === 'all') await suiteReplicas();
// The children's logs are for a run that failed (its error names the log): after a good run they go.
await rm(dir, { recursive: true, force: true });

const f0 = (x: number) => x.toFixed(0);
const spread = (m: Record<string, number>) => {
  const v = Object.values(m);
  return v.length ? `${Math.min(...v)}-${Math.max(...v)}` : '-';
};
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const lines: string[] = [];
lines.push(
  `conversation trace, first ${sliced.requests.length} requests (${leftOut} over the ${maxContext}-token context left out: ${workload.requests.length} sent); ${workers} sim workers x ${gpuBlocks} blocks of ${blockSize}; sims ${simSpeedup}x faster than the mocker model, arrivals ${simSpeedup} x load faster; oracle hit rate ${pct(oracle)}`,
);
lines.push(
  [
    'suite'.padEnd(8),
    'config'.padEnd(26),
    'load'.padStart(4),
    'TTFT avg / p50 / p99 (wall ms)'.padStart(30),
    'model ms (x sim speedup)'.padStart(26),
    'hit'.padStart(7),
    'predicted'.padStart(9),
    'errors'.padStart(6),
    'reqs/worker min-max'.padStart(19),
    'load avg before/after'.padStart(22),
  ].join('  '),
);
for (const r of rows) {
  const t = r.result.ttft_ms;
  lines.push(
    [
      r.suite.padEnd(8),
      r.config.padEnd(26),
      `${r.load}x`.padStart(4),
      `${f0(t.avg)} / ${f0(t.p50)} / ${f0(t.p99)}`.padStart(30),
      `${f0(t.avg * simSpeedup)} / ${f0(t.p50 * simSpeedup)} / ${f0(t.p99 * simSpeedup)}`.padStart(26),
      pct(r.result.prefix_hit_rate).padStart(7),
      pct(r.result.predicted_hit_rate).padStart(9),
      String(r.result.errors).padStart(6),
      spread(r.result.requests_per_worker).padStart(19),
      `${r.load_before.loadavg1} / ${r.load_after.loadavg1}`.padStart(22),
    ].join('  '),
  );
}
for (const l of lines) say(l);
if (json)
  process.stdout.write(
    JSON.stringify({
      trace: tracePath,
      requests: workload.requests.length,
      left_out_over_context: leftOut,
      workers,
      block_size: blockSize,
      gpu_blocks: gpuBlocks,
      sim_speedup: simSpeedup,
      oracle_prefix_hit_rate: oracle,
      runs: rows,
    }) + '\n',
  );
