/**
 * KvRouter: the facade the HTTP server uses. Owns the indexer (prefix cache state per worker),
 * the active-load tracker and the selector, and makes Dynamo's routing decision for a request:
 * hash the prompt's full blocks, find per-worker overlaps, project each candidate's load, pick by
 * cost (or by a simple policy), then book the request on the chosen worker.
 *
 * Pure: no I/O, no clock. Time is passed in as `nowMs`; an optional injected clock is only used
 * to fill `timings_us`.
 *
 * Over 400 lines on purpose: it is the core's one facade (route, book, free, apply events,
 * views); the parts it composes already live in hashing, indexer, selector and sequences.
 */
import { computeBlockHashPairs, computeSequenceHashPairs, type HashSalt } from './hashing.js';
import { RadixIndexer, type ApplyResult } from './indexer.js';
import {
  DEFAULT_KV_ROUTER_CONFIG,
  Rng,
  candidateCost,
  selectByCost,
  selectDeviceAware,
  selectMinCost,
  selectLeastLoaded,
  selectPowerOfTwo,
  type CandidateInput,
  type CostBreakdown,
  type CostParams,
  type KvRouterConfig,
} from './selector.js';
import { ActiveSequences } from './sequences.js';
import { DEFAULT_TTFT_MODEL_CONFIG, N_TTFT_FEATURES, TtftModel, ttftFeatures, type TtftModelConfig } from './ttft-model.js';
import type { RouterEvent, WorkerId, WorkerKey } from './types.js';

/**
 * Routing modes. `kv` is Dynamo 1.6's cost function; `kv-ttft` (not in Dynamo) minimises a
 * predicted time to first token from a per-worker model fitted online (ttft-model.ts).
 * `direct` sends each request to the worker it names (RouteRequest.target; Dynamo's
 * nvext.backend_instance_id); `device-aware-weighted` is Dynamo's CPU / non-CPU budget policy
 * (selectDeviceAware; worker device types from setWorkerDevice).
 */
export type RoutingMode =
  | 'kv'
  | 'kv-ttft'
  | 'round-robin'
  | 'random'
  | 'least-loaded'
  | 'power-of-two'
  | 'direct'
  | 'device-aware-weighted';
export const ROUTING_MODES: readonly RoutingMode[] = [
  'kv',
  'kv-ttft',
  'round-robin',
  'random',
  'least-loaded',
  'power-of-two',
  'direct',
  'device-aware-weighted',
];

/** A worker's device class for device-aware-weighted (Dynamo's DeviceType: CPU or an accelerator). */
export type WorkerDevice = 'cpu' | 'cuda';

/** Modes that read the indexer's overlaps to choose. */
export function isKvMode(m: RoutingMode): boolean {
  return m === 'kv' || m === 'kv-ttft';
}

export interface RouteRequest {
  requestId: string;
  tokens: ArrayLike<number>;
  salt?: HashSalt;
  overrides?: { overlapScoreCredit?: number; prefillLoadScale?: number; temperature?: number };
  /** Restrict candidates to these worker ids (all their dp ranks). */
  allowedWorkers?: readonly WorkerId[];
  expectedOutputTokens?: number;
  nowMs: number;
  /**
   * Optional precomputed local block hashes of `tokens` (interleaved u32 pairs, as
   * computeBlockHashPairs(tokens, blockSize, salt) returns). Callers that already hashed the
   * prompt (e.g. the benchmark replaying many requests with shared blocks) pass them to avoid
   * hashing again; they must equal what hashing `tokens` would give.
   */
  blockHashPairs?: Uint32Array;
  /** Optional precomputed sequence hashes matching `blockHashPairs` (computeSequenceHashPairs). */
  sequenceHashPairs?: Uint32Array;
  /**
   * `direct` mode: the worker the client named (and optionally its dp rank; without one the
   * cheapest of its ranks by the kv cost). Must be among the candidates.
   */
  target?: { workerId: WorkerId; dpRank?: number };
}

export interface WorkerScore {
  id: WorkerId;
  dpRank: number;
  overlap_blocks: number;
  active_prefill_tokens: number;
  active_blocks: number;
  potential_prefill_blocks: number;
  potential_decode_blocks: number;
  cost: number;
  /** Host-pinned blocks continuing the device overlap (only when KV events carry tiers). */
  host_overlap_blocks?: number;
  /** Disk / external blocks continuing device + host (only when KV events carry tiers). */
  disk_overlap_blocks?: number;
  /** kv-ttft only: predicted wait for the prefill queued ahead (ms). */
  predicted_queue_ms?: number;
  /** kv-ttft only: predicted TTFT minus the queue wait (the request's own prefill + first step, ms). */
  predicted_prefill_ms?: number;
  /** kv-ttft only: predicted TTFT (ms); equals `cost`. */
  predicted_ttft_ms?: number;
  /** kv-ttft only: the worker's fitted coefficients (ms, see TTFT_FEATURES). */
  ttft_model?: ReturnType<TtftModel['describe']>;
}

