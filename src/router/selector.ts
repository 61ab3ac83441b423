/**
 * Worker selection (dynamo-facts §1.2, §1.3): the newest cost function with its defaults, the
 * legacy `--kv-overlap-score-weight` mapping, temperature sampling with a seedable RNG, and the
 * non-KV policies (round-robin, random, least-loaded, power-of-two).
 */

export interface KvRouterConfig {
  /** Credit per device-overlap block (newest; default 1.0). 0 disables the indexer. */
  overlapScoreCredit: number;
  /** Decay of the overlap credit for candidates with more queued prefill (default 0 = off). */
  overlapScoreCreditDecay: number;
  /** Scale of the adjusted prefill blocks (default 1.0; the legacy weight maps here). */
  prefillLoadScale: number;
  /** Cost per active request (default 0). */
  decodeActiveRequestWeight: number;
  /** Softmax temperature; 0 = argmin with uniform tie-break (default 0). */
  temperature: number;
  /** Track active prefill tokens (default true). */
  trackPrefillTokens: boolean;
  /** Book the prompt's sequence hashes so shared prefixes dedup (default true). */
  assumeKvReuse: boolean;
  /** Consume KV events (default true); false = approximate mode (routing decisions + TTL). */
  useKvEvents: boolean;
  /** Approximate-mode block TTL (default 120 000 ms, Dynamo's --router-ttl-secs 120). */
  ttlMs: number;
  /**
   * Approximate-mode retention (`--router-approximate-cache-policy`): `ttl` (default) expires
   * each recorded block ttlMs after it was last routed; `lru` keeps at most the worker's KV
   * capacity in blocks and drops the least recently routed ones beyond it.
   */
  approximateCachePolicy: 'ttl' | 'lru';
  /** KV capacity in blocks per (worker, dp_rank) for the `lru` policy (default 16384, mocker default). */
  approximateCapacityBlocks: number;
  /** Force-free in-flight requests older than this (default 300 000 ms). */
  activeRequestExpiryMs: number;
  /**
   * Credit per host-pinned (CPU offload) overlap block beyond the device overlap (Dynamo's
   * host_cache_hit_weight, default 0.75). Only matters when KV events carry a storage tier.
   */
  hostCacheHitWeight: number;
  /** Credit per disk / external overlap block beyond device + host (disk_cache_hit_weight, default 0.25). */
  diskCacheHitWeight: number;
}

export const DEFAULT_KV_ROUTER_CONFIG: Readonly<KvRouterConfig> = Object.freeze({
  overlapScoreCredit: 1.0,
  overlapScoreCreditDecay: 0,
  prefillLoadScale: 1.0,
  decodeActiveRequestWeight: 0,
  temperature: 0,
  trackPrefillTokens: true,
  assumeKvReuse: true,
  useKvEvents: true,
  ttlMs: 120_000,
  approximateCachePolicy: 'ttl',
  approximateCapacityBlocks: 16_384,
  activeRequestExpiryMs: 300_000,
  hostCacheHitWeight: 0.75,
  diskCacheHitWeight: 0.25,
});

export interface RouterFlags {
  /** Deprecated `--kv-overlap-score-weight w`: prefill_load_scale = w; w == 0 also sets credit 0. */
  kvOverlapScoreWeight?: number;
  overlapScoreCredit?: number;
  overlapScoreCreditDecay?: number;
  prefillLoadScale?: number;
  decodeActiveRequestWeight?: number;
  /** `--router-temperature`. */
  temperature?: number;
  routerTemperature?: number;
  trackPrefillTokens?: boolean;
  assumeKvReuse?: boolean;
  /** `--no-router-kv-events` = useKvEvents false. */
  useKvEvents?: boolean;
  ttlMs?: number;
  /** `--router-ttl-secs`. */
  ttlSecs?: number;
  /** `--router-approximate-cache-policy ttl|lru`. */
  approximateCachePolicy?: string;
  approximateCapacityBlocks?: number;
  activeRequestExpiryMs?: number;
  /** `--load-aware` preset: credit 0, no KV events, no KV-reuse assumption. */
  loadAware?: boolean;
  /** `--router-host-cache-hit-weight` / policy `host_cache_hit_weight`. */
  hostCacheHitWeight?: number;
  /** `--router-disk-cache-hit-weight` / policy `disk_cache_hit_weight`. */
  diskCacheHitWeight?: number;
}

