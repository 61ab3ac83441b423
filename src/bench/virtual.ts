/**
 * Virtual-time replay: the real router core (KvRouter) in front of one SimEngine per worker,
 * all on one discrete-event VirtualClock in this process. Nothing sleeps; a run is a pure
 * function of (workload, options), so the same seed gives the same numbers.
 *
 * Per request, as the HTTP router does it: route() at arrival (books the request on the
 * chosen worker), the engine's first token -> markPrefillCompleted(), completion -> free().
 * Each engine's KV events are applied to the router synchronously and in order, at the
 * moment the engine emits them (pass start: blocks allocated; eviction: removed).
 *
 * Arrivals: fixed schedule `arrivalMs / speedup` from the first request (open loop: requests
 * sharing a timestamp are sent together). Later turns of a session: `delayMs / speedup` after
 * the previous turn completed.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { KvRouter, type KvRouterConfig, type RoutingMode, type TtftModelConfig } from '../router/index.js';
import { SimEngine, SimRequestError, VirtualClock, seedFromString } from '../sim/index.js';
import { PromptHasher, engineHashes } from './prompt-hashes.js';
import type { RequestRecord } from './stats.js';
import { promptTailArray, promptTokenArray } from './synth.js';
import { turnSchedule, type BenchRequest, type Workload } from './workload.js';

/** Dynamo mocker defaults for vLLM (dynamo-facts §5). */
export const MOCKER_DEFAULTS = { blockSize: 64, gpuBlocks: 16384, maxNumSeqs: 256, maxNumBatchedTokens: 8192 } as const;

export interface VirtualOptions {
  mode: RoutingMode;
  workers: number;
  blockSize?: number;
  gpuBlocks?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  /** Arrival speedup: timestamps (and session delays) are divided by it. */
  speedup?: number;
  /** Seeds the router's RNG (tie-breaks, random mode) and the engines' output tokens. */
  seed?: number;
  routerConfig?: Partial<KvRouterConfig>;
  /** kv-ttft model options (default: the engines' batch size and KV capacity, mocker prior). */
  ttftModel?: Partial<TtftModelConfig>;
  signal?: AbortSignal;
  /** Called now and then with (requests done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Reuse a hasher across runs of the same workload (must match seed and block size). */
  hasher?: PromptHasher;
  /**
   * Give the engines every prompt token (default false: only the partial tail block's tokens
   * are materialised, since the full blocks' hashes are passed precomputed and KV events
   * carry no tokens here; the results are identical, see test/bench).
   */
  fullPromptTokens?: boolean;
}

export interface VirtualResult {
  records: RequestRecord[];
  /** Virtual ms from the first arrival to the last completion. */
  virtualMs: number;
  wallMs: number;
  engines: Array<{
    id: string;
    preemptions: number;
    evictions: number;
    prefixHitTokens: number;
    prefixQueryTokens: number;
    kvEvents: number;
    passes: number;
  }>;
  /**
   * How the router's indexer took the engines' KV events, by `<type>:<status>` (e.g.
   * `stored:ok`, `stored:parent_block_not_found`, `removed:block_not_found`). In-process events
   * arrive in order and complete, so anything but `:ok` means the router's view of the caches
   * has drifted from the engines' (a plumbing bug, not a routing-policy effect).
   */
  routerEvents: Record<string, number>;
}

const EVENTS_PER_SLICE = 20_000;