export interface RoutingDecision {
  request_id: string;
  chosen: WorkerId;
  chosen_dp_rank: number;
  mode: RoutingMode;
  isl_tokens: number;
  block_size: number;
  /** Overlap of the chosen worker, in blocks. */
  overlap_blocks: number;
  /** Predicted cached prompt tokens on the chosen worker. */
  cached_tokens: number;
  config: { overlap_score_credit: number; prefill_load_scale: number; temperature: number };
  workers: WorkerScore[];
  timings_us?: { block_hashing: number; find_matches: number; seq_hashing: number; scheduling: number };
}

export interface WorkerSnapshot {
  id: WorkerId;
  dpRank: number;
  cached_blocks: number;
  active_blocks: number;
  active_prefill_tokens: number;
  active_requests: number;
}

export interface KvRouterOptions {
  blockSize: number;
  mode?: RoutingMode;
  config?: Partial<KvRouterConfig>;
  /** Seed of the RNG used for tie-breaks, temperature sampling and random policies. */
  seed?: number;
  /** Bound on indexed (worker, block) entries; the least recently stored are evicted first. */
  maxIndexedBlocks?: number;
  /** Optional monotonic clock in milliseconds (e.g. performance.now) used only for timings_us. */
  clock?: () => number;
  /** Accept events from (worker, dp_rank) pairs never added (they get registered). Default false. */
  autoRegisterWorkers?: boolean;
  /** kv-ttft: the per-worker TTFT model (engine batch size, KV capacity, prior, forgetting). */
  ttftModel?: Partial<TtftModelConfig>;
  /**
   * device-aware-weighted: how many requests a non-CPU worker takes per CPU worker request
   * (Dynamo's DYN_ENCODER_CUDA_TO_CPU_RATIO, default 8, an integer >= 1).
   */
  nonCpuToCpuRatio?: number;
}

/**
 * A change to this router's own active-sequence bookings (replica sync publishes these;
 * Dynamo's ActiveSequenceEvent AddRequest / MarkPrefillCompleted / Free). Remote bookings
 * applied with bookRemote / freeRemote / markPrefillCompletedRemote are not reported.
 */
export type BookingChange =
  | ({ type: 'add' } & Booking)
  | { type: 'prefill_done'; requestId: string; workerId: WorkerId; dpRank: number }
  | { type: 'free'; requestId: string; workerId: WorkerId; dpRank: number };

/** One request's booking on a worker: what replicas tell each other. */
export interface Booking {
  requestId: string;
  workerId: WorkerId;
  dpRank: number;
  /** Sequence hashes of its blocks as (lo, hi) pairs; null when KV reuse is not assumed. */
  seqPairs: Uint32Array | null;
  blocks: number;
  prefillTokens: number;
  expectedOutputTokens?: number;
}

/** A booking as it stands (replica snapshots). */
export interface BookingView extends Booking {
  startMs: number;
}

export class NoEligibleWorkersError extends Error {
  constructor(message = 'no eligible workers') {
    super(message);
    this.name = 'NoEligibleWorkersError';
  }
}

/** `direct` mode: the request named no worker, or one that is not a candidate. */
export class DirectTargetError extends Error {
  constructor(
    message: string,
    readonly reason: 'missing' | 'unknown',
  ) {
    super(message);
    this.name = 'DirectTargetError';
  }
}

/** Minimum interval between active-request expiry sweeps triggered by `route` (as Dynamo). */
const EXPIRY_CHECK_INTERVAL_MS = 30_000;

export class KvRouter {
  readonly blockSize: number;
  readonly config: Readonly<KvRouterConfig>;
  private _mode: RoutingMode;
  readonly indexer: RadixIndexer;
  readonly sequences = new ActiveSequences();
  private readonly rng: Rng;
  private readonly clock: (() => number) | undefined;
  private readonly autoRegister: boolean;
  /** Slots in the order they were added (candidate order). */
  private order: number[] = [];
  private rr = 0;
  private lastExpiryCheck = -Infinity;
  private readonly scoreOut: CostBreakdown = { potentialPrefillBlocks: 0, potentialDecodeBlocks: 0, overlapCreditBlocks: 0, cost: 0 };
  readonly ttftConfig: Readonly<TtftModelConfig>;
  /** kv-ttft: one fitted model per slot. */
  private readonly ttftModels = new Map<number, TtftModel>();
  /** kv-ttft: the pooled model (every worker's observations), the prior of each worker's. */
  private readonly ttftPooled: TtftModel;
  /** kv-ttft: features recorded at routing time, until the caller reports the TTFT. */
  private readonly pendingTtft = new Map<string, { slot: number; x: Float64Array }>();
  /**
   * kv-ttft: per slot, the requests still in prefill in booking order (an engine serves its
   * waiting queue first come, first served) and since when the head has been the head. The
   * head is partly computed already, so kv-ttft counts only what the model says is left of it
   * (like Dynamo's `--router-prefill-load-model aic`, which decays the oldest prefill).
   */
  private readonly prefillQueues = new Map<number, { ids: string[]; tokens: number[]; headSince: number }>();
  /** Approximate `lru` policy: advertised KV capacity per slot (blocks), when known. */
  private readonly capacityBlocks = new Map<number, number>();
  /** Replica sync: told of every change to this router's own bookings. */
  onBookingChange?: (change: BookingChange) => void;
  /** Request ids booked by another replica (bookRemote): their changes are not reported. */
  private readonly remote = new Set<string>();
  /** device-aware-weighted: the workers marked as CPU workers (everything else is non-CPU). */
  private readonly cpuWorkers = new Set<WorkerId>();
  readonly nonCpuToCpuRatio: number;