function num(v: unknown, name: string, min = 0): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
    throw new RangeError(`${name} must be a finite number >= ${min}, got ${String(v)}`);
  return v;
}

/** Build a config from CLI-style flags (defaults for everything not given). */
export function configFromFlags(flags: RouterFlags = {}): KvRouterConfig {
  const c: KvRouterConfig = { ...DEFAULT_KV_ROUTER_CONFIG };
  const set = <K extends keyof KvRouterConfig>(k: K, v: KvRouterConfig[K] | undefined) => {
    if (v !== undefined) c[k] = v;
  };
  set('overlapScoreCredit', num(flags.overlapScoreCredit, 'overlapScoreCredit'));
  set('overlapScoreCreditDecay', num(flags.overlapScoreCreditDecay, 'overlapScoreCreditDecay'));
  set('prefillLoadScale', num(flags.prefillLoadScale, 'prefillLoadScale'));
  set('decodeActiveRequestWeight', num(flags.decodeActiveRequestWeight, 'decodeActiveRequestWeight'));
  set('temperature', num(flags.temperature ?? flags.routerTemperature, 'temperature'));
  set('trackPrefillTokens', flags.trackPrefillTokens);
  set('assumeKvReuse', flags.assumeKvReuse);
  set('useKvEvents', flags.useKvEvents);
  const ttlSecs = num(flags.ttlSecs, 'ttlSecs');
  set('ttlMs', num(flags.ttlMs, 'ttlMs') ?? (ttlSecs !== undefined ? ttlSecs * 1000 : undefined));
  set('activeRequestExpiryMs', num(flags.activeRequestExpiryMs, 'activeRequestExpiryMs'));
  set('hostCacheHitWeight', num(flags.hostCacheHitWeight, 'hostCacheHitWeight'));
  set('diskCacheHitWeight', num(flags.diskCacheHitWeight, 'diskCacheHitWeight'));
  if (flags.approximateCachePolicy !== undefined) {
    if (flags.approximateCachePolicy !== 'ttl' && flags.approximateCachePolicy !== 'lru')
      throw new RangeError(`approximate cache policy must be ttl or lru, got ${flags.approximateCachePolicy}`);
    c.approximateCachePolicy = flags.approximateCachePolicy;
  }
  const cap = num(flags.approximateCapacityBlocks, 'approximateCapacityBlocks', 1);
  if (cap !== undefined) c.approximateCapacityBlocks = Math.floor(cap);
  if (flags.loadAware) {
    c.overlapScoreCredit = 0;
    c.useKvEvents = false;
    c.assumeKvReuse = false;
  }
  // Deprecated weight last: like Dynamo's override, it wins over the new flags.
  const w = num(flags.kvOverlapScoreWeight, 'kvOverlapScoreWeight');
  if (w !== undefined) {
    c.prefillLoadScale = w;
    if (w === 0) c.overlapScoreCredit = 0;
  }
  return c;
}

// ------------------------------------------------------------------------------------------
// RNG
// ------------------------------------------------------------------------------------------

