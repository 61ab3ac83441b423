/**
 * Replays: virtual time is deterministic and lets the KV router beat round-robin on a
 * shared-prefix workload; real time works against RouterServers with simulated workers (one
 * per mode, as seed 004's two deployments) behind the equal-health checkpoint; the CLI's
 * `bench --virtual-time --json` prints the ★ Bench JSON.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateWorkload } from '../../src/bench/generators.js';
import { checkEqualHealth } from '../../src/bench/health.js';
import { runBench, HealthCheckError } from '../../src/bench/run.js';
import { summarize } from '../../src/bench/stats.js';
import { runVirtual } from '../../src/bench/virtual.js';
import { aiperfCsv, writeOutputs } from '../../src/bench/export.js';
import { tempDir } from '../helpers/temp.js';
import { renderReport } from '../../src/bench/report.js';
import { RouterServer } from '../../src/server/router-server.js';
import { SimWorker } from '../../src/sim/index.js';
import { runCli } from '../helpers/cli.js';

const SHARED = 'shared-prefix:groups=6,prompts=12,system=4096,question=256,output=32,rate=40';

test('virtual time: the same seed gives identical JSON; another seed changes random mode', async () => {
  const w = generateWorkload('multi-turn:sessions=8,turns=3,system=1024,user=128,output=16,delay=50,rate=5', 3);
  const cfg = {
    modes: ['kv', 'random'] as const,
    workers: 3,
    blockSize: 64,
    gpuBlocks: 2048,
    speedups: [1, 4],
    seed: 11,
    target: { kind: 'virtual' as const },
  };
  const a = await runBench(w, { ...cfg, modes: [...cfg.modes] });
  const b = await runBench(w, { ...cfg, modes: [...cfg.modes] });
  const strip = (j: typeof a.json) => JSON.stringify({ ...j, runs: j.runs.map(({ wall_ms: _w, ...r }) => r) });
  assert.equal(strip(a.json), strip(b.json));
  const c = await runBench(w, { ...cfg, modes: [...cfg.modes], seed: 12 });
  assert.notDeepEqual(c.json.modes.random!.requests_per_worker, a.json.modes.random!.requests_per_worker);
  assert.equal(a.json.sweep.length, 2);
  assert.equal(a.json.modes.kv!.requests, 24);
  assert.equal(a.json.modes.kv!.errors, 0);
});

test('virtual time: kv beats round-robin on a shared-prefix workload (hit rate and TTFT)', async () => {
  const w = generateWorkload(SHARED, 1);
  const res: Record<string, ReturnType<typeof summarize>['result']> = {};
  for (const mode of ['kv', 'round-robin'] as const) {
    const r = await runVirtual(w, { mode, workers: 4, speedup: 1, seed: 0 });
    res[mode] = summarize(r.records).result;
  }
  const kv = res.kv!;
  const rr = res['round-robin']!;
  assert.equal(kv.errors + rr.errors, 0);
  assert.ok(kv.prefix_hit_rate > rr.prefix_hit_rate + 0.1, `hit rate kv ${kv.prefix_hit_rate} vs rr ${rr.prefix_hit_rate}`);
  assert.ok(kv.ttft_ms.avg < rr.ttft_ms.avg, `TTFT kv ${kv.ttft_ms.avg} vs rr ${rr.ttft_ms.avg}`);
  // The router's prediction is never above what the workers then report by much.
  assert.ok(kv.predicted_hit_rate <= kv.prefix_hit_rate + 0.05);
});

test('virtual time: tail-only prompt tokens give the same results as full prompts', async () => {
  const w = generateWorkload('prefix-ratio:ratio=0.6,isl=3000,osl=40,groups=4,requests=40,rate=8', 5);
  const a = await runVirtual(w, { mode: 'kv', workers: 3, seed: 2, fullPromptTokens: true });
  const b = await runVirtual(w, { mode: 'kv', workers: 3, seed: 2 });
  assert.deepEqual(a.records, b.records);
  assert.deepEqual(a.engines, b.engines);
});

test('aiperf CSV, report and SVG files', async () => {
  const w = generateWorkload('shared-prefix:groups=2,prompts=4,system=512,question=64,output=8', 0);
  const { json, outcomes } = await runBench(w, {
    modes: ['kv', 'round-robin'],
    workers: 2,
    blockSize: 64,
    gpuBlocks: 1024,
    speedups: [1, 2],
    seed: 0,
    target: { kind: 'virtual' },
  });
  const csv = aiperfCsv(outcomes[0]!);
  const [per, scalars] = csv.split('\n\n');
  assert.match(per!, /^Metric,avg,min,max,p1,p5,p10,p25,p50,p75,p90,p95,p99,std\n/);
  assert.deepEqual(
    per!
      .split('\n')
      .slice(1)
      .map((l) => l.split(',')[0]),
    [
      'Input Sequence Length (tokens)',
      'Inter Token Latency (ms)',
      'Output Sequence Length (tokens)',
      'Request Latency (ms)',
      'Time to First Token (ms)',
    ],
  );
  assert.match(
    scalars!,
    /^Metric,Value\nBenchmark Duration \(sec\),[\d.]+\nError Request Count,0\nOutput Token Throughput \(tokens\/sec\),[\d.]+\nRequest Count,8\nRequest Throughput \(requests\/sec\),[\d.]+\n$/,
  );
  const dir = tempDir('bench-out-');
  const files = await writeOutputs(dir, json, outcomes);
  for (const f of [
    'bench.json',
    'summary.csv',
    'ttft_by_mode.svg',
    'ttft_vs_load.svg',
    'hit_rate_by_mode.svg',
    join('kv-1x', 'profile_export_aiperf.csv'),
    join('round-robin-2x', 'profile_export.jsonl'),
  ]) {
    assert.ok(files.includes(join(dir, f)), f);
  }
  const svg = readFileSync(join(dir, 'ttft_by_mode.svg'), 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /kv avg/);
  assert.match(readFileSync(join(dir, 'ttft_vs_load.svg'), 'utf8'), /<polyline/);
  const report = renderReport(json);
  assert.match(report, /kv vs round-robin/);
  assert.match(report, /TTFT avg by mode/);
  assert.match(report, /TTFT vs load/);
});

test('real time: two routers with sim workers on port 0, equal-health checkpoint, streaming TTFT and cached tokens', async (t) => {
  const started: SimWorker[] = [];
  const routers: RouterServer[] = [];
  t.after(async () => {
    await Promise.all(routers.map((r) => r.close()));
    await Promise.all(started.map((w) => w.close()));
  });
  const urls: Record<string, string> = {};
  for (const mode of ['kv', 'round-robin'] as const) {
    const endpoints = [];
    for (let i = 0; i < 2; i++) {
      const w = await SimWorker.start({ id: `${mode}-w${i}`, blockSize: 64, port: 0, speedup: 20 });
      started.push(w);
      endpoints.push({ id: w.id, url: w.url, onKvEvent: (l: Parameters<SimWorker['onKvEvent']>[0]) => w.onKvEvent(l) });
    }
    const r = await RouterServer.start({ workers: endpoints, blockSize: 64, mode, port: 0, seed: 1 });
    routers.push(r);
    urls[mode] = r.url;
  }
  const v = await checkEqualHealth(Object.values(urls), 2);
  assert.ok(v.ok, v.problems.join('; '));
  assert.deepEqual(
    v.targets.map((x) => [x.kind, x.healthyWorkers]),
    [
      ['dynamo-lab-router', 2],
      ['dynamo-lab-router', 2],
    ],
  );
  const w = generateWorkload('shared-prefix:groups=2,prompts=5,system=1024,question=64,output=6,rate=40', 0);
  const { json } = await runBench(w, {
    modes: ['kv', 'round-robin'],
    workers: 2,
    blockSize: 64,
    gpuBlocks: 16384,
    speedups: [1],
    seed: 0,
    target: { kind: 'http', urls, prompt: 'tokens' },
  });
  for (const mode of ['kv', 'round-robin']) {
    const m = json.modes[mode]!;
    assert.equal(m.errors, 0, JSON.stringify(m.error_summary));
    assert.equal(m.requests, 10);
    assert.ok(m.ttft_ms.avg > 0 && m.latency_ms.avg >= m.ttft_ms.avg);
    assert.ok(m.itl_ms.avg > 0);
    assert.ok(m.prefix_hit_rate > 0, `${mode} hit ${m.prefix_hit_rate}`);
    assert.deepEqual(Object.keys(m.requests_per_worker).sort(), [`${mode}-w0`, `${mode}-w1`]);
  }
  assert.ok(json.modes.kv!.predicted_hit_rate > 0);
  assert.ok(json.modes.kv!.prefix_hit_rate >= json.modes['round-robin']!.prefix_hit_rate);
  assert.equal(json.workers, 2);
  assert.equal(json.runs[0]!.url, urls.kv);

  // The checkpoint refuses unequal targets: expecting 3 workers where there are 2.
  await assert.rejects(
    runBench(w, {
      modes: ['kv'],
      workers: 3,
      blockSize: 64,
      gpuBlocks: 16384,
      speedups: [1],
      seed: 0,
      target: { kind: 'http', urls: { kv: urls.kv! }, prompt: 'tokens' },
    }),
    (e: unknown) => e instanceof HealthCheckError && /2\/3 workers healthy/.test(e.problems.join()),
  );
  // ... and a URL whose router runs another mode than the one measured.
  await assert.rejects(
    runBench(w, {
      modes: ['random'],
      workers: 2,
      blockSize: 64,
      gpuBlocks: 16384,
      speedups: [1],
      seed: 0,
      target: { kind: 'http', urls: { random: urls.kv! }, prompt: 'tokens' },
    }),
    /routes with mode kv/,
  );
});

test('CLI: bench --virtual-time --json prints the Bench JSON contract', async () => {
  const r = await runCli(
    [
      'bench',
      '--synthetic',
      'shared-prefix:groups=3,prompts=4,system=1024,question=64,output=8',
      '--workers',
      '2',
      '--modes',
      'kv,round-robin',
      '--virtual-time',
      '--json',
    ],
    { timeoutMs: 60_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(typeof j.workload, 'object');
  assert.equal(j.workers, 2);
  assert.equal(typeof j.oracle_prefix_hit_rate, 'number');
  const modes = j.modes as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(modes), ['kv', 'round-robin']);
  for (const m of Object.values(modes)) {
    for (const k of ['requests', 'errors', 'output_tokens_per_s', 'requests_per_s', 'prefix_hit_rate', 'predicted_hit_rate'])
      assert.equal(typeof m[k], 'number', k);
    for (const k of ['ttft_ms', 'itl_ms', 'latency_ms']) {
      const d = m[k] as Record<string, number>;
      for (const s of ['avg', 'p50', 'p90', 'p99']) assert.equal(typeof d[s], 'number', `${k}.${s}`);
    }
    assert.equal(m.requests, 12);
  }
});

test('CLI: usage and trace errors say what to try', async () => {
  const bad = await runCli(['bench', '--modes', 'kv,fastest', '--virtual-time']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown mode "fastest"/);
  const dir = tempDir('bench-bad-');
  const p = join(dir, 't.jsonl');
  (await import('node:fs')).writeFileSync(p, '{"timestamp":0,"input_length":10,"output_length":1,"hash_ids":[0]}\n{"timestamp":1}\n');
  const r = await runCli(['bench', '--trace', p, '--virtual-time']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /t\.jsonl line 2: "input_length" must be an integer/);
  const two = await runCli(['bench', '--url', 'http://127.0.0.1:9', '--modes', 'kv,round-robin']);
  assert.equal(two.code, 2);
  assert.match(two.stderr, /one URL cannot be measured as 2 modes/);
  assert.ok(existsSync(dir));
});

test('virtual time: the router sees every KV event of long prompts (128-block prefill chunks), so predicted = cached', async () => {
  // Regression: a full 8,192-token prefill chunk stores exactly 128 blocks of 64 tokens; the
  // indexer dropped such Stored events when they had a parent (parent_block_not_found) and
  // everything chained after them, so the router under-saw the engines' caches by half on the
  // conversation trace. Turns of 17,000 new tokens give several such chunks per request.
  const w = generateWorkload('multi-turn:sessions=3,turns=3,system=512,user=17000,output=8,delay=10,rate=1', 5);
  const r = await runVirtual(w, { mode: 'kv', workers: 2, gpuBlocks: 8192, seed: 0 });
  assert.deepEqual(
    Object.keys(r.routerEvents).filter((k) => !k.endsWith(':ok')),
    [],
  );
  assert.ok((r.routerEvents['stored:ok'] ?? 0) > 0);
  for (const rec of r.records) assert.equal(rec.predictedCachedTokens, rec.cachedTokens, `request ${rec.index}`);
  const s = summarize(r.records).result;
  assert.ok(s.prefix_hit_rate > 0.4, `hit rate ${s.prefix_hit_rate}`);
});
