/**
 * The terminal report: an A/B summary like seed 004's (baseline first, then each mode with
 * its ratio to the baseline), a small text bar chart of TTFT by mode, and with several
 * speedups a TTFT-vs-load table. Plain text (the caller may colour it).
 */
import { bar } from '../base/bar.js';
import type { BenchJson } from './run.js';
import type { ModeResult } from './stats.js';

const fmt = (x: number, d = 0) =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : 'n/a';
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');

/** The mode other modes are compared with: round-robin if measured, else the first. */
export function baselineOf(modes: Record<string, ModeResult>): string | undefined {
  const names = Object.keys(modes);
  return names.includes('round-robin') ? 'round-robin' : names[0];
}

function ratio(base: number, x: number, lowerIsBetter: boolean): string {
  if (!Number.isFinite(base) || !Number.isFinite(x) || base <= 0 || x <= 0) return '';
  const r = lowerIsBetter ? base / x : x / base;
  if (Math.abs(r - 1) < 0.005) return 'same';
  if (r >= 1) return `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}x ${lowerIsBetter ? 'faster' : 'higher'}`;
  return `${(1 / r).toFixed(2)}x ${lowerIsBetter ? 'slower' : 'lower'}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

export function abTable(modes: Record<string, ModeResult>, oracle: number): string {
  const base = baselineOf(modes);
  const names = Object.keys(modes);
  const others = names.filter((n) => n !== base);
  const metrics: Array<[string, (m: ModeResult) => number, (x: number) => string, boolean | null]> = [
    ['TTFT avg (ms)', (m) => m.ttft_ms.avg, (x) => fmt(x), true],
    ['TTFT p50 (ms)', (m) => m.ttft_ms.p50, (x) => fmt(x), true],
    ['TTFT p99 (ms)', (m) => m.ttft_ms.p99, (x) => fmt(x), true],
    ['ITL avg (ms)', (m) => m.itl_ms.avg, (x) => fmt(x, 1), true],
    ['Request latency avg (ms)', (m) => m.latency_ms.avg, (x) => fmt(x), true],
    ['Request latency p99 (ms)', (m) => m.latency_ms.p99, (x) => fmt(x), true],
    ['Output token throughput (tok/s)', (m) => m.output_tokens_per_s, (x) => fmt(x), false],
    ['Request throughput (req/s)', (m) => m.requests_per_s, (x) => fmt(x, 2), false],
    ['Prefix hit rate (workers)', (m) => m.prefix_hit_rate, pct, false],
    ['Predicted hit rate (router)', (m) => m.predicted_hit_rate, pct, false],
    ['Best-overlap hit rate (router view)', (m) => m.best_overlap_hit_rate ?? NaN, pct, null],
    ['Hit rate / oracle', (m) => (oracle > 0 ? m.prefix_hit_rate / oracle : NaN), pct, null],
    ['Requests / errors', (m) => m.requests, () => '', null],
  ];
  const header = ['', ...(base ? [base] : []), ...others.flatMap((o) => (base ? [o, `${o} vs ${base}`] : [o]))];
  const rows = [header];
  for (const [label, get, show, lower] of metrics) {
    const row = [label];
    const cell = (m: ModeResult) => (label === 'Requests / errors' ? `${m.requests} / ${m.errors}` : show(get(m)));
    if (base) row.push(cell(modes[base]!));
    for (const o of others) {
      row.push(cell(modes[o]!));
      if (base) row.push(lower === null ? '' : ratio(get(modes[base]!), get(modes[o]!), lower));
    }
    rows.push(row);
  }
  return table(rows);
}

/** Horizontal text bars, one per label, scaled to the largest value. */
export function textBars(items: Array<{ label: string; value: number; note?: string }>, width = 40): string {
  const max = Math.max(...items.map((i) => (Number.isFinite(i.value) ? i.value : 0)), 0);
  const lw = Math.max(...items.map((i) => i.label.length));
  return items
    .map((i) => {
      const cells = bar(Number.isFinite(i.value) ? i.value : 0, max, width, { empty: ' ', halves: true });
      return `${i.label.padEnd(lw)} │${cells.padEnd(width + 1)} ${i.note ?? ''}`.trimEnd();
    })
    .join('\n');
}

export function renderReport(json: BenchJson): string {
  const w = json.workload;
  const out: string[] = [];
  const time =
    w.time === 'virtual'
      ? 'virtual time (simulated workers + router core in-process)'
      : `real time against ${Object.entries((w.urls as Record<string, string>) ?? {})
          .map(([m, u]) => `${m}=${u}`)
          .join(', ')}`;
  out.push(
    `Workload: ${w.name} — ${fmt(w.requests as number)} requests, ISL avg ${fmt(w.input_tokens_avg as number)} / OSL avg ${fmt(w.output_tokens_avg as number)} tokens, span ${fmt(w.span_s as number)} s`,
  );
  out.push(
    w.time === 'virtual'
      ? `Workers: ${json.workers} simulated × ${fmt(w.gpu_blocks as number)} KV blocks of ${w.block_size} tokens; ${time}`
      : `Workers: ${json.workers} behind each target (oracle sized as ${json.workers} × ${fmt(w.gpu_blocks as number)} blocks of ${w.block_size} tokens: set --gpu-blocks/--block-size to the workers'); ${time}`,
  );
  const o = json.oracle;
  out.push(
    `Oracle prefix hit rate (one LRU holding all workers' capacity): ${pct(json.oracle_prefix_hit_rate)}; infinite cache ${pct(o.infinite_cache_hit_rate as number)}` +
      (w.kind === 'trace' ? ` (inherent reuse of the trace's 512-token blocks: ${pct(o.inherent_reuse_segments as number)})` : ''),
  );
  for (const s of json.sweep) {
    out.push('');
    out.push(`── speedup ${s.speedup}x ${'─'.repeat(50)}`);
    out.push(abTable(s.modes, json.oracle_prefix_hit_rate));
    out.push('');
    out.push('TTFT avg by mode (ms)');
    out.push(
      textBars(
        Object.entries(s.modes).map(([m, r]) => ({
          label: m,
          value: r.ttft_ms.avg,
          note: `${fmt(r.ttft_ms.avg)} ms (p99 ${fmt(r.ttft_ms.p99)})`,
        })),
      ),
    );
    out.push('Prefix hit rate by mode');
    out.push(
      textBars([
        ...Object.entries(s.modes).map(([m, r]) => ({ label: m, value: r.prefix_hit_rate, note: pct(r.prefix_hit_rate) })),
        { label: 'oracle', value: json.oracle_prefix_hit_rate, note: pct(json.oracle_prefix_hit_rate) },
      ]),
    );
  }
  if (json.sweep.length > 1) {
    out.push('');
    out.push('TTFT vs load');
    const modes = [...new Set(json.sweep.flatMap((s) => Object.keys(s.modes)))];
    const rows = [['speedup', ...modes.flatMap((m) => [`${m} avg`, `${m} p99`, `${m} hit`])]];
    for (const s of json.sweep) {
      rows.push([
        `${s.speedup}x`,
        ...modes.flatMap((m) =>
          s.modes[m] ? [fmt(s.modes[m]!.ttft_ms.avg), fmt(s.modes[m]!.ttft_ms.p99), pct(s.modes[m]!.prefix_hit_rate)] : ['', '', ''],
        ),
      ]);
    }
    out.push(table(rows));
  }
  const errs = json.sweep.flatMap((s) =>
    Object.entries(s.modes)
      .filter(([, r]) => r.errors > 0)
      .map(
        ([m, r]) => `${m} ${s.speedup}x: ${r.errors} errors (${(r.error_summary ?? []).map((e) => `${e.count}× ${e.message}`).join('; ')})`,
      ),
  );
  if (errs.length) {
    out.push('');
    out.push('Errors (compare latencies with care: failed requests are not in the latency figures):');
    out.push(...errs.map((e) => `  ${e}`));
  }
  return out.join('\n');
}