export async function runVirtual(w: Workload, opts: VirtualOptions): Promise<VirtualResult> {
  const wall0 = performance.now();
  const bs = opts.blockSize ?? MOCKER_DEFAULTS.blockSize;
  const speedup = opts.speedup ?? 1;
  if (!(speedup > 0) || !Number.isFinite(speedup)) throw new RangeError(`speedup must be a number > 0, got ${speedup}`);
  const seed = opts.seed ?? 0;
  const hasher = opts.hasher ?? new PromptHasher(w.seed, bs, w.segmentTokens);
  if (hasher.blockSize !== bs || hasher.seed !== w.seed) throw new RangeError('the hasher does not match the workload seed / block size');

  const clock = new VirtualClock(0);
  const router = new KvRouter({
    blockSize: bs,
    mode: opts.mode,
    seed,
    config: opts.routerConfig,
    ttftModel: {
      maxBatchedTokens: opts.maxNumBatchedTokens ?? MOCKER_DEFAULTS.maxNumBatchedTokens,
      kvBlocks: opts.gpuBlocks ?? MOCKER_DEFAULTS.gpuBlocks,
      ...opts.ttftModel,
    },
  });
  const engines: SimEngine[] = [];
  const byId = new Map<string, SimEngine>();
  let callbackError: unknown;
  const routerEvents: Record<string, number> = {};
  for (let i = 0; i < opts.workers; i++) {
    const id = `worker-${i}`;
    const e = new SimEngine(
      {
        id,
        blockSize: bs,
        numGpuBlocks: opts.gpuBlocks ?? MOCKER_DEFAULTS.gpuBlocks,
        maxNumSeqs: opts.maxNumSeqs ?? MOCKER_DEFAULTS.maxNumSeqs,
        maxNumBatchedTokens: opts.maxNumBatchedTokens ?? MOCKER_DEFAULTS.maxNumBatchedTokens,
        seed: seedFromString(`${seed}:${id}`),
        kvEventTokens: false,
      },
      clock,
    );
    e.onCallbackError = (err) => {
      callbackError ??= err;
    };
    e.onKvEvent((ev) => {
      const k = `${ev.data.type}:${router.applyEvent(ev, clock.now()).status}`;
      routerEvents[k] = (routerEvents[k] ?? 0) + 1;
    });
    router.addWorker(id);
    engines.push(e);
    byId.set(id, e);
  }

  const reqs = w.requests;
  const records: RequestRecord[] = new Array(reqs.length);
  // First turns in arrival order (stable); later turns wait for their predecessor.
  const { firsts, nextTurn, t0 } = turnSchedule(reqs);
  let done = 0;
  let sent = 0;

  const finish = (r: BenchRequest) => {
    done++;
    const nt = nextTurn.get(r.index);
    if (nt) clock.schedule(clock.now() + (nt.delayMs ?? 0) / speedup, () => dispatch(nt));
  };

  const dispatch = (r: BenchRequest) => {
    sent++;
    const now = clock.now();
    const requestId = `req-${r.index}`;
    const rec: RequestRecord = { index: r.index, startMs: now, inputTokens: r.inputLength, outputTokens: 0 };
    records[r.index] = rec;
    const blocks = hasher.blocks(r);
    const tokens = opts.fullPromptTokens ? promptTokenArray(w.seed, r) : promptTailArray(w.seed, r, blocks.n * bs);
    const d = router.route({ requestId, tokens, nowMs: now, blockHashPairs: blocks.localPairs, sequenceHashPairs: blocks.seqPairs });
    rec.worker = d.chosen;
    rec.predictedCachedTokens = d.cached_tokens;
    const cw = d.workers.find((x) => x.id === d.chosen);
    if (cw?.predicted_ttft_ms !== undefined) rec.predictedTtftMs = cw.predicted_ttft_ms;
    let bestOverlap = 0;
    for (const ws of d.workers) if (ws.overlap_blocks > bestOverlap) bestOverlap = ws.overlap_blocks;
    rec.bestOverlapTokens = Math.min(bestOverlap * bs, r.inputLength);
    const engine = byId.get(d.chosen)!;
    try {
      engine.submit({
        requestId,
        tokens,
        maxTokens: r.outputLength,
        promptBlockHashes: engineHashes(blocks),
        onFirstToken: (info) => {
          rec.ttftMs = info.timeMs - now;
          rec.cachedTokens = info.cachedTokens;
          router.observeTtft(requestId, rec.ttftMs);
          router.markPrefillCompleted(requestId, info.timeMs);
        },
        onDone: (res) => {
          router.free(requestId, clock.now());
          if (res.status === 'finished') {
            rec.latencyMs = res.finishMs - now;
            rec.outputTokens = res.completionTokens;
          } else {
            rec.error = 'aborted by the engine';
          }
          finish(r);
        },
      });
    } catch (err) {
      router.free(requestId, now);
      rec.error = err instanceof SimRequestError ? err.message.replace(/\d+/g, 'N') : String(err);
      finish(r);
    }
  };

  // Fixed-schedule arrivals: one pending timer at a time, all requests of a timestamp together.
  let p = 0;
  const scheduleNext = () => {
    if (p >= firsts.length) return;
    const at = (firsts[p]!.arrivalMs - t0) / speedup;
    clock.schedule(at, () => {
      const ts = firsts[p]!.arrivalMs;
      while (p < firsts.length && firsts[p]!.arrivalMs === ts) dispatch(firsts[p++]!);
      scheduleNext();
    });
  };
  scheduleNext();

  let lastReport = 0;
  for (;;) {
    if (opts.signal?.aborted) {
      for (const e of engines) e.close();
      throw opts.signal.reason ?? new Error('aborted');
    }
    clock.runUntilIdle(EVENTS_PER_SLICE);
    if (callbackError) throw callbackError;
    if (opts.onProgress && done - lastReport >= 500) {
      lastReport = done;
      opts.onProgress(done, reqs.length);
    }
    if (clock.pending === 0) break;
    await yieldToLoop();
  }
  if (done !== reqs.length || sent !== reqs.length) throw new Error(`internal: replay ended with ${done}/${reqs.length} requests done`);
  if (lastReport !== done) opts.onProgress?.(done, reqs.length);
  const virtualMs = clock.now();
  const stats = engines.map((e) => {
    const s = e.stats();
    return {
      id: e.id,
      preemptions: s.preemptions,
      evictions: s.evictions,
      prefixHitTokens: s.prefixHitTokens,
      prefixQueryTokens: s.prefixQueryTokens,
      kvEvents: s.kvEvents,
      passes: s.passes,
    };
  });
  for (const e of engines) e.close();
  return { records, virtualMs, wallMs: performance.now() - wall0, engines: stats, routerEvents };
}
