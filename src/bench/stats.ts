/**
 * Per-request records and their summary in aiperf's terms (dynamo-facts §7, traces.md §3.5):
 * TTFT = first token - request start; ITL = (latency - TTFT) / (OSL - 1) for OSL >= 2;
 * request latency = last token - request start; throughputs over the benchmark duration
 * (first request sent -> last response). Percentiles interpolate linearly (numpy's default).
 */

export interface RequestRecord {
  index: number;
  /** When the request was sent (ms on the run's clock). */
  startMs: number;
  worker?: string;
  inputTokens: number;
  outputTokens: number;
  ttftMs?: number;
  latencyMs?: number;
  /** Cached prompt tokens as the worker reported them. */
  cachedTokens?: number;
  /** Cached prompt tokens the router predicted when it chose the worker. */
  predictedCachedTokens?: number;
  /** kv-ttft: the router's predicted TTFT on the chosen worker (ms). */
  predictedTtftMs?: number;
  /** The longest cached prefix the router saw on any worker at that moment (tokens). */
  bestOverlapTokens?: number;
  error?: string;
}

export interface Dist {
  avg: number;
  min: number;
  max: number;
  p1: number;
  p5: number;
  p10: number;
  p25: number;
  p50: number;
  p75: number;
  p90: number;
  p95: number;
  p99: number;
  std: number;
  count: number;
}

export const PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 99] as const;

function distribution(values: readonly number[]): Dist {
  const n = values.length;
  if (n === 0)
    return {
      avg: NaN,
      min: NaN,
      max: NaN,
      p1: NaN,
      p5: NaN,
      p10: NaN,
      p25: NaN,
      p50: NaN,
      p75: NaN,
      p90: NaN,
      p95: NaN,
      p99: NaN,
      std: NaN,
      count: 0,
    };
  const a = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of a) sum += v;
  const avg = sum / n;
  let sq = 0;
  for (const v of a) sq += (v - avg) * (v - avg);
  const pct = (p: number) => {
    const x = (p / 100) * (n - 1);
    const lo = Math.floor(x);
    const hi = Math.min(n - 1, lo + 1);
    return a[lo]! + (a[hi]! - a[lo]!) * (x - lo);
  };
  return {
    avg,
    min: a[0]!,
    max: a[n - 1]!,
    p1: pct(1),
    p5: pct(5),
    p10: pct(10),
    p25: pct(25),
    p50: pct(50),
    p75: pct(75),
    p90: pct(90),
    p95: pct(95),
    p99: pct(99),
    std: Math.sqrt(sq / n),
    count: n,
  };
}

/** The ★ contract's per-mode object (plus a few extra fields). */
export interface ModeResult {
  requests: number;
  errors: number;
  ttft_ms: { avg: number; p50: number; p90: number; p99: number };
  itl_ms: { avg: number; p50: number; p90: number; p99: number };
  latency_ms: { avg: number; p50: number; p90: number; p99: number };
  output_tokens_per_s: number;
  requests_per_s: number;
  prefix_hit_rate: number;
  predicted_hit_rate: number;
  /**
   * Virtual time only: the hit rate the router would have predicted had it always picked the
   * worker with the longest cached prefix (what its cost function traded for load balance).
   */
  best_overlap_hit_rate?: number;
  benchmark_duration_s: number;
  /** Requests per worker (load spread). */
  requests_per_worker: Record<string, number>;
  /** Error messages and how often each occurred (at most 5 kinds). */
  error_summary?: Array<{ message: string; count: number }>;
}

export interface Summary {
  result: ModeResult;
  dists: { ttft: Dist; itl: Dist; latency: Dist; isl: Dist; osl: Dist };
  ok: RequestRecord[];
}

const short = (d: Dist) => ({ avg: d.avg, p50: d.p50, p90: d.p90, p99: d.p99 });

export function summarize(records: readonly RequestRecord[]): Summary {
  const ok = records.filter((r) => r.error === undefined && r.latencyMs !== undefined);
  const ttft = distribution(ok.filter((r) => r.ttftMs !== undefined).map((r) => r.ttftMs!));
  const itl = distribution(
    ok.filter((r) => r.outputTokens >= 2 && r.ttftMs !== undefined).map((r) => (r.latencyMs! - r.ttftMs!) / (r.outputTokens - 1)),
  );
  const latency = distribution(ok.map((r) => r.latencyMs!));
  let first = Infinity;
  let last = -Infinity;
  let outTok = 0;
  let prompt = 0;
  let cached = 0;
  let predicted = 0;
  let promptPred = 0;
  let best = 0;
  let promptBest = 0;
  const perWorker: Record<string, number> = {};
  for (const r of records) {
    if (r.startMs < first) first = r.startMs;
    if (r.worker !== undefined) perWorker[r.worker] = (perWorker[r.worker] ?? 0) + 1;
    if (r.predictedCachedTokens !== undefined) {
      predicted += r.predictedCachedTokens;
      promptPred += r.inputTokens;
    }
    if (r.bestOverlapTokens !== undefined) {
      best += r.bestOverlapTokens;
      promptBest += r.inputTokens;
    }
  }
  for (const r of ok) {
    const end = r.startMs + r.latencyMs!;
    if (end > last) last = end;
    outTok += r.outputTokens;
    if (r.cachedTokens !== undefined) {
      cached += r.cachedTokens;
      prompt += r.inputTokens;
    }
  }
  const dur = ok.length > 0 ? (last - first) / 1000 : 0;
  const errs = new Map<string, number>();
  for (const r of records) if (r.error !== undefined) errs.set(r.error, (errs.get(r.error) ?? 0) + 1);
  const result: ModeResult = {
    requests: records.length,
    errors: records.length - ok.length,
    ttft_ms: short(ttft),
    itl_ms: short(itl),
    latency_ms: short(latency),
    output_tokens_per_s: dur > 0 ? outTok / dur : 0,
    requests_per_s: dur > 0 ? ok.length / dur : 0,
    prefix_hit_rate: prompt > 0 ? cached / prompt : 0,
    predicted_hit_rate: promptPred > 0 ? predicted / promptPred : 0,
    benchmark_duration_s: dur,
    requests_per_worker: Object.fromEntries(Object.entries(perWorker).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))),
  };
  if (promptBest > 0) result.best_overlap_hit_rate = best / promptBest;
  if (errs.size > 0) {
    result.error_summary = [...errs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([message, count]) => ({ message, count }));
  }
  return {
    result,
    dists: {
      ttft,
      itl,
      latency,
      isl: distribution(ok.map((r) => r.inputTokens)),
      osl: distribution(ok.map((r) => r.outputTokens)),
    },
    ok,
  };
}
