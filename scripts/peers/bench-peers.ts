/**
 * `npm run bench:peers`: dynamo-lab beside the systems users would otherwise pick, on the same
 * work, back to back on 127.0.0.1 — Dynamo 1.6.1's frontend (KV router) + mocker, dynamo-lab's
 * router + sim workers, sglang-router 0.3.2 in front of dynamo-lab's sims — each with the same N
 * workers x blocks x block size, timing model and speedup, driven by aiperf 0.13.0 with a fixed
 * schedule over the same trace slice. Not part of CI. See README "Peer benchmark".
 *
 *   npm run bench:peers -- [--requests 200] [--repetitions 1] [--rotate] [--systems a,b,..]
 *                          [--speedup 1] [--time-scale 0.5] [--max-input 16384] [--workers 8]
 *                          [--gpu-blocks 16384] [--block-size 16] [--trace file] [--out dir] [--json]
 *   npm run bench:peers -- --differential [--requests 120] [--concurrency 1]
 *   npm run bench:peers -- --fidelity [--requests 40]
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { $ } from 'zx';
import { barChart } from '../../src/bench/svg.js';
import { readAiperf, startAiperf, type AiperfMetrics } from './aiperf.js';
import {
  cacheDir,
  cliArgv,
  interrupted,
  machineLoad,
  parseFlags,
  repoRoot,
  round,
  say,
  sleep,
  stopDaemon,
  tail,
  groupCpuSeconds,
  type Load,
} from './common.js';
import { runDifferential } from './differential.js';
import { runFidelity } from './fidelity.js';
import { checkLoopback, describeOffenders, type LoopbackReport } from './loopback.js';
import { buildModelDir } from './model.js';
import { buildSlice, type Slice } from './slice.js';
import { startSystem, SYSTEMS, type EngineShape, type Running, type SystemSpec } from './systems.js';
import { ensureVenv, PINS } from './venv.js';

const HELP = `Usage: npm run bench:peers -- [options]

Runs Dynamo ${PINS['ai-dynamo']} (frontend + mocker), dynamo-lab (router + sims) and sglang-router ${PINS['sglang-router']}
(in front of dynamo-lab sims) back to back on 127.0.0.1 with aiperf ${PINS.aiperf}, on one trace slice.
The Python venv is created on first use under ${join(cacheDir(), 'peers-venv')} (PyPI only, ~4 min).

Options:
  --systems <ids>       Comma-separated, from: ${SYSTEMS.map((s) => s.id).join(', ')}
                        (default: all; lab-kv-ttft only when \`dynamo-lab router --help\` lists kv-ttft)
  --requests <n>        Trace requests in the slice (default 200)
  --repetitions <n>     Run every system n times; the table shows medians (default 1)
  --rotate              Rotate the system order by one on every repetition
  --speedup <x>         Simulated-time speedup of mocker and sims (default 1)
  --time-scale <f>      Multiply the slice's timestamps by f (default 0.5: twice the trace's rate)
  --max-input <n>       Skip trace lines with more input tokens (default 16384)
  --workers <n>         Workers per system (default 8)
  --gpu-blocks <n>      KV blocks per worker (default 16384)
  --block-size <n>      Tokens per KV block (default 16)
  --trace <jsonl>       Mooncake trace (default ../shared/data/traces/conversation_trace.jsonl)
  --out <dir>           Output directory (default bench-peers-out/<timestamp>)
  --json                Print the result JSON on stdout instead of the table
  --differential        Routing-decision check: Dynamo kv vs dynamo-lab kv on the same requests
  --concurrency <n>     Differential: requests routed back to back per burst (default 4)
  --fidelity            Timing check: one Dynamo mocker worker vs one dynamo-lab sim worker
  -h, --help            This help
`;

interface RunResult {
  system: string;
  label: string;
  repetition: number;
  order: number;
  ok: boolean;
  error?: string;
  metrics?: AiperfMetrics;
  predicted_hit_rate: number | null;
  per_worker_requests: number[];
  load_before: Load;
  load_after: Load;
  loopback: { checks: number; sockets_max: number; ok: boolean; offenders: string };
  /**
   * CPU seconds used while aiperf ran: each of the system's daemons (its whole process group) and
   * aiperf itself (its last sample, taken every 250 ms). On 2 cores the system and the load
   * generator share the CPU, so a system that needs more of it slows itself and aiperf.
   */
  cpu_s?: { system: number; daemons: Record<string, number>; aiperf: number };
  wall_s: number;
  artifacts: string;
}

