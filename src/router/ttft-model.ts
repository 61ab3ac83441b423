/**
 * Predicted time to first token for the `kv-ttft` policy: a per-worker cost model on the
 * mocker's polynomial form (dynamo-facts §5), fitted online from observed TTFTs.
 *
 * What a worker does with a new request (vLLM-like, FCFS, chunked prefill): it first finishes
 * the prefill already queued (`queued` = the router's booked active prefill tokens on that
 * worker), then the request's own uncached tokens (`own`), in passes of at most
 * `maxBatchedTokens` prompt tokens; the pass that completes the prompt emits the first token.
 * Every pass costs prefill_ms(tokens in the pass) + decode_ms(usage), so with
 *
 *   P = queued + own,  k = max(1, ceil(P / B)) passes,  S2 = sum over passes of tokens²,
 *   u = active KV blocks / KV capacity (decode usage)
 *
 * the mocker's polynomial gives TTFT = c0*k + c1*P + c2*S2 + c3*k*u + c4*k*u². Those five terms
 * are the features (scaled by B so every coefficient is "ms per pass"-sized); the prior is
 * the mocker's own constants at speedup 1. Each worker's coefficients are the ridge solution of
 *
 *   min  sum_j  g^(n-j) (x_j·θ - y_j)²  +  sum_i  s_i (θ_i - θ0_i)²
 *
 * (recursive least squares with forgetting g, pulled towards the prior θ0 with strength s),
 * so the model works from the first request and follows an engine whose speed the router is
 * not told (another speedup, a real GPU) after a few observations.
 *
 * Pure: the caller feeds observations (features recorded at routing time + the TTFT it saw).
 */

export const TTFT_FEATURES = ['pass_ms', 'prefill_ms_per_batch', 'prefill_quadratic_ms_per_batch', 'decode_usage_ms', 'decode_usage2_ms'] as const;
export const N_TTFT_FEATURES = TTFT_FEATURES.length;

export interface TtftModelConfig {
  /** Prompt tokens per engine pass (vLLM max_num_batched_tokens; mocker default 8192). */
  maxBatchedTokens: number;
  /** KV capacity in blocks of one worker (mocker default 16384), for the decode-usage term. */
  kvBlocks: number;
  /** Forgetting factor per observation (1 = never forget). */
  forgetting: number;
  /** Prior strength, in observations' worth, per coefficient. */
  priorStrength: readonly number[];
  /** Prior coefficients (ms); default: the mocker's polynomial at speedup 1. */
  prior?: readonly number[];
}

/** The mocker's polynomial (sim/timing.ts) expressed in the scaled features, for a batch size B. */
export function mockerPrior(maxBatchedTokens: number): number[] {
  const B = maxBatchedTokens;
  return [16.50142 + 5.74, 1.518344e-2 * B, 4.209989e-7 * B * B, 54.01, -25.74];
}

export const DEFAULT_TTFT_MODEL_CONFIG: Readonly<TtftModelConfig> = Object.freeze({
  maxBatchedTokens: 8192,
  kvBlocks: 16384,
  forgetting: 0.998,
  // The pass count and the linear term are well identified by any traffic; the quadratic and
  // the decode-usage terms are nearly collinear with them, so they lean on the prior.
  priorStrength: Object.freeze([2, 2, 50, 50, 50]),
});

/** Features of one prediction. `out` (length 5) is filled and returned. */
export function ttftFeatures(queuedTokens: number, ownTokens: number, usage: number, cfg: Pick<TtftModelConfig, 'maxBatchedTokens'>, out = new Float64Array(N_TTFT_FEATURES)): Float64Array {
  const B = cfg.maxBatchedTokens;
  const P = Math.max(0, queuedTokens) + Math.max(0, ownTokens);
  const full = Math.floor(P / B);
  const rest = P - full * B;
  const k = Math.max(1, full + (rest > 0 ? 1 : 0));
  const u = Math.min(1, Math.max(0, usage));
  out[0] = k;
  out[1] = P / B;
  out[2] = full + (rest / B) * (rest / B);
  out[3] = k * u;
  out[4] = k * u * u;
  return out;
}

