/**
 * Plain-text tables and bar charts for demo results. Plain lines so the same output works in
 * the TUI, in a log file and in CI.
 */
import { bar } from '../base/bar.js';
import type { DemoResult } from './demo.js';

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/**
 * One row per request: worker, cached/prompt tokens with a bar of the cached share, TTFT.
 *
 *   #  prompt                               worker     cached/prompt        ttft ms
 *   1  Explain quantum computing            worker-0    0/33  ░░░░░░░░░░   17.1
 */
export function formatDemoTable(results: readonly DemoResult[], workerIds: readonly string[] = []): string[] {
  const lines = [`${'#'.padStart(2)}  ${'prompt'.padEnd(40)} ${'worker'.padEnd(10)} ${'cached/prompt'.padStart(13)} ${''.padEnd(10)} ${'ttft ms'.padStart(8)}`];
  results.forEach((r, i) => {
    const cached = r.cached_tokens ?? 0;
    const prompt = r.prompt_tokens ?? 0;
    const cells = `${cached}/${prompt}`.padStart(13);
    lines.push(`${String(i + 1).padStart(2)}  ${truncate(r.prompt, 40).padEnd(40)} ${(r.worker ?? '?').padEnd(10)} ${cells} ${bar(cached, prompt, 10)} ${r.ttft_ms.toFixed(1).padStart(8)}`);
  });
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.worker ?? '?', (counts.get(r.worker ?? '?') ?? 0) + 1);
  const ids = workerIds.length ? workerIds : [...counts.keys()];
  lines.push(`requests per worker: ${ids.map((id) => `${id} ${'■'.repeat(counts.get(id) ?? 0)} ${counts.get(id) ?? 0}`).join('   ')}`);
  return lines;
}

/** TTFT and cache reuse per mode, side by side, as bars. Empty when fewer than one mode ran. */
export function formatTtftComparison(results: readonly DemoResult[]): string[] {
  const modes = [...new Set(results.map((r) => r.mode))];
  if (!modes.length) return [];
  const stats = modes.map((mode) => {
    const rs = results.filter((r) => r.mode === mode);
    const ttft = rs.reduce((a, r) => a + r.ttft_ms, 0) / rs.length;
    const cached = rs.reduce((a, r) => a + (r.cached_tokens ?? 0), 0);
    const prompt = rs.reduce((a, r) => a + (r.prompt_tokens ?? 0), 0);
    return { mode, ttft, cached, prompt, n: rs.length };
  });
  const maxTtft = Math.max(...stats.map((s) => s.ttft));
  const lines = ['average TTFT per request (shorter is better)'];
  for (const s of stats) lines.push(`  ${s.mode.padEnd(12)} ${bar(s.ttft, maxTtft, 30)} ${s.ttft.toFixed(1)} ms  (${s.n} requests)`);
  lines.push('prompt tokens served from cache');
  for (const s of stats) lines.push(`  ${s.mode.padEnd(12)} ${bar(s.cached, s.prompt, 30)} ${s.cached}/${s.prompt} (${s.prompt ? ((100 * s.cached) / s.prompt).toFixed(0) : 0} %)`);
  return lines;
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
  const lines = [`${results.length} requests in ${wallSeconds.toFixed(1)} s (${(results.length / Math.max(wallSeconds, 1e-9)).toFixed(1)} req/s)`, 'requests per worker'];
  for (const id of workerIds.length ? workerIds : [...counts.keys()]) lines.push(`  ${id.padEnd(10)} ${bar(counts.get(id) ?? 0, max, 30)} ${counts.get(id) ?? 0}`);
  const ttft = results.map((r) => r.ttft_ms).sort((a, b) => a - b);
  const lat = results.map((r) => r.latency_ms).sort((a, b) => a - b);
  const cached = results.reduce((a, r) => a + (r.cached_tokens ?? 0), 0);
  const prompt = results.reduce((a, r) => a + (r.prompt_tokens ?? 0), 0);
  lines.push(`TTFT ms     p50 ${percentile(ttft, 50).toFixed(1)}  p90 ${percentile(ttft, 90).toFixed(1)}  p99 ${percentile(ttft, 99).toFixed(1)}`);
  lines.push(`latency ms  p50 ${percentile(lat, 50).toFixed(1)}  p90 ${percentile(lat, 90).toFixed(1)}  p99 ${percentile(lat, 99).toFixed(1)}`);
  lines.push(`prompt tokens from cache: ${cached}/${prompt} (${prompt ? ((100 * cached) / prompt).toFixed(0) : 0} %)`);
  return lines;
}

export interface WorkerBar {
  readonly id: string;
  readonly cached_blocks: number;
  readonly active_blocks: number;
  readonly active_prefill_tokens: number;
  readonly active_requests: number;
}

/** Per-worker cached blocks and booked load, as the router sees them. */
export function formatWorkerBars(workers: readonly WorkerBar[]): string[] {
  const maxCached = Math.max(1, ...workers.map((w) => w.cached_blocks));
  const maxActive = Math.max(1, ...workers.map((w) => w.active_blocks));
  const lines = [`${'worker'.padEnd(10)} ${'cached blocks'.padEnd(32)} ${'active blocks'.padEnd(24)} prefill tokens  requests`];
  for (const w of workers) {
    lines.push(`${w.id.padEnd(10)} ${bar(w.cached_blocks, maxCached, 20)} ${String(w.cached_blocks).padStart(6)}     ${bar(w.active_blocks, maxActive, 12)} ${String(w.active_blocks).padStart(6)}     ${String(w.active_prefill_tokens).padStart(8)}  ${String(w.active_requests).padStart(8)}`);
  }
  return lines;
}
