/**
 * Plain-text tables and bar charts for demo results. Plain lines so the same output works in
 * the TUI, in a log file and in CI.
 */
import { bar } from '../base/bar.js';
import type { DemoResult } from './demo.js';
import { resultLines, type TableResult } from './results.js';

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/**
 * One row per request: worker, cached/prompt tokens with a bar of the cached share, TTFT.
 * A table result: the TUI renders it as aligned columns with its header, logs as text.
 */
export function demoTable(results: readonly DemoResult[], workerIds: readonly string[] = [], title?: string): TableResult {
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.worker ?? '?', (counts.get(r.worker ?? '?') ?? 0) + 1);
  const ids = workerIds.length ? workerIds : [...counts.keys()];
  return {
    kind: 'table',
    title,
    columns: [
      { header: '#', align: 'right' },
      { header: 'prompt' },
      { header: 'worker' },
      { header: 'cached/prompt', align: 'right' },
      { header: 'cached share', visual: true },
      { header: 'TTFT ms', align: 'right' },
    ],
    rows: results.map((r, i) => {
      const cached = r.cached_tokens ?? 0;
      const prompt = r.prompt_tokens ?? 0;
      return [String(i + 1), truncate(r.prompt, 64), r.worker ?? '?', `${cached}/${prompt}`, bar(cached, prompt, 10), r.ttft_ms.toFixed(1)];
    }),
    notes: [`requests per worker: ${ids.map((id) => `${id} ${'■'.repeat(counts.get(id) ?? 0)} ${counts.get(id) ?? 0}`).join('   ')}`],
  };
}

/** The same as text lines (the `demo` command, logs). */
export function formatDemoTable(results: readonly DemoResult[], workerIds: readonly string[] = []): string[] {
  return resultLines(demoTable(results, workerIds));
}

function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Concurrent traffic: requests per worker as bars, TTFT and latency percentiles. */
export function formatTraffic(results: readonly DemoResult[], workerIds: readonly string[], wallSeconds: number): string[] {
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.worker ?? '?', (counts.get(r.worker ?? '?') ?? 0) + 1);
  const max = Math.max(1, ...counts.values());
  const lines = [
    `${results.length} requests in ${wallSeconds.toFixed(1)} s (${(results.length / Math.max(wallSeconds, 1e-9)).toFixed(1)} req/s)`,
    'requests per worker',
  ];
  for (const id of workerIds.length ? workerIds : [...counts.keys()])
    lines.push(`  ${id.padEnd(10)} ${bar(counts.get(id) ?? 0, max, 30)} ${counts.get(id) ?? 0}`);
  const ttft = results.map((r) => r.ttft_ms).sort((a, b) => a - b);
  const lat = results.map((r) => r.latency_ms).sort((a, b) => a - b);
  const cached = results.reduce((a, r) => a + (r.cached_tokens ?? 0), 0);
  const prompt = results.reduce((a, r) => a + (r.prompt_tokens ?? 0), 0);
  lines.push(
    `TTFT ms     p50 ${percentile(ttft, 50).toFixed(1)}  p90 ${percentile(ttft, 90).toFixed(1)}  p99 ${percentile(ttft, 99).toFixed(1)}`,
  );
  lines.push(
    `latency ms  p50 ${percentile(lat, 50).toFixed(1)}  p90 ${percentile(lat, 90).toFixed(1)}  p99 ${percentile(lat, 99).toFixed(1)}`,
  );
  lines.push(`prompt tokens from cache: ${cached}/${prompt} (${prompt ? ((100 * cached) / prompt).toFixed(0) : 0} %)`);
  return lines;
}

/**
 * Concurrent traffic as a table result: requests, cached/prompt tokens and TTFT p50 per worker
 * (with a bar of the requests), and the totals and percentiles in the notes.
 */
export function trafficTable(
  results: readonly DemoResult[],
  workerIds: readonly string[],
  wallSeconds: number,
  title?: string,
): TableResult {
  const byWorker = new Map<string, DemoResult[]>();
  for (const r of results) byWorker.set(r.worker ?? '?', [...(byWorker.get(r.worker ?? '?') ?? []), r]);
  const ids = workerIds.length ? [...workerIds, ...[...byWorker.keys()].filter((k) => !workerIds.includes(k))] : [...byWorker.keys()];
  const max = Math.max(1, ...[...byWorker.values()].map((v) => v.length));
  const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
  const sum = (rs: readonly DemoResult[], k: 'cached_tokens' | 'prompt_tokens') => rs.reduce((a, r) => a + (r[k] ?? 0), 0);
  const ttft = sorted(results.map((r) => r.ttft_ms));
  const lat = sorted(results.map((r) => r.latency_ms));
  const cached = sum(results, 'cached_tokens');
  const prompt = sum(results, 'prompt_tokens');
  return {
    kind: 'table',
    title,
    columns: [
      { header: 'worker' },
      { header: 'requests', align: 'right' },
      { header: '', visual: true },
      { header: 'cached/prompt', align: 'right' },
      { header: 'TTFT p50 ms', align: 'right' },
    ],
    rows: ids.map((id) => {
      const rs = byWorker.get(id) ?? [];
      return [
        id,
        String(rs.length),
        bar(rs.length, max, 20),
        `${sum(rs, 'cached_tokens')}/${sum(rs, 'prompt_tokens')}`,
        rs.length ? percentile(sorted(rs.map((r) => r.ttft_ms)), 50).toFixed(1) : '',
      ];
    }),
    notes: [
      `${results.length} requests in ${wallSeconds.toFixed(1)} s (${(results.length / Math.max(wallSeconds, 1e-9)).toFixed(1)} req/s)`,
      `TTFT ms p50 ${percentile(ttft, 50).toFixed(1)}  p90 ${percentile(ttft, 90).toFixed(1)}  p99 ${percentile(ttft, 99).toFixed(1)} · latency ms p50 ${percentile(lat, 50).toFixed(1)}  p90 ${percentile(lat, 90).toFixed(1)}  p99 ${percentile(lat, 99).toFixed(1)}`,
      `prompt tokens from cache: ${cached}/${prompt} (${prompt ? ((100 * cached) / prompt).toFixed(0) : 0} %)`,
    ],
  };
}

export interface WorkerBar {
  readonly id: string;
  readonly cached_blocks: number;
  readonly active_blocks: number;
  readonly active_prefill_tokens: number;
  readonly active_requests: number;
}

/** Per-worker cached blocks and booked load, as the router sees them. */
export function workerTable(workers: readonly WorkerBar[]): TableResult {
  const maxCached = Math.max(1, ...workers.map((w) => w.cached_blocks));
  return {
    kind: 'table',
    columns: [
      { header: 'worker' },
      { header: 'cached blocks', align: 'right' },
      { header: '', visual: true },
      { header: 'active blocks', align: 'right' },
      { header: 'prefill tokens', align: 'right' },
      { header: 'requests', align: 'right' },
    ],
    rows: workers.map((w) => [
      w.id,
      String(w.cached_blocks),
      bar(w.cached_blocks, maxCached, 20),
      String(w.active_blocks),
      String(w.active_prefill_tokens),
      String(w.active_requests),
    ]),
  };
}