/** One worker's fitted model. */
export class TtftModel {
  /** Data part of the normal equations (forgotten over time), row-major 5x5 and 5. */
  private readonly xtx = new Float64Array(N_TTFT_FEATURES * N_TTFT_FEATURES);
  private readonly xty = new Float64Array(N_TTFT_FEATURES);
  private readonly theta: Float64Array;
  private readonly prior: Float64Array;
  private readonly strength: Float64Array;
  private dirty = false;
  observations = 0;
  /** Exponentially weighted mean absolute relative error of the predictions before each update. */
  meanAbsRelError = 0;

  constructor(readonly cfg: TtftModelConfig) {
    this.prior = Float64Array.from(cfg.prior ?? mockerPrior(cfg.maxBatchedTokens));
    this.strength = Float64Array.from(cfg.priorStrength);
    if (this.prior.length !== N_TTFT_FEATURES || this.strength.length !== N_TTFT_FEATURES) throw new RangeError(`the TTFT model has ${N_TTFT_FEATURES} coefficients`);
    this.theta = Float64Array.from(this.prior);
  }

  /** Current coefficients (ms), in TTFT_FEATURES order. */
  coefficients(): Float64Array {
    if (this.dirty) this.solve();
    return this.theta;
  }

  predict(x: ArrayLike<number>): number {
    const t = this.coefficients();
    let y = 0;
    for (let i = 0; i < N_TTFT_FEATURES; i++) y += t[i]! * x[i]!;
    return y > 0 ? y : 0;
  }

  /** Add one observation: features at routing time and the TTFT observed (ms). */
  observe(x: ArrayLike<number>, ttftMs: number): void {
    if (!(ttftMs >= 0) || !Number.isFinite(ttftMs)) return;
    const pred = this.predict(x);
    const rel = Math.abs(pred - ttftMs) / Math.max(1, ttftMs);
    this.meanAbsRelError = this.observations === 0 ? rel : 0.98 * this.meanAbsRelError + 0.02 * rel;
    const g = this.cfg.forgetting;
    const n = N_TTFT_FEATURES;
    for (let i = 0; i < n; i++) {
      this.xty[i] = g * this.xty[i]! + x[i]! * ttftMs;
      for (let j = 0; j < n; j++) this.xtx[i * n + j] = g * this.xtx[i * n + j]! + x[i]! * x[j]!;
    }
    this.observations++;
    this.dirty = true;
  }

  /** Solve (XᵀX + diag(s)) θ = Xᵀy + s∘θ0 by Gaussian elimination with partial pivoting. */
  private solve(): void {
    const n = N_TTFT_FEATURES;
    const a = new Float64Array(n * (n + 1));
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) a[i * (n + 1) + j] = this.xtx[i * n + j]! + (i === j ? this.strength[i]! : 0);
      a[i * (n + 1) + n] = this.xty[i]! + this.strength[i]! * this.prior[i]!;
    }
    const w = n + 1;
    for (let c = 0; c < n; c++) {
      let p = c;
      for (let r = c + 1; r < n; r++) if (Math.abs(a[r * w + c]!) > Math.abs(a[p * w + c]!)) p = r;
      if (Math.abs(a[p * w + c]!) < 1e-12) return; // singular: keep the previous coefficients
      if (p !== c) for (let j = 0; j < w; j++) [a[c * w + j], a[p * w + j]] = [a[p * w + j]!, a[c * w + j]!];
      for (let r = c + 1; r < n; r++) {
        const f = a[r * w + c]! / a[c * w + c]!;
        if (f !== 0) for (let j = c; j < w; j++) a[r * w + j] = a[r * w + j]! - f * a[c * w + j]!;
      }
    }
    for (let r = n - 1; r >= 0; r--) {
      let s = a[r * w + n]!;
      for (let j = r + 1; j < n; j++) s -= a[r * w + j]! * this.theta[j]!;
      this.theta[r] = s / a[r * w + r]!;
    }
    this.dirty = false;
  }

  /** Coefficients by name (for /debug/decisions). */
  describe(): { coefficients: Record<(typeof TTFT_FEATURES)[number], number>; observations: number; mean_abs_rel_error: number } {
    const t = this.coefficients();
    const coefficients = Object.fromEntries(TTFT_FEATURES.map((k, i) => [k, round4(t[i]!)])) as Record<(typeof TTFT_FEATURES)[number], number>;
    return { coefficients, observations: this.observations, mean_abs_rel_error: round4(this.meanAbsRelError) };
  }
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