/** mulberry32: small, fast, seedable; `next()` is uniform in [0, 1). */
export class Rng {
  private state: number;
  constructor(seed = 0x2545f491) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

// ------------------------------------------------------------------------------------------
// Cost function
// ------------------------------------------------------------------------------------------

export interface CostParams {
  blockSize: number;
  isl: number;
  overlapScoreCredit: number;
  overlapScoreCreditDecay: number;
  prefillLoadScale: number;
  decodeActiveRequestWeight: number;
  trackPrefillTokens: boolean;
  /** Credit per host-tier overlap block (0 when absent). */
  hostCacheHitWeight?: number;
  /** Credit per disk / external-tier overlap block (0 when absent). */
  diskCacheHitWeight?: number;
}

export interface CandidateInput {
  overlapBlocks: number;
  /**
   * Host-pinned blocks continuing the device overlap (Dynamo's host_pinned extension blocks);
   * absent (0) when no KV event carried a lower storage tier.
   */
  hostBlocks?: number;
  /** Disk + external blocks continuing device + host (Dynamo's disk extension blocks). */
  diskBlocks?: number;
  activePrefillTokens: number;
  /** Unique active blocks on the candidate (active decode blocks). */
  activeBlocks: number;
  /** Request blocks not yet active on the candidate (query_len - active prefix depth). */
  newBlocks: number;
  activeRequests: number;
}

export interface CostBreakdown {
  potentialPrefillBlocks: number;
  potentialDecodeBlocks: number;
  overlapCreditBlocks: number;
  cost: number;
}

/**
 * Cost of one candidate (lower is better). `minEligiblePrefill` is the minimum active prefill
 * tokens over the eligible candidates (used only by the credit decay).
 */
export function candidateCost(p: CostParams, c: CandidateInput, minEligiblePrefill: number, out?: CostBreakdown): CostBreakdown {
  const bs = p.blockSize;
  const rawPrefillTokens = p.trackPrefillTokens ? c.activePrefillTokens + p.isl : 0;
  const potentialPrefillBlocks = rawPrefillTokens / bs;
  let decay = 1;
  if (p.trackPrefillTokens && p.overlapScoreCreditDecay > 0) {
    const queuedBlocks = (c.activePrefillTokens - minEligiblePrefill) / bs;
    decay = 1 / (1 + (p.overlapScoreCreditDecay * queuedBlocks) / Math.max(1, Math.ceil(p.isl / bs)));
  }
  let overlapCreditBlocks = p.overlapScoreCredit * decay * c.overlapBlocks;
  // Lower tiers (dynamo-facts 1.2): host and disk blocks earn their own credit, without the
  // decay. Skipped when there are none, so the device-only cost is bit-for-bit unchanged.
  if (c.hostBlocks) overlapCreditBlocks += (p.hostCacheHitWeight ?? 0) * c.hostBlocks;
  if (c.diskBlocks) overlapCreditBlocks += (p.diskCacheHitWeight ?? 0) * c.diskBlocks;
  const adjusted = Math.max(0, potentialPrefillBlocks - overlapCreditBlocks);
  const potentialDecodeBlocks = c.activeBlocks + c.newBlocks;
  const cost = p.prefillLoadScale * adjusted + potentialDecodeBlocks + p.decodeActiveRequestWeight * c.activeRequests;
  const o = out ?? { potentialPrefillBlocks: 0, potentialDecodeBlocks: 0, overlapCreditBlocks: 0, cost: 0 };
  o.potentialPrefillBlocks = potentialPrefillBlocks;
  o.potentialDecodeBlocks = potentialDecodeBlocks;
  o.overlapCreditBlocks = overlapCreditBlocks;
  o.cost = cost;
  return o;
}

/** T == 0: index of the minimum cost, ties broken uniformly by reservoir sampling. */
export function selectMinCost(costs: ArrayLike<number>, rng: Rng): number {
  let best = -1;
  let bestCost = Infinity;
  let ties = 0;
  for (let i = 0; i < costs.length; i++) {
    const c = costs[i]!;
    if (best < 0 || c < bestCost) {
      best = i;
      bestCost = c;
      ties = 1;
    } else if (c === bestCost) {
      ties++;
      if (rng.int(ties) === 0) best = i;
    }
  }
  return best;
}

/** Normalised softmax probabilities: p_i ∝ exp(-(c_i - cmin) / ((cmax - cmin) * T)). */
export function softmaxProbabilities(costs: ArrayLike<number>, temperature: number): number[] {
  const n = costs.length;
  let cmin = Infinity;
  let cmax = -Infinity;
  for (let i = 0; i < n; i++) {
    cmin = Math.min(cmin, costs[i]!);
    cmax = Math.max(cmax, costs[i]!);
  }
  if (n === 0) return [];
  if (cmin === cmax) return new Array<number>(n).fill(1 / n);
  let range = cmax - cmin;
  let shift = cmin;
  let scale = 1;
  if (!Number.isFinite(range)) {
    // Infinite range: rescale by max(|cmin|, |cmax|) first.
    scale = Math.max(Math.abs(cmin), Math.abs(cmax));
    shift = cmin / scale;
    range = cmax / scale - cmin / scale;
  }
  const w = new Array<number>(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const z = costs[i]! / scale - shift;
    w[i] = Math.exp(-z / (range * temperature));
    sum += w[i]!;
  }
  for (let i = 0; i < n; i++) w[i] = w[i]! / sum;
  return w;
}

/** T > 0: sample from the normalised softmax; first i with u <= cumsum (fallback: last). */
export function selectSoftmax(costs: ArrayLike<number>, temperature: number, rng: Rng): number {
  const p = softmaxProbabilities(costs, temperature);
  const u = rng.next();
  let cum = 0;
  for (let i = 0; i < p.length; i++) {
    cum += p[i]!;
    if (u <= cum) return i;
  }
  return p.length - 1;
}

/** Select by cost with temperature T (0 = argmin with uniform ties). */
export function selectByCost(costs: ArrayLike<number>, temperature: number, rng: Rng): number {
  return temperature > 0 ? selectSoftmax(costs, temperature, rng) : selectMinCost(costs, rng);
}

/** Load key used by least-loaded and power-of-two: active blocks, then prefill tokens, then requests. */
export function compareLoad(
  a: { activeBlocks: number; activePrefillTokens: number; activeRequests: number },
  b: { activeBlocks: number; activePrefillTokens: number; activeRequests: number },
): number {
  return a.activeBlocks - b.activeBlocks || a.activePrefillTokens - b.activePrefillTokens || a.activeRequests - b.activeRequests;
}

/** Least loaded with uniform tie-break. */
export function selectLeastLoaded(loads: readonly CandidateInput[], rng: Rng): number {
  let best = -1;
  let ties = 0;
  for (let i = 0; i < loads.length; i++) {
    if (best < 0) {
      best = i;
      ties = 1;
      continue;
    }
    const c = compareLoad(loads[i]!, loads[best]!);
    if (c < 0) {
      best = i;
      ties = 1;
    } else if (c === 0) {
      ties++;
      if (rng.int(ties) === 0) best = i;
    }
  }
  return best;
}

/**
 * Dynamo's device-aware-weighted selection (PushRouter, Dynamo 1.6 era): candidates split into
 * CPU workers and the rest (CUDA or unknown). With only one class present, the least loaded of
 * all. With both, the CPU class gets the request while its in-flight total stays under a budget
 * of floor(nonCpuInflight * cpuCount / (ratio * nonCpuCount)) (integer arithmetic as Dynamo),
 * else the non-CPU class; within the class, the fewest in-flight requests wins (ties uniformly).
 * `ratio` is Dynamo's DYN_ENCODER_CUDA_TO_CPU_RATIO (default 8): how much more a non-CPU worker
 * is expected to take than a CPU worker.
 */
export function selectDeviceAware(loads: readonly CandidateInput[], isCpu: readonly boolean[], ratio: number, rng: Rng): number {
  let cpuCount = 0;
  let cpuInflight = 0;
  let otherInflight = 0;
  for (let i = 0; i < loads.length; i++) {
    if (isCpu[i]) {
      cpuCount++;
      cpuInflight += loads[i]!.activeRequests;
    } else otherInflight += loads[i]!.activeRequests;
  }
  const otherCount = loads.length - cpuCount;
  let useCpu: boolean;
  if (cpuCount === 0) useCpu = false;
  else if (otherCount === 0) useCpu = true;
  else useCpu = cpuInflight < Math.floor((otherInflight * cpuCount) / (Math.max(1, Math.floor(ratio)) * otherCount));
  let best = -1;
  let ties = 0;
  for (let i = 0; i < loads.length; i++) {
    if (!!isCpu[i] !== useCpu) continue;
    if (best < 0 || loads[i]!.activeRequests < loads[best]!.activeRequests) {
      best = i;
      ties = 1;
    } else if (loads[i]!.activeRequests === loads[best]!.activeRequests) {
      ties++;
      if (rng.int(ties) === 0) best = i;
    }
  }
  return best;
}

/** Power of two choices: two distinct random candidates, the less loaded wins (first on a tie). */
export function selectPowerOfTwo(loads: readonly CandidateInput[], rng: Rng): number {
  const n = loads.length;
  if (n <= 1) return n - 1;
  const a = rng.int(n);
  let b = rng.int(n - 1);
  if (b >= a) b++;
  return compareLoad(loads[b]!, loads[a]!) < 0 ? b : a;
}
