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
 * the mocker's own constants at speedup 1. A sixth term covers overload, which the pass
 * count misses: when the KV blocks booked on the worker (plus the request's) exceed its
 * capacity, the request waits in the engine until running requests finish and free blocks,
 * so c5 * max(0, (booked + own blocks) / capacity - 1) (prior: ~10 s per capacity's worth of
 * excess, weakly held; the term is 0 below capacity, so it is learned only under overload).
 * A seventh is the wait for the pass already running on a busy worker (one with requests in
 * flight): a request arriving mid-pass starts with the next one (prior: half a decode step). Each worker's coefficients are the ridge solution of
 *
 *   min  sum_j  g^(n-j) (x_j·θ - y_j)²  +  sum_i  s_i (θ_i - θ0_i)²
 *
 * (recursive least squares with forgetting g, pulled towards the prior θ0 with strength s),
 * so the model works from the first request and follows an engine whose speed the router is
 * not told (another speedup, a real GPU) after a few observations.
 *
 * Pure: the caller feeds observations (features recorded at routing time + the TTFT it saw).
 */

export const TTFT_FEATURES = [
  'pass_ms',
  'prefill_ms_per_batch',
  'prefill_quadratic_ms_per_batch',
  'decode_usage_ms',
  'decode_usage2_ms',
  'kv_overcommit_ms',
  'busy_wait_ms',
] as const;
export const N_TTFT_FEATURES = TTFT_FEATURES.length;

export interface TtftModelConfig {
  /** Prompt tokens per engine pass (vLLM max_num_batched_tokens; mocker default 8192). */
  maxBatchedTokens: number;
  /** KV capacity in blocks of one worker (mocker default 16384), for the decode-usage term. */
  kvBlocks: number;
  /** Forgetting factor per observation (1 = never forget). */
  forgetting: number;
  /** Prior strength of the pooled model, in observations' worth, per coefficient. */
  priorStrength: readonly number[];
  /** How strongly each worker's coefficients lean on the pooled model (observations' worth). */
  workerPriorStrength: number;
  /** Prior coefficients (ms); default: the mocker's polynomial at speedup 1. */
  prior?: readonly number[];
  /**
   * Policy, not model: cost = predicted TTFT + prefillPenalty * predicted own prefill time.
   * The own prefill time is work the chosen worker spends on uncached tokens, which delays
   * every later request there; > 0 makes cache hits worth more than the greedy TTFT says.
   */
  prefillPenalty: number;
  /**
   * Added to prefillPenalty per queued pass of prefill, averaged over the candidates (mean
   * active prefill tokens / maxBatchedTokens): the busier the workers, the more requests
   * will queue behind the extra work, so the more a cache hit is worth.
   */
  prefillPenaltyPerQueuedPass: number;
  /**
   * Policy: ms added per potential decode block (KV blocks booked on the worker plus the
   * request's new ones), as kv's decode term balances KV footprint across workers.
   */
  decodeBlockMs: number;
  /** Upper bound of the load-dependent penalty (keeps overload from starving a hot worker's queue). */
  prefillPenaltyMax: number;
  /**
   * Policy: keep Dynamo's kv choice unless kv-ttft's own choice is predicted to cost less than
   * kv's choice by more than this fraction (plus kvDeferMs): small predicted gains are within
   * the model's error, and leaving kv's choice for them costs cache locality (0 = off).
   */
  kvDeferMargin: number;
  /** Absolute part of the kv deferral band (ms of predicted cost). */
  kvDeferMs: number;
}

/** The mocker's polynomial (sim/timing.ts) expressed in the scaled features, for a batch size B. */
export function mockerPrior(maxBatchedTokens: number): number[] {
  const B = maxBatchedTokens;
  return [16.50142 + 5.74, 1.518344e-2 * B, 4.209989e-7 * B * B, 54.01, -25.74, 10_000, 3];
}

export const DEFAULT_TTFT_MODEL_CONFIG: Readonly<TtftModelConfig> = Object.freeze({
  maxBatchedTokens: 8192,
  kvBlocks: 16384,
  forgetting: 0.998,
  // The pass count and the linear term are well identified by any traffic; the quadratic and
  // the decode-usage terms are nearly collinear with them, so they lean on the prior.
  priorStrength: Object.freeze([2, 2, 10, 10, 10, 0.05, 2]),
  workerPriorStrength: 20,
  prefillPenalty: 0,
  prefillPenaltyPerQueuedPass: 1,
  prefillPenaltyMax: Infinity,
  decodeBlockMs: 0.1,
  kvDeferMargin: 0.02,
  kvDeferMs: 0,
});

/**
 * Features of one prediction. `usage` = KV blocks booked on the worker including the
 * request's own / capacity (may exceed 1). `out` is filled and returned.
 */
export function ttftFeatures(
  queuedTokens: number,
  ownTokens: number,
  usage: number,
  cfg: Pick<TtftModelConfig, 'maxBatchedTokens'>,
  out = new Float64Array(N_TTFT_FEATURES),
  busy = false,
): Float64Array {
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
  out[5] = usage > 1 ? usage - 1 : 0;
  out[6] = busy ? 1 : 0;
  return out;
}

/** Coefficients that must not be negative (a TTFT cannot fall with more work or overload). */
const NON_NEGATIVE = [true, true, true, false, false, true, true];
/** Coefficients a worker model takes from the pooled model (pass_ms, busy_wait_ms). */
const FLEET_SHARED = [0, 6];

/**
 * A fitted model. The pooled model (all workers' observations) leans on the mocker prior;
 * each worker's model leans on the pooled one (`parent`), so a worker with few or skewed
 * observations (a policy sends fewer requests to a worker it predicts slow) stays close to
 * what the fleet shows instead of drifting on its own, and a worker that really differs
 * (another GPU, another speed) moves away from it with its own data.
 */
export class TtftModel {
  /** Data part of the normal equations (forgotten over time), row-major n x n and n. */
  private readonly xtx = new Float64Array(N_TTFT_FEATURES * N_TTFT_FEATURES);
  private readonly xty = new Float64Array(N_TTFT_FEATURES);
  private readonly theta: Float64Array;
  private readonly prior: Float64Array;
  private readonly strength: Float64Array;
  private dirty = false;
  private parentVersion = -1;
  /** Bumped whenever the coefficients may have changed. */
  version = 0;
  observations = 0;
  /** Exponentially weighted mean absolute relative error of the predictions before each update. */
  meanAbsRelError = 0;

  constructor(
    readonly cfg: TtftModelConfig,
    private readonly parent?: TtftModel,
    parentStrength = 20,
  ) {
    this.prior = Float64Array.from(cfg.prior ?? mockerPrior(cfg.maxBatchedTokens));
    this.strength = parent ? new Float64Array(N_TTFT_FEATURES).fill(parentStrength) : Float64Array.from(cfg.priorStrength);
    if (this.prior.length !== N_TTFT_FEATURES || this.strength.length !== N_TTFT_FEATURES)
      throw new RangeError(`the TTFT model has ${N_TTFT_FEATURES} coefficients`);
    this.theta = Float64Array.from(this.prior);
    if (parent) this.dirty = true;
  }

  /** Current coefficients (ms), in TTFT_FEATURES order. */
  coefficients(): Float64Array {
    if (this.parent) {
      const pc = this.parent.coefficients();
      if (this.parent.version !== this.parentVersion) {
        this.parentVersion = this.parent.version;
        this.prior.set(pc);
        this.dirty = true;
      }
    }
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
    this.version++;
  }

  /**
   * Solve (XᵀX + diag(s)) θ = Xᵀy + s∘θ0 by Gaussian elimination with partial pivoting; a
   * coefficient that must not be negative and comes out negative is fixed at 0 and the rest
   * re-solved (a small active-set loop).
   */
  private solve(): void {
    const n = N_TTFT_FEATURES;
    const fixed = new Array<boolean>(n).fill(false);
    const fixVal = new Float64Array(n);
    if (this.parent) {
      // The per-pass and busy-wait terms are the fleet's: a constant the router cannot tell
      // apart per worker (HTTP and tokenisation overhead in real time) would otherwise make
      // every worker with observations look slower than one without, by more than a short
      // cached prefix saves. Per-worker speed shows in the per-token and usage terms.
      for (const i of FLEET_SHARED) {
        fixed[i] = true;
        fixVal[i] = this.prior[i]!;
      }
    }
    const out = new Float64Array(n);
    for (let iter = 0; iter <= n; iter++) {
      if (!solveRidge(this.xtx, this.xty, this.strength, this.prior, fixed, fixVal, out)) break;
      let changed = false;
      for (let i = 0; i < n; i++) {
        if (NON_NEGATIVE[i] && !fixed[i] && out[i]! < 0) {
          fixed[i] = true;
          fixVal[i] = 0;
          changed = true;
        }
      }
      if (!changed) {
        this.theta.set(out);
        break;
      }
    }
    this.dirty = false;
    this.version++;
  }

  /** Coefficients by name (for /debug/decisions). */
  describe(): { coefficients: Record<(typeof TTFT_FEATURES)[number], number>; observations: number; mean_abs_rel_error: number } {
    const t = this.coefficients();
    const coefficients = Object.fromEntries(TTFT_FEATURES.map((k, i) => [k, round4(t[i]!)])) as Record<
      (typeof TTFT_FEATURES)[number],
      number
    >;
    return { coefficients, observations: this.observations, mean_abs_rel_error: round4(this.meanAbsRelError) };
  }
}

/** Ridge solve with some coefficients fixed (at fixVal); false when singular. */
function solveRidge(
  xtx: Float64Array,
  xty: Float64Array,
  strength: Float64Array,
  prior: Float64Array,
  fixed: boolean[],
  fixVal: Float64Array,
  out: Float64Array,
): boolean {
  const n = xty.length;
  const w = n + 1;
  const a = new Float64Array(n * w);
  for (let i = 0; i < n; i++) {
    if (fixed[i]) {
      a[i * w + i] = 1;
      a[i * w + n] = fixVal[i]!;
      continue;
    }
    let rhs = xty[i]! + strength[i]! * prior[i]!;
    for (let j = 0; j < n; j++) {
      if (fixed[j]) rhs -= xtx[i * n + j]! * fixVal[j]!;
      else a[i * w + j] = xtx[i * n + j]! + (i === j ? strength[i]! : 0);
    }
    a[i * w + n] = rhs;
  }
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * w + c]!) > Math.abs(a[p * w + c]!)) p = r;
    if (Math.abs(a[p * w + c]!) < 1e-12) return false;
    if (p !== c) for (let j = 0; j < w; j++) [a[c * w + j], a[p * w + j]] = [a[p * w + j]!, a[c * w + j]!];
    for (let r = c + 1; r < n; r++) {
      const f = a[r * w + c]! / a[c * w + c]!;
      if (f !== 0) for (let j = c; j < w; j++) a[r * w + j] = a[r * w + j]! - f * a[c * w + j]!;
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    let s = a[r * w + n]!;
    for (let j = r + 1; j < n; j++) s -= a[r * w + j]! * out[j]!;
    out[r] = s / a[r * w + r]!;
  }
  return true;
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
