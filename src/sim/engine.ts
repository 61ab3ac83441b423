/**
 * SimEngine: one vLLM-like engine under Dynamo mocker's model (dynamo-facts §5), without
 * HTTP. One scheduling loop per engine; the clock decides whether it runs in real time or
 * in virtual time, the scheduler code is the same.
 *
 * One pass:
 *  1. token budget = maxNumBatchedTokens.
 *  2. Running requests first, in order: a prefilling request gets min(remaining, budget)
 *     prompt tokens (chunked prefill), a decoding one 1 token. Their KV blocks are allocated
 *     at pass start (KV events are visible at pass start). When allocation fails, running
 *     requests are preempted (LIFO: the newest, FIFO: the oldest): a preempted request
 *     loses its blocks, is reset to 0 computed tokens and goes to the front of waiting.
 *  3. Then waiting requests, FCFS, while running < maxNumSeqs and no preemption happened in
 *     this pass. On its first schedule a request's prompt is matched against the prefix
 *     cache (longest leading run of cached full blocks); those tokens are not computed.
 *  4. pass time = prefill_ms(prompt tokens computed in the pass) / speedup
 *               + decode_ms(sum of the decoding requests' lengths / (num_gpu_blocks * block_size))
 *                 / (speedup * decodeSpeedup)
 *     where "decoding" means the request's sequence was fully computed before this pass (it
 *     computes its newest token now); the decode term is 0 when no request is decoding.
 *  5. At pass end every request whose sequence is fully computed emits one token: the pass
 *     that completes a prompt emits the first token without a decode term of its own, so a
 *     lone request's TTFT is the sum of its prefill chunk times; later passes one token each.
 *
 * Steps 4-5 are what Dynamo 1.6.1's mocker does (checked against it by timing its streamed
 * tokens: `npm run bench:peers -- --fidelity`): a lone request's first token comes one prefill
 * time after it arrives, whatever the decode speed; a request whose prompt completes beside
 * decoding requests gets its first token at the end of that pass (prefill + their decode); the
 * decode time grows with the decoding requests' summed lengths, a shared prefix counted once
 * per request, and not with the prompt that is being prefilled. (Dynamo v1.1's engine charged
 * a decode step in the prompt's last pass too.)
 *
 * Sequences: the KV of the prompt and of every output token but the newest is resident
 * (the newest token is the next pass's input), so output tokens extend the sequence and
 * a partial tail block is promoted to a full block (Stored) when it fills up.
 *
 * cached_tokens: like vLLM and Dynamo 1.6.1's mocker, the cached blocks are matched over the
 * prompt minus its last token, so at least one prompt token is always computed: a fully cached
 * 4,096-token prompt reports 4,080 cached tokens with blocks of 16 (the last block is
 * recomputed). cached_tokens = matched blocks * block_size.
 *
 * Over 400 lines on purpose: the scheduling pass (steps 1-5 above) is one state machine over
 * the waiting/running queues; block allocation is already in kv-manager.ts, timing in timing.ts.
 */
import { toNumberArray } from '../base/arrays.js';
import { computeBlockHashPairs, computeSequenceHashPairs, hashTokenBlock, nextSequenceHash } from '../router/hashing.js';
import { joinU64, splitU64, toPairs } from '../router/u64.js';
import type { KvCacheEventData, RouterEvent } from '../router/types.js';
import type { Cancel, Clock } from './clock.js';
import { KvBlockManager, type BlockHolder, type BlockSource } from './kv-manager.js';
import { Histogram, ITL_BUCKETS, TTFT_BUCKETS } from './metrics.js';
import { Rng, seedFromString } from './rng.js';
import { decodeMs, prefillMs, scaled } from './timing.js';

export interface SimEngineOptions {
  /** Worker id used in KV events (RouterEvent.workerId). */
  id?: string;
  blockSize?: number;
  numGpuBlocks?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  /** Divides all pass times; 0 (or less) = no delays. */
  speedup?: number;
  /** Further divides decode time. */
  decodeSpeedup?: number;
  enablePrefixCaching?: boolean;
  enableChunkedPrefill?: boolean;
  preemptionMode?: 'lifo' | 'fifo';
  /** Seed of the output-token RNG (default: derived from id). */
  seed?: number;
  /** Output token ids are uniform in [lo, hi). Default [1000, 2000) like the mocker. */
  outputTokenRange?: readonly [number, number];
  dpRank?: number;
  /** Pass stored blocks' token ids to KV event listeners (default true). */
  kvEventTokens?: boolean;
}