  constructor(opts: KvRouterOptions) {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1)
      throw new RangeError(`blockSize must be an integer >= 1, got ${opts.blockSize}`);
    this.blockSize = opts.blockSize;
    this._mode = opts.mode ?? 'kv';
    if (!ROUTING_MODES.includes(this._mode)) throw new RangeError(`unknown routing mode ${String(this._mode)}`);
    this.config = Object.freeze({ ...DEFAULT_KV_ROUTER_CONFIG, ...stripUndefined(opts.config ?? {}) });
    this.indexer = new RadixIndexer({ maxIndexedBlocks: opts.maxIndexedBlocks });
    this.rng = new Rng(opts.seed ?? 0x5eed);
    this.clock = opts.clock;
    this.autoRegister = opts.autoRegisterWorkers ?? false;
    const tc = { ...DEFAULT_TTFT_MODEL_CONFIG, ...stripUndefined(opts.ttftModel ?? {}) };
    if (!Number.isInteger(tc.maxBatchedTokens) || tc.maxBatchedTokens < 1)
      throw new RangeError(`ttftModel.maxBatchedTokens must be an integer >= 1, got ${tc.maxBatchedTokens}`);
    if (!(tc.kvBlocks >= 1)) throw new RangeError(`ttftModel.kvBlocks must be >= 1, got ${tc.kvBlocks}`);
    if (!(tc.forgetting > 0 && tc.forgetting <= 1)) throw new RangeError(`ttftModel.forgetting must be in (0, 1], got ${tc.forgetting}`);
    this.ttftConfig = Object.freeze(tc);
    this.ttftPooled = new TtftModel(this.ttftConfig);
    this.nonCpuToCpuRatio = opts.nonCpuToCpuRatio ?? 8;
    if (!Number.isInteger(this.nonCpuToCpuRatio) || this.nonCpuToCpuRatio < 1)
      throw new RangeError(`nonCpuToCpuRatio must be an integer >= 1, got ${opts.nonCpuToCpuRatio}`);
  }

  get mode(): RoutingMode {
    return this._mode;
  }
  set mode(m: RoutingMode) {
    if (!ROUTING_MODES.includes(m)) throw new RangeError(`unknown routing mode ${String(m)}`);
    this._mode = m;
  }

  /** Whether overlaps are computed at all (Dynamo creates no indexer when the credit is 0). */
  get indexerEnabled(): boolean {
    return this.config.overlapScoreCredit > 0;
  }

  // ---------------------------------------------------------------------------------------
  // Workers
  // ---------------------------------------------------------------------------------------

  /** Register a worker with dp ranks 0..dpRanks-1 (idempotent; extra old ranks are dropped). */
  addWorker(workerId: WorkerId, dpRanks = 1): void {
    if (!Number.isInteger(dpRanks) || dpRanks < 1) throw new RangeError(`dpRanks must be an integer >= 1, got ${dpRanks}`);
    for (const s of [...this.order]) {
      const k = this.indexer.slotWorker(s)!;
      if (k.workerId === workerId && k.dpRank >= dpRanks) this.dropSlot(s);
    }
    for (let r = 0; r < dpRanks; r++) this.registerSlot(workerId, r);
  }

  /**
   * A worker's advertised KV capacity in blocks (every dp rank), used by the approximate `lru`
   * policy (default: config.approximateCapacityBlocks).
   */
  setWorkerCapacity(workerId: WorkerId, blocks: number): void {
    if (!(blocks >= 1)) throw new RangeError(`capacity must be >= 1 block, got ${blocks}`);
    for (const s of this.order) if (this.indexer.slotWorker(s)!.workerId === workerId) this.capacityBlocks.set(s, Math.floor(blocks));
  }

  /** A worker's device class for device-aware-weighted (default: cuda, as Dynamo's non-CPU). */
  setWorkerDevice(workerId: WorkerId, device: WorkerDevice): void {
    if (device === 'cpu') this.cpuWorkers.add(workerId);
    else if (device === 'cuda') this.cpuWorkers.delete(workerId);
    else throw new RangeError(`device must be cpu or cuda, got ${String(device)}`);
  }

  workerDevice(workerId: WorkerId): WorkerDevice {
    return this.cpuWorkers.has(workerId) ? 'cpu' : 'cuda';
  }

  /** Drop a worker: all its blocks, dp ranks and active load. */
  removeWorker(workerId: WorkerId): void {
    this.cpuWorkers.delete(workerId);
    for (const s of [...this.order]) if (this.indexer.slotWorker(s)!.workerId === workerId) this.dropSlot(s);
  }

  /** Clear one (worker, dp_rank)'s cached blocks (e.g. before a replay after an event gap). */
  resetWorkerCache(workerId: WorkerId, dpRank?: number): void {
    for (const s of this.order) {
      const k = this.indexer.slotWorker(s)!;
      if (k.workerId === workerId && (dpRank === undefined || k.dpRank === dpRank)) {
        this.indexer.clearSlot(s);
        this.indexer.clearLowerTiers(s);
      }
    }
  }

  workers(): WorkerKey[] {
    return this.order.map((s) => this.indexer.slotWorker(s)!);
  }

  hasWorker(workerId: WorkerId): boolean {
    return this.order.some((s) => this.indexer.slotWorker(s)!.workerId === workerId);
  }

  private registerSlot(workerId: WorkerId, dpRank: number): number {
    const existing = this.indexer.slotOf(workerId, dpRank);
    if (existing >= 0) return existing;
    const s = this.indexer.ensureSlot(workerId, dpRank);
    this.sequences.ensureSlot(s);
    this.ttftModels.set(s, new TtftModel(this.ttftConfig, this.ttftPooled, this.ttftConfig.workerPriorStrength));
    this.order.push(s);
    return s;
  }

  private dropSlot(s: number): void {
    this.indexer.removeSlot(s);
    this.sequences.removeSlot(s);
    this.ttftModels.delete(s);
    this.capacityBlocks.delete(s);
    this.prefillQueues.delete(s);
    for (const [id, p] of this.pendingTtft) if (p.slot === s) this.pendingTtft.delete(id);
    this.order = this.order.filter((x) => x !== s);
  }

  // ---------------------------------------------------------------------------------------
  // Events
  // ---------------------------------------------------------------------------------------

  /**
   * Apply one KV event. In approximate mode (useKvEvents false) events are ignored.
   * A skipped event id for the (worker, dp_rank) is reported in `gap` (the event is still applied).
   */
  applyEvent(ev: RouterEvent, _nowMs?: number): ApplyResult {
    if (!this.config.useKvEvents) return { status: 'ignored', detail: 'approximate mode: KV events are not consumed' };
    if (this.autoRegister && this.indexer.slotOf(ev.workerId, ev.dpRank) < 0) this.registerSlot(ev.workerId, ev.dpRank);
    return this.indexer.applyEvent(ev);
  }

  // ---------------------------------------------------------------------------------------
  // Routing
  // ---------------------------------------------------------------------------------------

  /** Per-worker overlap of a prompt (blocks), without booking anything. */
  overlaps(tokens: ArrayLike<number>, salt?: HashSalt): Array<{ workerId: WorkerId; dpRank: number; overlap_blocks: number }> {
    const local = computeBlockHashPairs(tokens, this.blockSize, salt);
    const scores = this.indexerEnabled ? this.indexer.findMatchesPairs(local, local.length >>> 1) : null;
    return this.order.map((s) => ({ ...this.indexer.slotWorker(s)!, overlap_blocks: scores ? scores[s]! : 0 }));
  }

  /** Select a worker for the request and book it there (active load; approximate-mode insert). */
  route(req: RouteRequest): RoutingDecision {
    const now = req.nowMs;
    if (now - this.lastExpiryCheck >= EXPIRY_CHECK_INTERVAL_MS) {
      this.lastExpiryCheck = now;
      for (const id of this.sequences.expire(now, this.config.activeRequestExpiryMs)) this.forgetRequest(id, now);
    }
    if (!this.config.useKvEvents && this.config.approximateCachePolicy === 'ttl') this.indexer.expireTtl(now);
    const cands = this.candidates(req.allowedWorkers);
    if (cands.length === 0)
      throw new NoEligibleWorkersError(req.allowedWorkers ? 'no eligible workers among the allowed ones' : 'no workers registered');

    const clock = this.clock;
    const t0 = clock ? clock() : 0;
    const bs = this.blockSize;
    const isl = req.tokens.length;
    const nFull = Math.floor(isl / bs);
    const local =
      req.blockHashPairs && req.blockHashPairs.length === 2 * nFull ? req.blockHashPairs : computeBlockHashPairs(req.tokens, bs, req.salt);
    const nBlocks = local.length >>> 1;
    const t1 = clock ? clock() : 0;
    const scores = this.indexerEnabled ? this.indexer.findMatchesPairs(local, nBlocks) : null;
    const overlapsBySlot = scores ? cands.map((s) => scores[s]!) : cands.map(() => 0);
    // Lower tiers only when an event ever carried one: the device-only path stays as it was.
    const tiers = scores && this.config.useKvEvents ? this.indexer.lowerTierOverlaps(local, nBlocks, scores) : null;
    const t2 = clock ? clock() : 0;
    const needSeq = this.config.assumeKvReuse || !this.config.useKvEvents;
    const seq = needSeq
      ? local === req.blockHashPairs && req.sequenceHashPairs && req.sequenceHashPairs.length === 2 * nBlocks
        ? req.sequenceHashPairs
        : computeSequenceHashPairs(local, nBlocks)
      : null;
    const t3 = clock ? clock() : 0;

    const credit = req.overrides?.overlapScoreCredit ?? this.config.overlapScoreCredit;
    const scale = req.overrides?.prefillLoadScale ?? this.config.prefillLoadScale;
    const temperature = req.overrides?.temperature ?? this.config.temperature;
    const params: CostParams = {
      blockSize: bs,
      isl,
      overlapScoreCredit: credit,
      overlapScoreCreditDecay: this.config.overlapScoreCreditDecay,
      prefillLoadScale: scale,
      decodeActiveRequestWeight: this.config.decodeActiveRequestWeight,
      trackPrefillTokens: this.config.trackPrefillTokens,
      hostCacheHitWeight: this.config.hostCacheHitWeight,
      diskCacheHitWeight: this.config.diskCacheHitWeight,
    };
    const inputs: CandidateInput[] = new Array(cands.length);
    let minPrefill = Infinity;
    for (let i = 0; i < cands.length; i++) {
      const s = cands[i]!;
      const activeDepth = seq && this.config.assumeKvReuse ? this.sequences.activeDepth(s, seq, nBlocks) : 0;
      const ap = this.sequences.activePrefillTokens(s);
      if (ap < minPrefill) minPrefill = ap;
      inputs[i] = {
        overlapBlocks: overlapsBySlot[i]!,
        activePrefillTokens: ap,
        activeBlocks: this.sequences.activeBlocks(s),
        newBlocks: nBlocks - activeDepth,
        activeRequests: this.sequences.activeRequests(s),
      };
      if (tiers) {
        inputs[i]!.hostBlocks = tiers.host.get(s) ?? 0;
        inputs[i]!.diskBlocks = tiers.disk.get(s) ?? 0;
      }
    }
    const workers: WorkerScore[] = new Array(cands.length);
    const costs = new Float64Array(cands.length);
    for (let i = 0; i < cands.length; i++) {
      const b = candidateCost(params, inputs[i]!, minPrefill, this.scoreOut);
      const k = this.indexer.slotWorker(cands[i]!)!;
      costs[i] = b.cost;
      workers[i] = {
        id: k.workerId,
        dpRank: k.dpRank,
        overlap_blocks: inputs[i]!.overlapBlocks,
        active_prefill_tokens: inputs[i]!.activePrefillTokens,
        active_blocks: inputs[i]!.activeBlocks,
        potential_prefill_blocks: b.potentialPrefillBlocks,
        potential_decode_blocks: b.potentialDecodeBlocks,
        cost: b.cost,
      };
      if (tiers) {
        workers[i]!.host_overlap_blocks = inputs[i]!.hostBlocks!;
        workers[i]!.disk_overlap_blocks = inputs[i]!.diskBlocks!;
      }
    }
    let ttftX: Float64Array[] | null = null;
    /** kv-ttft: Dynamo's kv costs, for deferring to kv's choice when kv-ttft gains little. */
    let kvCosts: Float64Array | null = null;
    if (this._mode === 'kv-ttft') {
      kvCosts = Float64Array.from(costs);
      ttftX = new Array(cands.length);
      const q = new Float64Array(N_TTFT_FEATURES);
      const tc = this.ttftConfig;
      let queued = 0;
      for (const inp of inputs) queued += inp.activePrefillTokens;
      const penalty = Math.min(
        tc.prefillPenaltyMax,
        tc.prefillPenalty + (tc.prefillPenaltyPerQueuedPass * queued) / (cands.length * tc.maxBatchedTokens),
      );
      for (let i = 0; i < cands.length; i++) {
        const inp = inputs[i]!;
        // Blocks another in-flight request on this worker is prefilling (booked sequence
        // hashes) will be cached by the time this one is scheduled (FCFS behind it), so a
        // sibling of a burst counts them as cached: co-locating it is what saves the work.
        const own = isl - Math.min(this.ttftCachedBlocks(inp, nBlocks) * bs, isl);
        const usage = (inp.activeBlocks + inp.newBlocks) / tc.kvBlocks;
        const model = this.ttftModels.get(cands[i]!)!;
        const queued = Math.max(0, inp.activePrefillTokens - this.headProgress(cands[i]!, model, usage, now));
        const busy = inp.activeRequests > 0;
        const x = ttftFeatures(queued, own, usage, tc, undefined, busy);
        const ttft = model.predict(x);
        const queue = queued > 0 ? model.predict(ttftFeatures(queued, 0, usage, tc, q, busy)) : busy ? model.coefficients()[6]! : 0;
        ttftX[i] = x;
        const w = workers[i]!;
        w.predicted_queue_ms = Math.min(queue, ttft);
        w.predicted_prefill_ms = ttft - w.predicted_queue_ms;
        costs[i] = ttft + penalty * w.predicted_prefill_ms + tc.decodeBlockMs * w.potential_decode_blocks;
        w.cost = costs[i]!;
        w.predicted_ttft_ms = ttft;
        w.ttft_model = model.describe();
      }
    }
    let pick: number;
    switch (this._mode) {
      case 'kv':
        pick = selectByCost(costs, temperature, this.rng);
        break;
      case 'kv-ttft': {
        pick = selectByCost(costs, temperature, this.rng);
        // Defer to Dynamo's kv choice unless kv-ttft expects it to cost clearly more: the
        // predicted gain must beat the model's own error to be worth leaving kv's cache and
        // load balance (ttft-model.ts, kvDeferMargin).
        const m = this.ttftConfig.kvDeferMargin;
        if (m > 0 && kvCosts) {
          const k = selectMinCost(kvCosts, this.rng);
          if (k !== pick && costs[k]! <= costs[pick]! * (1 + m) + this.ttftConfig.kvDeferMs) pick = k;
        }
        break;
      }
      case 'round-robin':
        pick = this.rr++ % cands.length;
        if (this.rr >= 0x40000000) this.rr = 0;
        break;
      case 'random':
        pick = this.rng.int(cands.length);
        break;
      case 'least-loaded':
        pick = selectLeastLoaded(inputs, this.rng);
        break;
      case 'power-of-two':
        pick = selectPowerOfTwo(inputs, this.rng);
        break;
      case 'device-aware-weighted':
        pick = selectDeviceAware(
          inputs,
          cands.map((s) => this.cpuWorkers.has(this.indexer.slotWorker(s)!.workerId)),
          this.nonCpuToCpuRatio,
          this.rng,
        );
        break;
      case 'direct':
        pick = this.directPick(req, cands, costs);
        break;
    }
    const slot = cands[pick]!;
    const chosen = workers[pick]!;
    const overlap = inputs[pick]!.overlapBlocks;
    const cached = Math.min(overlap * bs, isl);
    const prefill = this.config.trackPrefillTokens
      ? isl - (ttftX ? Math.min(this.ttftCachedBlocks(inputs[pick]!, nBlocks) * bs, isl) : cached)
      : 0;
    this.sequences.add(req.requestId, slot, this.config.assumeKvReuse ? seq : null, nBlocks, prefill, now, req.expectedOutputTokens);
    if (this._mode === 'kv-ttft' && prefill > 0) this.joinPrefillQueue(slot, req.requestId, prefill, now);
    if (ttftX) this.pendingTtft.set(req.requestId, { slot, x: ttftX[pick]! });
    this.remote.delete(req.requestId);
    if (this.onBookingChange) {
      const b = this.sequences.get(req.requestId)!;
      this.onBookingChange({
        type: 'add',
        requestId: req.requestId,
        workerId: chosen.id,
        dpRank: chosen.dpRank,
        seqPairs: b.seqPairs,
        blocks: b.blocks,
        prefillTokens: b.prefillTokens,
        expectedOutputTokens: req.expectedOutputTokens,
      });
    }
    if (!this.config.useKvEvents && isKvMode(this._mode) && this.indexerEnabled && nBlocks > 0) {
      if (this.config.approximateCachePolicy === 'lru') {
        this.indexer.storeWithLru(slot, seq!, local, nBlocks, this.capacityBlocks.get(slot) ?? this.config.approximateCapacityBlocks);
      } else {
        this.indexer.storeWithTtl(slot, seq!, local, nBlocks, now, this.config.ttlMs);
      }
    }
    const t4 = clock ? clock() : 0;

    const decision: RoutingDecision = {
      request_id: req.requestId,
      chosen: chosen.id,
      chosen_dp_rank: chosen.dpRank,
      mode: this._mode,
      isl_tokens: isl,
      block_size: bs,
      overlap_blocks: overlap,
      cached_tokens: cached,
      config: { overlap_score_credit: credit, prefill_load_scale: scale, temperature },
      workers,
    };
    if (clock) {
      decision.timings_us = {
        block_hashing: (t1 - t0) * 1000,
        find_matches: (t2 - t1) * 1000,
        seq_hashing: (t3 - t2) * 1000,
        scheduling: (t4 - t3) * 1000,
      };
    }
    return decision;
  }

  /** `direct`: the named worker (its cheapest rank by the kv cost when no rank is named). */
  private directPick(req: RouteRequest, cands: readonly number[], costs: Float64Array): number {
    const t = req.target;
    if (!t) throw new DirectTargetError('direct routing needs the target worker of the request', 'missing');
    let pick = -1;
    for (let i = 0; i < cands.length; i++) {
      const k = this.indexer.slotWorker(cands[i]!)!;
      if (k.workerId !== t.workerId || (t.dpRank !== undefined && k.dpRank !== t.dpRank)) continue;
      if (pick < 0 || costs[i]! < costs[pick]!) pick = i;
    }
    if (pick < 0)
      throw new DirectTargetError(
        `worker ${t.workerId}${t.dpRank !== undefined ? ` dp_rank ${t.dpRank}` : ''} is not among the candidates`,
        'unknown',
      );
    return pick;
  }

  private candidates(allowed?: readonly WorkerId[]): number[] {
    if (!allowed) return this.order;
    const set = new Set(allowed);
    return this.order.filter((s) => set.has(this.indexer.slotWorker(s)!.workerId));
  }

  // ---------------------------------------------------------------------------------------
  // Request lifecycle
  // ---------------------------------------------------------------------------------------

  /** First output token: the request's prefill tokens no longer count. */
  markPrefillCompleted(requestId: string, nowMs: number): void {
    const r = this.sequences.get(requestId);
    if (r) this.leavePrefillQueue(r.slot, requestId, nowMs);
    if (this.sequences.markPrefillCompleted(requestId) && this.onBookingChange && !this.remote.has(requestId)) {
      const k = this.indexer.slotWorker(r!.slot)!;
      this.onBookingChange({ type: 'prefill_done', requestId, workerId: k.workerId, dpRank: k.dpRank });
    }
  }

  // ---------------------------------------------------------------------------------------
  // Bookings of other router replicas (replica sync)
  // ---------------------------------------------------------------------------------------

  /**
   * Book a request another replica routed (its AddRequest). Returns false when the worker is
   * unknown here. The booking counts in the load like a local one and is not reported back.
   */
  bookRemote(b: Booking & { nowMs: number }): boolean {
    const slot = this.indexer.slotOf(b.workerId, b.dpRank);
    if (slot < 0 || !this.order.includes(slot)) return false;
    if (b.seqPairs && b.seqPairs.length < 2 * b.blocks) return false;
    const existing = this.sequences.get(b.requestId);
    if (existing) this.leavePrefillQueue(existing.slot, b.requestId, b.nowMs);
    this.remote.add(b.requestId);
    this.sequences.add(
      b.requestId,
      slot,
      this.config.assumeKvReuse ? b.seqPairs : null,
      b.blocks,
      this.config.trackPrefillTokens ? b.prefillTokens : 0,
      b.nowMs,
      b.expectedOutputTokens,
    );
    if (this._mode === 'kv-ttft' && b.prefillTokens > 0 && this.config.trackPrefillTokens)
      this.joinPrefillQueue(slot, b.requestId, b.prefillTokens, b.nowMs);
    return true;
  }

  /** Another replica's MarkPrefillCompleted. */
  markPrefillCompletedRemote(requestId: string, nowMs: number): boolean {
    if (!this.remote.has(requestId)) return false;
    const r = this.sequences.get(requestId);
    if (r) this.leavePrefillQueue(r.slot, requestId, nowMs);
    return this.sequences.markPrefillCompleted(requestId);
  }

  /** Another replica's Free (or its booking expired / the replica died). */
  freeRemote(requestId: string, nowMs: number): boolean {
    if (!this.remote.delete(requestId)) return false;
    const r = this.sequences.get(requestId);
    if (r) this.leavePrefillQueue(r.slot, requestId, nowMs);
    return this.sequences.free(requestId);
  }

  /** This router's own bookings as they stand (a late replica's catch-up snapshot). */
  localBookings(): BookingView[] {
    const out: BookingView[] = [];
    for (const id of this.sequences.ids()) {
      if (this.remote.has(id)) continue;
      const r = this.sequences.get(id)!;
      const k = this.indexer.slotWorker(r.slot)!;
      out.push({
        requestId: id,
        workerId: k.workerId,
        dpRank: k.dpRank,
        seqPairs: r.seqPairs,
        blocks: r.blocks,
        prefillTokens: r.prefillTokens,
        startMs: r.startMs,
        expectedOutputTokens: r.expectedOutputTokens,
      });
    }
    return out;
  }

  /** Number of bookings that came from other replicas. */
  get remoteBookings(): number {
    return this.remote.size;
  }

  /** kv-ttft: blocks of the prompt the worker has cached or is about to (active on it). */
  private ttftCachedBlocks(inp: CandidateInput, nBlocks: number): number {
    return this.config.assumeKvReuse ? Math.max(inp.overlapBlocks, nBlocks - inp.newBlocks) : inp.overlapBlocks;
  }

  /** A request force-freed by the expiry: drop what kv-ttft kept for it. */
  private forgetRequest(requestId: string, nowMs: number): void {
    this.pendingTtft.delete(requestId);
    this.remote.delete(requestId);
    for (const slot of this.prefillQueues.keys()) this.leavePrefillQueue(slot, requestId, nowMs);
  }

  /** kv-ttft: a new booking waits behind the prefills already queued on `slot`. */
  private joinPrefillQueue(slot: number, requestId: string, tokens: number, nowMs: number): void {
    let pq = this.prefillQueues.get(slot);
    if (!pq) this.prefillQueues.set(slot, (pq = { ids: [], tokens: [], headSince: nowMs }));
    if (pq.ids.length === 0) pq.headSince = nowMs;
    pq.ids.push(requestId);
    pq.tokens.push(tokens);
  }

  private leavePrefillQueue(slot: number, requestId: string, nowMs: number): void {
    const pq = this.prefillQueues.get(slot);
    if (!pq) return;
    const i = pq.ids.indexOf(requestId);
    if (i < 0) return;
    pq.ids.splice(i, 1);
    pq.tokens.splice(i, 1);
    if (i === 0) pq.headSince = nowMs;
  }

  /** Tokens of the head-of-queue prefill on `slot` that the model says are computed by `nowMs`. */
  private headProgress(slot: number, model: TtftModel, usage: number, nowMs: number): number {
    const pq = this.prefillQueues.get(slot);
    if (!pq || pq.ids.length === 0) return 0;
    const head = pq.tokens[0]!;
    const elapsed = nowMs - pq.headSince;
    if (!(elapsed > 0)) return 0;
    const duration = model.predict(ttftFeatures(0, head, usage, this.ttftConfig));
    return duration > 0 ? head * Math.min(1, elapsed / duration) : head;
  }

  /**
   * kv-ttft: the TTFT the caller observed for a routed request (first token time minus the
   * time it called route). Updates the chosen worker's fitted model with the features recorded
   * at routing time. Returns false when nothing was recorded for the request (other modes,
   * unknown id, already observed or freed).
   */
  observeTtft(requestId: string, ttftMs: number): boolean {
    const p = this.pendingTtft.get(requestId);
    if (!p) return false;
    this.pendingTtft.delete(requestId);
    const m = this.ttftModels.get(p.slot);
    if (!m) return false;
    this.ttftPooled.observe(p.x, ttftMs);
    m.observe(p.x, ttftMs);
    return true;
  }

  /** kv-ttft: one worker's fitted model (coefficients, observations, error). */
  ttftModel(workerId: WorkerId, dpRank = 0): ReturnType<TtftModel['describe']> | undefined {
    const s = this.indexer.slotOf(workerId, dpRank);
    return s >= 0 ? this.ttftModels.get(s)?.describe() : undefined;
  }

  /** Stream end / error / cancel: drop the request's blocks and prefill tokens. */
  free(requestId: string, nowMs: number): void {
    const r = this.sequences.get(requestId);
    if (r) this.leavePrefillQueue(r.slot, requestId, nowMs);
    const freed = this.sequences.free(requestId);
    this.pendingTtft.delete(requestId);
    if (freed && !this.remote.delete(requestId) && this.onBookingChange) {
      const k = this.indexer.slotWorker(r!.slot)!;
      this.onBookingChange({ type: 'free', requestId, workerId: k.workerId, dpRank: k.dpRank });
    }
  }

  /** Approximate-mode TTL expiry and the force-free of requests older than the expiry. */
  expire(nowMs: number): { expiredBlocks: number; expiredRequests: string[] } {
    const expiredBlocks = this.indexer.expireTtl(nowMs);
    this.lastExpiryCheck = nowMs;
    const expiredRequests = this.sequences.expire(nowMs, this.config.activeRequestExpiryMs);
    for (const id of expiredRequests) this.forgetRequest(id, nowMs);
    return { expiredBlocks, expiredRequests };
  }

  snapshot(): { workers: WorkerSnapshot[] } {
    return {
      workers: this.order.map((s) => {
        const k = this.indexer.slotWorker(s)!;
        return {
          id: k.workerId,
          dpRank: k.dpRank,
          cached_blocks: this.indexer.blockCount(s),
          active_blocks: this.sequences.activeBlocks(s),
          active_prefill_tokens: this.sequences.activePrefillTokens(s),
          active_requests: this.sequences.activeRequests(s),
        };
      }),
    };
  }

  /** Indexer-wide figures (for metrics). */
  stats(): { indexed_blocks: number; radix_nodes: number; evictions: number; active_requests: number } {
    return {
      indexed_blocks: this.indexer.indexedBlocks,
      radix_nodes: this.indexer.nodeCount,
      evictions: this.indexer.evictions,
      active_requests: this.sequences.size,
    };
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
