/**
 * The engine's latency histograms (vLLM's buckets). The worker exposes them over /metrics with
 * prom-client (prometheus.ts), fed through `tap`.
 */

export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }

  private readonly taps: Array<(v: number) => void> = [];

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
    for (const tap of this.taps) tap(v);
  }

  /** Also hand every later observation to `fn`. */
  tap(fn: (v: number) => void): void {
    this.taps.push(fn);
  }
}

/** vLLM's buckets for time to first token (seconds). */
export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/** vLLM's buckets for inter-token latency (seconds). */
export const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