export interface FirstTokenInfo {
  requestId: string;
  timeMs: number;
  ttftMs: number;
  promptTokens: number;
  cachedTokens: number;
  cachedBlocks: number;
  promptBlocks: number;
}

export interface EngineResult {
  requestId: string;
  status: 'finished' | 'aborted';
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Leading prompt blocks found in the prefix cache at first schedule. */
  cachedBlocks: number;
  /** Full blocks of the prompt. */
  promptBlocks: number;
  arrivalMs: number;
  firstTokenMs?: number;
  finishMs: number;
  ttftMs?: number;
  preemptions: number;
  outputTokens: number[];
}

export interface EngineRequest {
  requestId: string;
  /** The prompt's token ids (copied: the caller may reuse the array). */
  tokens: ArrayLike<number>;
  maxTokens: number;
  /**
   * Optional precomputed hashes of the prompt's leading full blocks (local = XXH3 of the block's
   * tokens, seq = chained sequence hash, as src/router/hashing.ts computes them). They must equal
   * what hashing `tokens` gives; the engine then skips hashing those blocks (the benchmark
   * replays shared blocks many times). Later blocks are hashed from the tokens as usual.
   */
  promptBlockHashes?: { readonly local: readonly bigint[]; readonly seq: readonly bigint[] };
  onFirstToken?(info: FirstTokenInfo): void;
  /** Every output token, including the first; `index` from 0. */
  onToken?(tokenId: number, timeMs: number, index: number): void;
  onDone?(result: EngineResult): void;
}

export class SimRequestError extends Error {
  constructor(
    message: string,
    readonly code: string = 'invalid_request',
  ) {
    super(message);
    this.name = 'SimRequestError';
  }
}

export type KvEventListener = (ev: RouterEvent, tokenIds?: readonly number[]) => void;

export interface EngineStats {
  running: number;
  waiting: number;
  /** used blocks / num_gpu_blocks (vLLM kv_cache_usage_perc, a fraction). */
  usage: number;
  totalBlocks: number;
  usedBlocks: number;
  activeBlocks: number;
  inactiveBlocks: number;
  partialBlocks: number;
  cachedBlocks: number;
  evictions: number;
  preemptions: number;
  passes: number;
  requestsSubmitted: number;
  requestsFinished: number;
  requestsAborted: number;
  promptTokens: number;
  generationTokens: number;
  /** Prompt tokens looked up in the prefix cache (first schedule of each request). */
  prefixQueryTokens: number;
  /** Of those, tokens found cached. */
  prefixHitTokens: number;
  prefixQueries: number;
  prefixHits: number;
  kvEvents: number;
  busyMs: number;
}

type SeqState = 'waiting' | 'running' | 'done';

const EMPTY_PAIRS: Uint32Array = new Uint32Array(0);

/** `a` copied into a new array of `len` u32s. */
function grownPairs(a: Uint32Array, len: number): Uint32Array {
  const c = new Uint32Array(len);
  c.set(a);
  return c;
}

class Seq implements BlockSource, BlockHolder {
  held: number[] = [];
  partial = false;
  readonly tokens: number[];
  readonly promptLen: number;
  kv = 0;
  inPrefill = true;
  everScheduled = false;
  cachedTokens = 0;
  cachedBlocks = 0;
  state: SeqState = 'waiting';
  firstTokenAt?: number;
  lastTokenAt?: number;
  preemptions = 0;
  /** Local and chained hashes of the full blocks hashed so far, as u32 pairs [lo, hi, ...]. */
  private local: Uint32Array = EMPTY_PAIRS;
  private chain: Uint32Array = EMPTY_PAIRS;
  /** Full blocks hashed so far. */
  private hashed = 0;

  constructor(
    readonly req: EngineRequest,
    readonly bs: number,
    readonly arrival: number,
  ) {
    this.tokens = toNumberArray(req.tokens);
    this.promptLen = this.tokens.length;
    const pre = req.promptBlockHashes;
    if (pre) {
      const n = Math.min(pre.local.length, pre.seq.length, Math.floor(this.promptLen / bs));
      this.local = toPairs(pre.local.slice(0, n));
      this.chain = toPairs(pre.seq.slice(0, n));
      this.hashed = n;
    }
  }

  get outputs(): number {
    return this.tokens.length - this.promptLen;
  }