const median = (xs: number[]): number => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

async function labHasPolicy(name: string): Promise<boolean> {
  const [bin, ...rest] = cliArgv();
  const r = await $({ nothrow: true })`${bin} ${rest} router --help`;
  return new RegExp(`\\b${name}\\b`).test(r.stdout + r.stderr);
}

async function runOne(
  spec: SystemSpec,
  rep: number,
  order: number,
  ctx: {
    venv: Awaited<ReturnType<typeof ensureVenv>>;
    model: Awaited<ReturnType<typeof buildModelDir>>;
    shape: EngineShape;
    slice: Slice;
    out: string;
  },
): Promise<RunResult> {
  const dir = join(ctx.out, 'runs', `${spec.id}-r${rep}`);
  await mkdir(dir, { recursive: true });
  const loadBefore = await machineLoad();
  const t0 = performance.now();
  say(`\n[${spec.id} #${rep}] starting (load ${loadBefore.loadavg1} ${loadBefore.loadavg5} ${loadBefore.loadavg15})`);
  let running: Running | undefined;
  const checks: LoopbackReport[] = [];
  const base = { system: spec.id, label: spec.label, repetition: rep, order, artifacts: dir };
  try {
    running = await startSystem(spec, { venv: ctx.venv, model: ctx.model, shape: ctx.shape, dir, seed: 1 });
    say(
      `[${spec.id} #${rep}] up at ${running.url} in ${((performance.now() - t0) / 1000).toFixed(1)} s; aiperf: ${ctx.slice.requests} requests over ${ctx.slice.durationS.toFixed(0)} s`,
    );
    const pg = () => running!.daemons.map((d) => d.proc.pid!).filter(Boolean);
    checks.push(await checkLoopback(pg()));
    const groups = new Map(running.daemons.filter((d) => d.proc.pid).map((d) => [d.name, d.proc.pid!]));
    const cpuBefore = groupCpuSeconds(groups);
    const aiperf = startAiperf(ctx.venv, ctx.model, running.url, ctx.slice.path, join(dir, 'aiperf'), dir);
    let aiperfCpu = 0;
    const aiperfGroup = new Map([['aiperf', aiperf.proc.pid!]]);
    // While aiperf runs: check the sockets of every process (the system's and aiperf's) now and then.
    let done = false;
    const exit = aiperf.exited.then((c) => {
      done = true;
      return c;
    });
    const watcher = (async () => {
      await sleep(5000);
      while (!done) {
        checks.push(await checkLoopback([...pg(), aiperf.proc.pid!]));
        for (let i = 0; i < 40 && !done; i++) {
          aiperfCpu = Math.max(aiperfCpu, groupCpuSeconds(aiperfGroup).aiperf ?? 0);
          await sleep(250);
        }
      }
    })();
    const timeoutMs = (ctx.slice.durationS + 600) * 1000;
    const code = await Promise.race([exit, sleep(timeoutMs).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      await stopDaemon(aiperf);
      throw new Error(`aiperf did not finish within ${timeoutMs / 1000} s (log ${aiperf.logPath}, temporary files in ${aiperf.tempDir})`);
    }
    await watcher;
    if (code !== 0)
      throw new Error(
        `aiperf exited with ${code}; log ${aiperf.logPath}, its temporary files (child-process logs) in ${aiperf.tempDir}:\n${tail(aiperf.output(), 25)}`,
      );
    const cpuAfter = groupCpuSeconds(groups);
    const daemonsCpu = Object.fromEntries([...groups.keys()].map((n) => [n, round((cpuAfter[n] ?? 0) - (cpuBefore[n] ?? 0), 2)]));
    const systemCpu = Object.values(daemonsCpu).reduce((a, b) => a + b, 0);
    const cpu = {
      system: round(systemCpu, 2),
      daemons: daemonsCpu,
      aiperf: round(aiperfCpu, 2),
    };
    const metrics = await readAiperf(join(dir, 'aiperf'));
    const stats = await running.stats();
    await running.stop();
    running = undefined;
    const bad = checks.filter((c) => !c.ok);
    const loopback = {
      checks: checks.length,
      sockets_max: Math.max(0, ...checks.map((c) => c.sockets)),
      ok: bad.length === 0,
      offenders: bad.map(describeOffenders).join('\n'),
    };
    const loadAfter = await machineLoad();
    const r: RunResult = {
      ...base,
      ok: loopback.ok,
      metrics,
      predicted_hit_rate: stats.predictedHitRate,
      per_worker_requests: stats.perWorker,
      load_before: loadBefore,
      load_after: loadAfter,
      loopback,
      cpu_s: cpu,
      wall_s: round((performance.now() - t0) / 1000, 1),
    };
    if (!loopback.ok) r.error = `a socket left loopback:\n${loopback.offenders}`;
    const cpuText = Object.entries(cpu.daemons)
      .map(([n, v]) => `${n} ${v.toFixed(1)}`)
      .join(' + ');
    say(
      `[${spec.id} #${rep}] ${r.ok ? 'done' : 'FAILED'}: TTFT avg ${metrics.ttft_ms.avg.toFixed(0)} ms, ITL ${metrics.itl_ms.avg.toFixed(1)} ms, hit ${(metrics.hit_rate * 100).toFixed(1)} %, CPU s ${cpuText} (aiperf ${cpu.aiperf.toFixed(1)}), errors ${metrics.errors}, workers [${stats.perWorker.join(' ')}], ${loopback.checks} loopback checks (max ${loopback.sockets_max} sockets)${r.error ? '\n' + r.error : ''}`,
    );
    return r;
  } catch (e) {
    if (running) await running.stop();
    const loadAfter = await machineLoad();
    say(`[${spec.id} #${rep}] FAILED: ${(e as Error).message}`);
    return {
      ...base,
      ok: false,
      error: (e as Error).message,
      predicted_hit_rate: null,
      per_worker_requests: [],
      load_before: loadBefore,
      load_after: loadAfter,
      loopback: { checks: checks.length, sockets_max: 0, ok: checks.every((c) => c.ok), offenders: '' },
      wall_s: round((performance.now() - t0) / 1000, 1),
    };
  }
}

interface SystemSummary {
  system: string;
  label: string;
  runs: number;
  ok_runs: number;
  ttft_avg_ms: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  itl_avg_ms: number;
  e2e_avg_ms: number;
  e2e_p99_ms: number;
  output_tokens_per_s: number;
  hit_rate: number;
  predicted_hit_rate: number | null;
  per_worker_requests: number[];
  /** Median CPU seconds the system's processes used while aiperf ran. */
  cpu_s: number;
  errors: number;
  requests: number;
}

function summarize(spec: SystemSpec, runs: RunResult[]): SystemSummary {
  const ok = runs.filter((r) => r.metrics);
  const med = (f: (m: AiperfMetrics) => number) => round(median(ok.map((r) => f(r.metrics!))), 3);
  const preds = ok.map((r) => r.predicted_hit_rate).filter((x): x is number => x !== null);
  // Per-worker counts of the run whose TTFT avg is the median one (counts from different runs don't mix).
  const mid = [...ok].sort((a, b) => a.metrics!.ttft_ms.avg - b.metrics!.ttft_ms.avg)[(ok.length - 1) >> 1];
  return {
    system: spec.id,
    label: spec.label,
    runs: runs.length,
    ok_runs: runs.filter((r) => r.ok).length,
    ttft_avg_ms: med((m) => m.ttft_ms.avg),
    ttft_p50_ms: med((m) => m.ttft_ms.p50),
    ttft_p99_ms: med((m) => m.ttft_ms.p99),
    itl_avg_ms: med((m) => m.itl_ms.avg),
    e2e_avg_ms: med((m) => m.e2e_ms.avg),
    e2e_p99_ms: med((m) => m.e2e_ms.p99),
    output_tokens_per_s: med((m) => m.output_tokens_per_s),
    hit_rate: med((m) => m.hit_rate),
    predicted_hit_rate: preds.length ? round(median(preds), 4) : null,
    per_worker_requests: mid?.per_worker_requests ?? [],
    cpu_s: round(median(ok.map((r) => r.cpu_s?.system ?? NaN)), 1),
    errors: ok.reduce((s, r) => s + r.metrics!.errors, 0) + runs.filter((r) => !r.metrics).length,
    requests: ok.reduce((s, r) => s + r.metrics!.requests, 0),
  };
}

function ratios(sum: SystemSummary[]): Array<{
  pair: string;
  ttft_avg: number;
  ttft_p99: number;
  itl_avg: number;
  e2e_avg: number;
  output_tokens_per_s: number;
  hit_rate: number;
}> {
  const by = new Map(sum.map((s) => [s.system, s]));
  const pairs: Array<[string, string]> = [
    ['lab-kv', 'dynamo-kv'],
    ['lab-rr', 'dynamo-rr'],
    ['lab-kv-ttft', 'dynamo-kv'],
  ];
  const out = [];
  for (const [a, b] of pairs) {
    const x = by.get(a);
    const y = by.get(b);
    if (!x || !y || !x.ok_runs || !y.ok_runs) continue;
    const q = (p: number, r: number) => round(p / r, 3);
    out.push({
      pair: `${a} / ${b}`,
      ttft_avg: q(x.ttft_avg_ms, y.ttft_avg_ms),
      ttft_p99: q(x.ttft_p99_ms, y.ttft_p99_ms),
      itl_avg: q(x.itl_avg_ms, y.itl_avg_ms),
      e2e_avg: q(x.e2e_avg_ms, y.e2e_avg_ms),
      output_tokens_per_s: q(x.output_tokens_per_s, y.output_tokens_per_s),
      hit_rate: q(x.hit_rate, y.hit_rate),
    });
  }
  return out;
}

function fmt(n: number | null, d = 0): string {
  if (n === null || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}
const pct = (x: number | null) => (x === null || !Number.isFinite(x) ? '-' : `${(x * 100).toFixed(1)} %`);

function table(sum: SystemSummary[], runs: RunResult[]): string {
  const head = [
    'system',
    'TTFT avg',
    'p50',
    'p99',
    'ITL avg',
    'E2E avg',
    'E2E p99',
    'out tok/s',
    'hit',
    'predicted',
    'CPU s',
    'requests per worker',
    'errors',
    'load before -> after',
  ];
  const rows = sum.map((s) => {
    const rs = runs.filter((r) => r.system === s.system);
    const load = rs.map((r) => `${r.load_before.loadavg1.toFixed(2)}->${r.load_after.loadavg1.toFixed(2)}`).join(', ');
    return [
      s.label + (s.ok_runs < s.runs ? ` (${s.runs - s.ok_runs} failed)` : ''),
      fmt(s.ttft_avg_ms),
      fmt(s.ttft_p50_ms),
      fmt(s.ttft_p99_ms),
      fmt(s.itl_avg_ms, 1),
      fmt(s.e2e_avg_ms),
      fmt(s.e2e_p99_ms),
      fmt(s.output_tokens_per_s),
      pct(s.hit_rate),
      pct(s.predicted_hit_rate),
      fmt(s.cpu_s, 1),
      s.per_worker_requests.join(' '),
      String(s.errors),
      load,
    ];
  });
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    '| ' + cells.map((c, i) => (i === 0 || i === 11 || i === 13 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ') + ' |';
  return [
    line(head),
    '|' +
      w
        .map((n, i) => (i === 0 || i === 11 || i === 13 ? ':' : '') + '-'.repeat(n + 1) + (i === 0 || i === 11 || i === 13 ? '' : ':'))
        .join('|') +
      '|',
    ...rows.map(line),
  ].join('\n');
}

/** Both sides must count the same prompt tokens (same tokenizer and chat template): say whether they did. */
function promptTokenLine(runs: RunResult[]): string {
  const by = new Map<string, Set<number>>();
  for (const r of runs) if (r.metrics) (by.get(r.system) ?? by.set(r.system, new Set()).get(r.system)!).add(r.metrics.prompt_tokens);
  const all = new Set([...by.values()].flatMap((s) => [...s]));
  if (all.size === 1)
    return `prompt tokens as every system's usage reported them: ${fmt([...all][0]!)} in every run (identical tokenization)`;
  const errs = new Map<string, number>();
  for (const r of runs) if (r.metrics) errs.set(r.system, (errs.get(r.system) ?? 0) + r.metrics.errors);
  return `prompt tokens differ between systems (failed requests report none): ${[...by].map(([k, v]) => `${k} ${[...v].map((x) => fmt(x)).join('/')}${errs.get(k) ? ` (${errs.get(k)} failed)` : ''}`).join(', ')}`;
}

function csv(rows: Array<Record<string, unknown>>): string {
  if (rows.length === 0) return '';
  const keys = Object.keys(rows[0]!);
  const cell = (v: unknown) => {
    const s = Array.isArray(v) ? v.join(' ') : v === null || v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [keys.join(','), ...rows.map((r) => keys.map((k) => cell(r[k])).join(','))].join('\n') + '\n';
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  const f = parseFlags(argv, {
    systems: 'string',
    requests: 'string',
    repetitions: 'string',
    rotate: 'boolean',
    speedup: 'string',
    'time-scale': 'string',
    'max-input': 'string',
    workers: 'string',
    'gpu-blocks': 'string',
    'block-size': 'string',
    trace: 'string',
    out: 'string',
    json: 'boolean',
    differential: 'boolean',
    fidelity: 'boolean',
    concurrency: 'string',
  });
  const num = (k: string, def: number, min = 0) => {
    const v = f[k] === undefined ? def : Number(f[k]);
    if (!Number.isFinite(v) || v < min) throw new Error(`--${k} must be a number >= ${min} (got ${String(f[k])})`);
    return v;
  };
  const shape: EngineShape = {
    workers: num('workers', 8, 1),
    gpuBlocks: num('gpu-blocks', 16384, 16),
    blockSize: num('block-size', 16, 1),
    speedup: num('speedup', 1, 0),
  };
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = resolve(typeof f.out === 'string' ? f.out : join('bench-peers-out', stamp));
  await mkdir(out, { recursive: true });

  say(`peers: preparing the Python venv (${PINS['ai-dynamo']} / aiperf ${PINS.aiperf} / sglang-router ${PINS['sglang-router']})`);
  const venv = await ensureVenv();
  const model = await buildModelDir(join(cacheDir(), 'peers'));

  if (f.differential)
    return runDifferential({
      venv,
      model,
      shape,
      out,
      requests: num('requests', 120, 1),
      concurrency: num('concurrency', 4, 1),
      trace: f.trace as string | undefined,
      maxInput: num('max-input', 16384, 1),
      json: !!f.json,
    });
  if (f.fidelity)
    return runFidelity({
      venv,
      model,
      shape: { ...shape, workers: 1 },
      out,
      requests: num('requests', 40, 1),
      trace: f.trace as string | undefined,
      maxInput: num('max-input', 16384, 1),
      json: !!f.json,
    });

  const slice = await buildSlice({
    trace: f.trace as string | undefined,
    requests: num('requests', 200, 1),
    maxInput: num('max-input', 16384, 1),
    timeScale: num('time-scale', 0.5, 0),
    out: join(out, 'slice.jsonl'),
  });
  say(
    `slice: ${slice.requests} requests from ${slice.source}, ${slice.durationS.toFixed(0)} s, mean input ${slice.meanInput.toFixed(0)} / output ${slice.meanOutput.toFixed(0)} tokens, ${(slice.inherentReuse * 100).toFixed(1)} % of its 512-token blocks repeat`,
  );

  let specs = SYSTEMS;
  const ttft = await labHasPolicy('kv-ttft');
  if (typeof f.systems === 'string') {
    const want = f.systems
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = want.filter((w) => !SYSTEMS.some((s) => s.id === w));
    if (unknown.length) throw new Error(`unknown system(s) ${unknown.join(', ')}; known: ${SYSTEMS.map((s) => s.id).join(', ')}`);
    specs = SYSTEMS.filter((s) => want.includes(s.id));
    if (specs.some((s) => s.policy === 'kv-ttft') && !ttft)
      throw new Error('lab-kv-ttft: this dynamo-lab has no kv-ttft router mode yet (dynamo-lab router --help does not list it)');
  } else if (!ttft) specs = specs.filter((s) => s.policy !== 'kv-ttft');

  const reps = num('repetitions', 1, 1);
  const runs: RunResult[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    const k = f.rotate ? (rep - 1) % specs.length : 0;
    const order = [...specs.slice(k), ...specs.slice(0, k)];
    for (let i = 0; i < order.length && !interrupted(); i++) runs.push(await runOne(order[i]!, rep, i, { venv, model, shape, slice, out }));
  }

  const summary = specs.map((s) =>
    summarize(
      s,
      runs.filter((r) => r.system === s.id),
    ),
  );
  const rat = ratios(summary);
  const doc = {
    tool: 'dynamo-lab bench:peers',
    versions: {
      ...venv.versions,
      'dynamo-lab': (JSON.parse(await readFile(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version,
    },
    shape,
    slice: {
      source: slice.source,
      requests: slice.requests,
      duration_s: slice.durationS,
      mean_input_tokens: round(slice.meanInput, 1),
      mean_output_tokens: round(slice.meanOutput, 1),
      inherent_block_reuse: round(slice.inherentReuse, 4),
      time_scale: num('time-scale', 0.5, 0),
      max_input: num('max-input', 16384, 1),
    },
    repetitions: reps,
    rotate: !!f.rotate,
    systems: summary,
    ratios_dynamo_lab_over_dynamo: rat,
    runs,
  };
  await writeFile(join(out, 'peers.json'), JSON.stringify(doc, null, 2) + '\n');
  await writeFile(join(out, 'summary.csv'), csv(summary.map((s) => ({ ...s }))));
  await writeFile(
    join(out, 'runs.csv'),
    csv(
      runs.map((r) => ({
        system: r.system,
        repetition: r.repetition,
        order: r.order,
        ok: r.ok,
        ttft_avg_ms: r.metrics?.ttft_ms.avg,
        ttft_p50_ms: r.metrics?.ttft_ms.p50,
        ttft_p99_ms: r.metrics?.ttft_ms.p99,
        itl_avg_ms: r.metrics?.itl_ms.avg,
        e2e_avg_ms: r.metrics?.e2e_ms.avg,
        e2e_p99_ms: r.metrics?.e2e_ms.p99,
        output_tokens_per_s: r.metrics?.output_tokens_per_s,
        hit_rate: r.metrics?.hit_rate,
        predicted_hit_rate: r.predicted_hit_rate,
        per_worker_requests: r.per_worker_requests,
        errors: r.metrics?.errors,
        cpu_system_s: r.cpu_s?.system,
        cpu_aiperf_s: r.cpu_s?.aiperf,
        load_before: r.load_before.loadavg1,
        load_after: r.load_after.loadavg1,
        loopback_ok: r.loopback.ok,
        error: r.error,
      })),
    ),
  );
  const okSum = summary.filter((s) => s.ok_runs > 0);
  await writeFile(
    join(out, 'ttft_by_system.svg'),
    barChart({
      title: `TTFT by system (${slice.requests} trace requests, ${shape.workers} workers, medians of ${reps})`,
      yLabel: 'ms',
      groups: okSum.map((s) => ({
        label: s.system,
        bars: [
          { series: 'avg', value: s.ttft_avg_ms },
          { series: 'p50', value: s.ttft_p50_ms },
          { series: 'p99', value: s.ttft_p99_ms },
        ],
      })),
    }),
  );
  await writeFile(
    join(out, 'hit_rate_by_system.svg'),
    barChart({
      title: 'Prefix hit rate by system',
      yLabel: '% of prompt tokens',
      groups: okSum.map((s) => ({
        label: s.system,
        bars: [
          { series: 'achieved', value: s.hit_rate * 100 },
          { series: 'predicted', value: (s.predicted_hit_rate ?? NaN) * 100 },
        ],
      })),
    }),
  );

  if (f.json) process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  else {
    const lines = [
      '',
      `bench:peers — ${slice.requests} requests (${slice.source.split('/').pop()}, input <= ${doc.slice.max_input}, timestamps x${doc.slice.time_scale}), ${shape.workers} workers x ${shape.gpuBlocks} blocks of ${shape.blockSize}, speedup ${shape.speedup}, ${reps} repetition(s)${f.rotate ? ', rotated' : ''}; times in ms, medians over repetitions`,
      '',
      table(summary, runs),
      '',
      promptTokenLine(runs),
      'dynamo-lab / Dynamo (same run): ' + (rat.length ? '' : 'n/a'),
      ...rat.map(
        (r) =>
          `  ${r.pair}: TTFT avg ${r.ttft_avg}x, TTFT p99 ${r.ttft_p99}x, ITL ${r.itl_avg}x, E2E avg ${r.e2e_avg}x, output tok/s ${r.output_tokens_per_s}x, hit ${r.hit_rate}x`,
      ),
      '',
      `written: ${join(out, 'peers.json')}, summary.csv, runs.csv, ttft_by_system.svg, hit_rate_by_system.svg (per-run logs, aiperf artifacts and, for dynamo-lab systems, the router's and each sim's /metrics at the end of the run under runs/)`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  const failed = runs.filter((r) => !r.ok);
  if (failed.length)
    say(
      `\n${failed.length} run(s) failed: ${failed.map((r) => `${r.system}#${r.repetition}: ${(r.error ?? '').split('\n')[0]}`).join('; ')}`,
    );
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(interrupted() ? 130 : code),
  (e: Error) => {
    say(`bench:peers: ${e.message}`);
    process.exit(interrupted() ? 130 : 1);
  },
);
