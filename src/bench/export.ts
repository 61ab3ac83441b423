/**
 * Files written to --out:
 *
 *   bench.json                                the ★ Bench JSON (same document as --json)
 *   summary.csv                               one row per (speedup, mode) with hit rates
 *   <mode>[-<speedup>x]/profile_export_aiperf.csv   aiperf's CSV layout, metric names, units
 *   <mode>[-<speedup>x]/profile_export.jsonl  one line per request, aiperf-style metrics
 *   ttft_by_mode.svg                          TTFT avg / p99 per mode (grouped by speedup)
 *   hit_rate_by_mode.svg                      prefix hit rate per mode next to the oracle
 *   ttft_vs_load.svg                          TTFT avg per mode across speedups (several speedups)
 *
 * aiperf CSV (traces.md §3.5): a per-request section with header
 * `Metric,avg,min,max,p1,p5,p10,p25,p50,p75,p90,p95,p99,std`, rows "<Header> (<unit>)" sorted by
 * metric tag; a blank line; then `Metric,Value` scalars. Floats with 2 decimals.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchJson, RunOutcome } from './run.js';
import { PERCENTILES, type Dist } from './stats.js';
import { barChart, lineChart } from './svg.js';

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '');

export function aiperfCsv(o: RunOutcome): string {
  const d = o.summary.dists;
  const r = o.summary.result;
  const rowsByTag: Array<[string, string, Dist]> = [
    ['input_sequence_length', 'Input Sequence Length (tokens)', d.isl],
    ['inter_token_latency', 'Inter Token Latency (ms)', d.itl],
    ['output_sequence_length', 'Output Sequence Length (tokens)', d.osl],
    ['request_latency', 'Request Latency (ms)', d.latency],
    ['time_to_first_token', 'Time to First Token (ms)', d.ttft],
  ];
  rowsByTag.sort((a, b) => a[0].localeCompare(b[0]));
  const lines = [`Metric,avg,min,max,${PERCENTILES.map((p) => `p${p}`).join(',')},std`];
  for (const [, name, dist] of rowsByTag) {
    if (dist.count === 0) continue;
    lines.push(
      [name, dist.avg, dist.min, dist.max, ...PERCENTILES.map((p) => dist[`p${p}` as keyof Dist] as number), dist.std]
        .map((v) => (typeof v === 'string' ? v : f2(v)))
        .join(','),
    );
  }
  lines.push('');
  lines.push('Metric,Value');
  const scalars: Array<[string, string, number]> = [
    ['benchmark_duration', 'Benchmark Duration (sec)', r.benchmark_duration_s],
    ['error_request_count', 'Error Request Count', r.errors],
    ['output_token_throughput', 'Output Token Throughput (tokens/sec)', r.output_tokens_per_s],
    ['request_count', 'Request Count', r.requests - r.errors],
    ['request_throughput', 'Request Throughput (requests/sec)', r.requests_per_s],
  ];
  scalars.sort((a, b) => a[0].localeCompare(b[0]));
  for (const [, name, v] of scalars) lines.push(`${name},${Number.isInteger(v) ? String(v) : f2(v)}`);
  return lines.join('\n') + '\n';
}

function perRequestJsonl(o: RunOutcome): string {
  const out: string[] = [];
  for (const r of o.records) {
    const metrics: Record<string, { value: number; unit: string }> = {
      input_sequence_length: { value: r.inputTokens, unit: 'tokens' },
    };
    if (r.ttftMs !== undefined) metrics.time_to_first_token = { value: r.ttftMs, unit: 'ms' };
    if (r.latencyMs !== undefined) {
      metrics.request_latency = { value: r.latencyMs, unit: 'ms' };
      metrics.output_sequence_length = { value: r.outputTokens, unit: 'tokens' };
      if (r.ttftMs !== undefined && r.outputTokens >= 2)
        metrics.inter_token_latency = { value: (r.latencyMs - r.ttftMs) / (r.outputTokens - 1), unit: 'ms' };
    }
    if (r.cachedTokens !== undefined) metrics.cached_tokens = { value: r.cachedTokens, unit: 'tokens' };
    out.push(
      JSON.stringify({
        metadata: {
          request_index: r.index,
          request_start_ms: r.startMs,
          worker_id: r.worker ?? null,
          predicted_cached_tokens: r.predictedCachedTokens ?? null,
        },
        metrics,
        error: r.error ? { message: r.error } : null,
      }),
    );
  }
  return out.join('\n') + '\n';
}

function summaryCsv(json: BenchJson): string {
  const lines = [
    'speedup,mode,requests,errors,ttft_avg_ms,ttft_p50_ms,ttft_p90_ms,ttft_p99_ms,itl_avg_ms,latency_avg_ms,latency_p99_ms,output_tokens_per_s,requests_per_s,prefix_hit_rate,predicted_hit_rate,oracle_prefix_hit_rate',
  ];
  for (const s of json.sweep) {
    for (const [m, r] of Object.entries(s.modes)) {
      lines.push(
        [
          s.speedup,
          m,
          r.requests,
          r.errors,
          r.ttft_ms.avg,
          r.ttft_ms.p50,
          r.ttft_ms.p90,
          r.ttft_ms.p99,
          r.itl_ms.avg,
          r.latency_ms.avg,
          r.latency_ms.p99,
          r.output_tokens_per_s,
          r.requests_per_s,
        ]
          .map((v) => (typeof v === 'number' && !Number.isInteger(v) ? f2(v) : String(v)))
          .concat([r.prefix_hit_rate.toFixed(4), r.predicted_hit_rate.toFixed(4), json.oracle_prefix_hit_rate.toFixed(4)])
          .join(','),
      );
    }
  }
  return lines.join('\n') + '\n';
}

function runDirName(mode: string, speedup: number, several: boolean): string {
  return several ? `${mode}-${speedup}x` : mode;
}

export async function writeOutputs(dir: string, json: BenchJson, outcomes: RunOutcome[]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const put = async (name: string, text: string) => {
    const p = join(dir, name);
    await writeFile(p, text);
    written.push(p);
  };
  await put('bench.json', JSON.stringify(json, null, 2) + '\n');
  await put('summary.csv', summaryCsv(json));
  const several = json.sweep.length > 1;
  for (const o of outcomes) {
    const sub = runDirName(o.mode, o.speedup, several);
    await mkdir(join(dir, sub), { recursive: true });
    await put(join(sub, 'profile_export_aiperf.csv'), aiperfCsv(o));
    await put(join(sub, 'profile_export.jsonl'), perRequestJsonl(o));
  }
  const modes = [...new Set(json.sweep.flatMap((s) => Object.keys(s.modes)))];
  await put(
    'ttft_by_mode.svg',
    barChart({
      title: `Time to first token by routing mode (${json.workers} workers)`,
      yLabel: 'TTFT (ms)',
      groups: json.sweep.map((s) => ({
        label: several ? `${s.speedup}x` : `speedup ${s.speedup}x`,
        bars: modes.flatMap((m) =>
          s.modes[m]
            ? [
                { series: `${m} avg`, value: s.modes[m]!.ttft_ms.avg },
                { series: `${m} p99`, value: s.modes[m]!.ttft_ms.p99 },
              ]
            : [],
        ),
      })),
    }),
  );
  await put(
    'hit_rate_by_mode.svg',
    barChart({
      title: 'Prefix hit rate (cached prompt tokens / prompt tokens) vs oracle',
      yLabel: 'hit rate (%)',
      groups: json.sweep.map((s) => ({
        label: `${s.speedup}x`,
        bars: [
          ...modes.filter((m) => s.modes[m]).map((m) => ({ series: m, value: s.modes[m]!.prefix_hit_rate * 100 })),
          { series: 'oracle', value: json.oracle_prefix_hit_rate * 100 },
        ],
      })),
    }),
  );
  if (several) {
    await put(
      'ttft_vs_load.svg',
      lineChart({
        title: 'TTFT vs load (trace speedup)',
        xLabel: 'arrival speedup (x)',
        yLabel: 'TTFT avg (ms, log scale)',
        logY: true,
        series: modes.map((m) => ({
          name: m,
          points: json.sweep.filter((s) => s.modes[m]).map((s) => ({ x: s.speedup, y: s.modes[m]!.ttft_ms.avg })),
        })),
      }),
    );
  }
  return written;
}