  private ensure(i: number): void {
    if (i < this.hashed) return;
    const promptBlocks = Math.floor(this.promptLen / this.bs);
    if (this.hashed === 0 && i < promptBlocks && promptBlocks > 1) {
      // The prompt's blocks in one batch (WASM, as the router hashes them): ~5x faster for 512
      // blocks than one JS XXH3 and one bigint chain step per block.
      const tokens = this.tokens.length === this.promptLen ? this.tokens : this.tokens.slice(0, this.promptLen);
      this.local = computeBlockHashPairs(tokens, this.bs);
      this.chain = computeSequenceHashPairs(this.local);
      this.hashed = promptBlocks;
    }
    while (this.hashed <= i) {
      // Blocks filled while decoding: one at a time.
      const j = this.hashed;
      if (this.chain.length < 2 * (j + 1)) {
        const len = Math.max(2 * (j + 1), this.chain.length * 2, 16);
        this.local = grownPairs(this.local, len);
        this.chain = grownPairs(this.chain, len);
      }
      const local = hashTokenBlock(this.tokens, j * this.bs, this.bs);
      splitU64(local, this.local, 2 * j);
      splitU64(j === 0 ? local : nextSequenceHash(joinU64(this.chain[2 * j - 2]!, this.chain[2 * j - 1]!), local), this.chain, 2 * j);
      this.hashed++;
    }
  }

  seqLo(i: number): number {
    this.ensure(i);
    return this.chain[2 * i]!;
  }

  seqHi(i: number): number {
    this.ensure(i);
    return this.chain[2 * i + 1]!;
  }

  seqHash(i: number): bigint {
    this.ensure(i);
    return joinU64(this.chain[2 * i]!, this.chain[2 * i + 1]!);
  }

  localHash(i: number): bigint {
    this.ensure(i);
    return joinU64(this.local[2 * i]!, this.local[2 * i + 1]!);
  }

  blockTokens(i: number): readonly number[] {
    return this.tokens.slice(i * this.bs, (i + 1) * this.bs);
  }
}

interface PassEntry {
  seq: Seq;
  /** Tokens computed in this pass. */
  n: number;
  newKv: number;
  prefill: boolean;
}

interface Pass {
  entries: PassEntry[];
  start: number;
  end: number;
}

/** Real-clock lateness up to which the next pass still starts at the previous pass's planned end. */
const LATE_TOLERANCE_MS = 25;

export class SimEngine {
  readonly id: string;
  readonly blockSize: number;
  readonly numGpuBlocks: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  readonly speedup: number;
  readonly decodeSpeedup: number;
  readonly chunkedPrefill: boolean;
  readonly preemptionMode: 'lifo' | 'fifo';
  readonly dpRank: number;
  readonly kv: KvBlockManager;
  readonly ttftHistogram = new Histogram(TTFT_BUCKETS);
  readonly itlHistogram = new Histogram(ITL_BUCKETS);

  private readonly rng: Rng;
  private readonly tokLo: number;
  private readonly tokHi: number;
  private readonly waiting: Seq[] = [];
  private readonly running: Seq[] = [];
  private readonly byId = new Map<string, Seq>();
  private readonly listeners = new Set<KvEventListener>();
  private pass?: Pass;
  private timer?: Cancel;
  private closed = false;
  private eventId = 0;
  private counters = {
    preemptions: 0,
    passes: 0,
    submitted: 0,
    finished: 0,
    aborted: 0,
    promptTokens: 0,
    generationTokens: 0,
    prefixQueryTokens: 0,
    prefixHitTokens: 0,
    prefixQueries: 0,
    prefixHits: 0,
    busyMs: 0,
  };
  /** Called when a request callback throws (default: ignore). */
  onCallbackError: (err: unknown) => void = () => {};

