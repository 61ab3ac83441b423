/**
 * The kv vs round-robin comparison, as data: per scenario and mode, the TTFT of the requests
 * that can reuse a prefix (every request after the first of its scenario), taken from the
 * latest demo run of each mode so both sides count the same requests.
 */
import type { DemoResult } from './demo.js';

export interface ModeStats {
  readonly mode: string;
  readonly group: string;
  /** Requests that could reuse a prefix. */
  readonly n: number;
  readonly ttft_avg_ms: number;
  readonly ttft_p50_ms: number;
  readonly cached_tokens: number;
  readonly prompt_tokens: number;
}

export interface ScenarioComparison {
  readonly group: string;
  readonly kv?: ModeStats;
  readonly other?: ModeStats;
  /** other.ttft_avg / kv.ttft_avg; undefined when one side is missing. */
  readonly ratio?: number;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (x: number) => Math.round(x * 10) / 10;

function modeStats(mode: string, group: string, rs: readonly DemoResult[]): ModeStats {
  const ttft = rs.map((r) => r.ttft_ms);
  return {
    mode,
    group,
    n: rs.length,
    ttft_avg_ms: round(ttft.reduce((a, b) => a + b, 0) / Math.max(1, rs.length)),
    ttft_p50_ms: round(percentile(ttft, 50)),
    cached_tokens: rs.reduce((a, r) => a + (r.cached_tokens ?? 0), 0),
    prompt_tokens: rs.reduce((a, r) => a + (r.prompt_tokens ?? 0), 0),
  };
}

/** The results of the latest run of `mode`, or [] when that mode never ran. */
export function latestRun(results: readonly DemoResult[], mode: string): DemoResult[] {
  const runs = results.filter((r) => r.mode === mode).map((r) => r.run ?? 0);
  if (!runs.length) return [];
  const last = Math.max(...runs);
  return results.filter((r) => r.mode === mode && (r.run ?? 0) === last);
}

/**
 * Compare the latest kv run with the latest run of `other` (round-robin by default), per
 * scenario, on the requests that can reuse a prefix. Only scenarios present in both runs with
 * the same number of such requests are compared, so the averages cover the same requests.
 */
export function compareModes(results: readonly DemoResult[], other = 'round-robin', groups?: readonly string[]): ScenarioComparison[] {
  const kv = latestRun(results, 'kv').filter((r) => r.reuses_prefix);
  const ot = latestRun(results, other).filter((r) => r.reuses_prefix);
  const names = groups ?? [...new Set([...kv, ...ot].map((r) => r.group))];
  return names.map((g) => {
    const a = kv.filter((r) => r.group === g);
    const b = ot.filter((r) => r.group === g);
    const ks = a.length ? modeStats('kv', g, a) : undefined;
    const os = b.length ? modeStats(other, g, b) : undefined;
    const ratio = ks && os && ks.n === os.n && ks.ttft_avg_ms > 0 ? Math.round((os.ttft_avg_ms / ks.ttft_avg_ms) * 100) / 100 : undefined;
    return { group: g, kv: ks, other: os, ratio };
  });
}