  constructor(
    opts: SimEngineOptions,
    readonly clock: Clock,
  ) {
    this.id = opts.id ?? 'worker-0';
    this.blockSize = opts.blockSize ?? 16;
    this.numGpuBlocks = opts.numGpuBlocks ?? 16384;
    this.maxNumSeqs = opts.maxNumSeqs ?? 256;
    this.maxNumBatchedTokens = opts.maxNumBatchedTokens ?? 8192;
    this.speedup = opts.speedup ?? 1;
    this.decodeSpeedup = opts.decodeSpeedup ?? 1;
    this.chunkedPrefill = opts.enableChunkedPrefill ?? true;
    this.preemptionMode = opts.preemptionMode ?? 'lifo';
    this.dpRank = opts.dpRank ?? 0;
    for (const [k, v] of [
      ['maxNumSeqs', this.maxNumSeqs],
      ['maxNumBatchedTokens', this.maxNumBatchedTokens],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be an integer >= 1, got ${v}`);
    }
    if (!Number.isFinite(this.speedup) || this.speedup < 0) throw new RangeError(`speedup must be >= 0, got ${this.speedup}`);
    this.rng = new Rng(opts.seed ?? seedFromString(this.id));
    [this.tokLo, this.tokHi] = opts.outputTokenRange ?? [1000, 2000];
    this.kv = new KvBlockManager({
      numGpuBlocks: this.numGpuBlocks,
      blockSize: this.blockSize,
      enablePrefixCaching: opts.enablePrefixCaching ?? true,
      eventTokens: opts.kvEventTokens ?? true,
      emit: (data, tokenIds) => this.emitKv(data, tokenIds),
    });
  }

  /** Listen to this engine's KV events (in order, eventId from 0). Returns an unsubscribe. */
  onKvEvent(listener: KvEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emitKv(data: KvCacheEventData, tokenIds?: readonly number[]): void {
    const ev: RouterEvent = { workerId: this.id, dpRank: this.dpRank, eventId: this.eventId++, storageTier: 'device', data };
    for (const l of this.listeners) {
      try {
        l(ev, tokenIds);
      } catch (err) {
        this.onCallbackError(err);
      }
    }
  }

  /** The largest prompt + max_tokens this engine can ever hold. */
  maxSequenceTokens(): number {
    return this.numGpuBlocks * this.blockSize;
  }

  /** Validate a request without submitting it (throws SimRequestError). */
  validate(req: Pick<EngineRequest, 'requestId' | 'tokens' | 'maxTokens'>): void {
    if (this.closed) throw new SimRequestError('engine is closed', 'engine_closed');
    if (req.tokens.length < 1) throw new SimRequestError('the prompt must contain at least one token');
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1)
      throw new SimRequestError(`max_tokens must be an integer >= 1, got ${req.maxTokens}`);
    const kvMax = req.tokens.length + req.maxTokens - 1;
    if (kvMax > this.maxSequenceTokens()) {
      throw new SimRequestError(
        `prompt (${req.tokens.length} tokens) + max_tokens (${req.maxTokens}) needs ${Math.ceil(kvMax / this.blockSize)} KV blocks; this worker has ${this.numGpuBlocks} blocks of ${this.blockSize} tokens`,
        'context_length_exceeded',
      );
    }
    if (!this.chunkedPrefill && req.tokens.length > this.maxNumBatchedTokens) {
      throw new SimRequestError(
        `prompt (${req.tokens.length} tokens) exceeds max_num_batched_tokens (${this.maxNumBatchedTokens}) and chunked prefill is off`,
      );
    }
    if (this.byId.has(req.requestId)) throw new SimRequestError(`duplicate request id ${req.requestId}`);
  }

  /** Queue a request (throws SimRequestError when it can never run). */
  submit(req: EngineRequest): void {
    this.validate(req);
    const s = new Seq(req, this.blockSize, this.clock.now());
    this.byId.set(req.requestId, s);
    this.waiting.push(s);
    this.counters.submitted++;
    this.kick();
  }

  /** Abort a waiting or running request; its blocks are freed. Returns false if unknown. */
  abort(requestId: string): boolean {
    const s = this.byId.get(requestId);
    if (!s || s.state === 'done') return false;
    if (s.state === 'waiting') {
      const i = this.waiting.indexOf(s);
      if (i >= 0) this.waiting.splice(i, 1);
    } else {
      const i = this.running.indexOf(s);
      if (i >= 0) this.running.splice(i, 1);
    }
    this.kv.free(s);
    this.counters.aborted++;
    this.complete(s, 'aborted');
    return true;
  }

  /** Abort everything and stop the loop. Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const s of [...this.running, ...this.waiting]) this.abort(s.req.requestId);
    this.closed = true;
    this.timer?.();
    this.timer = undefined;
    this.pass = undefined;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** True when nothing is running, waiting or in a pass. */
  isIdle(): boolean {
    return this.running.length === 0 && this.waiting.length === 0 && !this.pass;
  }

  cachedBlockCount(): number {
    return this.kv.cachedBlockCount();
  }

  /** Drop the inactive prefix cache (vLLM reset_prefix_cache). */
  resetPrefixCache(): number {
    return this.kv.resetPrefixCache();
  }

  stats(): EngineStats {
    const c = this.counters;
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      usage: this.kv.usedBlocks() / this.numGpuBlocks,
      totalBlocks: this.numGpuBlocks,
      usedBlocks: this.kv.usedBlocks(),
      activeBlocks: this.kv.activeBlocks(),
      inactiveBlocks: this.kv.inactiveBlocks(),
      partialBlocks: this.kv.partialBlocks(),
      cachedBlocks: this.kv.cachedBlockCount(),
      evictions: this.kv.evictions,
      preemptions: c.preemptions,
      passes: c.passes,
      requestsSubmitted: c.submitted,
      requestsFinished: c.finished,
      requestsAborted: c.aborted,
      promptTokens: c.promptTokens,
      generationTokens: c.generationTokens,
      prefixQueryTokens: c.prefixQueryTokens,
      prefixHitTokens: c.prefixHitTokens,
      prefixQueries: c.prefixQueries,
      prefixHits: c.prefixHits,
      kvEvents: this.eventId,
      busyMs: c.busyMs,
    };
  }

  // ---------------------------------------------------------------- scheduling loop

  private kick(): void {
    if (this.closed || this.pass || this.timer) return;
    this.timer = this.clock.schedule(this.clock.now(), () => this.step());
  }

  private step(): void {
    this.timer = undefined;
    if (this.closed) return;
    const prev = this.pass;
    if (prev) this.finishPass(prev);
    this.pass = undefined;
    if (this.closed) return;
    // Back-to-back passes are anchored to the previous pass's planned end, so timer lateness
    // on the real clock does not accumulate (unless the process was blocked for long).
    const now = this.clock.now();
    const start = prev && now - prev.end < LATE_TOLERANCE_MS ? Math.min(now, prev.end) : now;
    const pass = this.startPass(start);
    if (!pass) return;
    this.pass = pass;
    this.timer = this.clock.schedule(pass.end, () => this.step());
  }

  private preempt(victim: Seq): void {
    const i = this.running.indexOf(victim);
    if (i >= 0) this.running.splice(i, 1);
    this.kv.free(victim);
    victim.kv = 0;
    victim.inPrefill = true;
    victim.state = 'waiting';
    victim.preemptions++;
    this.counters.preemptions++;
    this.waiting.unshift(victim);
  }

  private startPass(now: number): Pass | undefined {
    let budget = this.maxNumBatchedTokens;
    const entries: PassEntry[] = [];
    let preempted = false;

    // 1. Running requests, in order.
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const s = this.running[i]!;
      const remaining = s.tokens.length - s.kv;
      const n = Math.min(remaining, budget);
      if (!this.chunkedPrefill && n < remaining) continue;
      const newKv = s.kv + n;
      let ok = this.kv.tryGrow(s, s, newKv);
      let selfPreempted = false;
      while (!ok) {
        const victim = this.preemptionMode === 'lifo' ? this.running[this.running.length - 1]! : this.running[0]!;
        const vi = this.running.indexOf(victim);
        const ei = entries.findIndex((e) => e.seq === victim);
        if (ei >= 0) {
          budget += entries[ei]!.n;
          entries.splice(ei, 1);
        }
        this.preempt(victim);
        preempted = true;
        if (victim === s) {
          selfPreempted = true;
          break;
        }
        if (vi < i) i--;
        ok = this.kv.tryGrow(s, s, newKv);
      }
      if (selfPreempted) {
        i--;
        continue;
      }
      entries.push({ seq: s, n, newKv, prefill: s.inPrefill });
      budget -= n;
    }

    // 2. Waiting requests, FCFS.
    while (!preempted && this.waiting.length > 0 && this.running.length < this.maxNumSeqs) {
      const s = this.waiting[0]!;
      const target = s.tokens.length;
      // At least the last token is computed (vLLM; Dynamo 1.6.1's mocker): match at most the
      // full blocks before it.
      const overlap = this.kv.prefixMatch(s, Math.floor((target - 1) / this.blockSize));
      const cached = overlap * this.blockSize;
      const remaining = target - cached;
      if (remaining > 0 && budget <= 0) break;
      const n = Math.min(remaining, budget);
      if (!this.chunkedPrefill && n < remaining) break;
      if (!this.kv.tryGrow(s, s, cached + n)) break;
      if (!s.everScheduled) {
        s.everScheduled = true;
        s.cachedTokens = cached;
        s.cachedBlocks = overlap;
        this.counters.prefixQueries++;
        this.counters.prefixQueryTokens += target;
        this.counters.prefixHitTokens += cached;
        if (overlap > 0) this.counters.prefixHits++;
      }
      s.kv = cached;
      s.inPrefill = true;
      s.state = 'running';
      this.waiting.shift();
      this.running.push(s);
      entries.push({ seq: s, n, newKv: cached + n, prefill: true });
      budget -= n;
    }

    if (entries.length === 0) {
      // Nothing can run. With validated requests this only happens when idle.
      if (this.running.length === 0 && this.waiting.length > 0) {
        // Defensive: a request that can never fit would stall the loop forever.
        const s = this.waiting.shift()!;
        this.counters.aborted++;
        this.complete(s, 'aborted');
        return this.startPass(now);
      }
      return undefined;
    }

    // Prompt tokens computed in this pass (a preempted request recomputing its output tokens
    // is not charged for them, as in the mocker) and the decoding requests' summed lengths.
    let prefillTokens = 0;
    let decodeKvTokens = 0;
    let decoding = 0;
    for (const e of entries) {
      if (e.prefill) prefillTokens += Math.min(e.newKv, e.seq.promptLen) - Math.min(e.newKv - e.n, e.seq.promptLen);
      else {
        decoding++;
        decodeKvTokens += e.seq.tokens.length;
      }
    }
    const p = scaled(prefillMs(prefillTokens), this.speedup);
    const d = decoding > 0 ? scaled(decodeMs(decodeKvTokens / (this.numGpuBlocks * this.blockSize)), this.speedup * this.decodeSpeedup) : 0;
    this.counters.passes++;
    this.counters.busyMs += p + d;
    return { entries, start: now, end: now + p + d };
  }

  private finishPass(pass: Pass): void {
    const t = this.clock.now();
    for (const e of pass.entries) {
      const s = e.seq;
      if (s.state !== 'running') continue; // aborted during the pass
      s.kv = e.newKv;
      if (e.prefill) this.counters.promptTokens += e.n;
      if (s.kv !== s.tokens.length) continue;
      const tok = this.rng.int(this.tokLo, this.tokHi);
      s.tokens.push(tok);
      s.inPrefill = false;
      this.counters.generationTokens++;
      const index = s.outputs - 1;
      if (index === 0) {
        s.firstTokenAt = t;
        this.ttftHistogram.observe((t - s.arrival) / 1000);
        this.call(() =>
          s.req.onFirstToken?.({
            requestId: s.req.requestId,
            timeMs: t,
            ttftMs: t - s.arrival,
            promptTokens: s.promptLen,
            cachedTokens: s.cachedTokens,
            cachedBlocks: s.cachedBlocks,
            promptBlocks: Math.floor(s.promptLen / this.blockSize),
          }),
        );
      } else if (s.lastTokenAt !== undefined) {
        this.itlHistogram.observe((t - s.lastTokenAt) / 1000);
      }
      s.lastTokenAt = t;
      if (s.state !== 'running') continue;
      this.call(() => s.req.onToken?.(tok, t, index));
      if (s.state !== 'running') continue;
      if (s.outputs >= s.req.maxTokens) {
        const i = this.running.indexOf(s);
        if (i >= 0) this.running.splice(i, 1);
        this.kv.free(s);
        this.counters.finished++;
        this.complete(s, 'finished');
      }
    }
  }

  private complete(s: Seq, status: EngineResult['status']): void {
    s.state = 'done';
    this.byId.delete(s.req.requestId);
    const finish = this.clock.now();
    const result: EngineResult = {
      requestId: s.req.requestId,
      status,
      promptTokens: s.promptLen,
      completionTokens: s.outputs,
      cachedTokens: s.cachedTokens,
      cachedBlocks: s.cachedBlocks,
      promptBlocks: Math.floor(s.promptLen / this.blockSize),
      arrivalMs: s.arrival,
      firstTokenMs: s.firstTokenAt,
      finishMs: finish,
      ttftMs: s.firstTokenAt !== undefined ? s.firstTokenAt - s.arrival : undefined,
      preemptions: s.preemptions,
      outputTokens: s.tokens.slice(s.promptLen),
    };
    this.call(() => s.req.onDone?.(result));
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.onCallbackError(err);
    }
  }
}
