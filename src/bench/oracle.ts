/**
 * The oracle: the prefix hit rate a perfect router could get if all workers' KV capacity were
 * one cache. The same requests are replayed, in workload order, through one LRU cache of
 * `capacityBlocks` blocks; each request counts its leading blocks already cached, then touches
 * all its prompt blocks (tail first, so a prompt's head stays most recent and tails are
 * evicted first, as the engine frees blocks in reverse order). With an infinite capacity this
 * is the workload's inherent prefix reuse (conversation trace: 36.64 % of 512-token blocks).
 *
 * It ignores timing, concurrency and output-token blocks, so it is an upper reference, not a
 * bound every schedule respects.
 */
import type { PromptHasher } from './prompt-hashes.js';
import { grown } from './typed.js';
import type { Workload } from './workload.js';

export interface OracleResult {
  /** Cached prompt tokens / prompt tokens (the unit of the workers' prefix_hit_rate). */
  hit_rate: number;
  /** Cached blocks / prompt blocks. */
  block_hit_rate: number;
  cached_tokens: number;
  prompt_tokens: number;
  cached_blocks: number;
  prompt_blocks: number;
  capacity_blocks: number | null;
  block_size: number;
}

/**
 * LRU replay over per-request block key lists. Keys are dense non-negative integers (block ids),
 * so the cache is a doubly linked list over typed arrays indexed by id (no hash map).
 */
function lruPrefixReplay(
  keysOf: (i: number) => ArrayLike<number>,
  count: number,
  capacityBlocks: number,
  tokensOf: (i: number, hitBlocks: number) => { cached: number; prompt: number },
): { cachedTokens: number; promptTokens: number; cachedBlocks: number; promptBlocks: number } {
  const lru = new DenseLru(capacityBlocks);
  let cachedTokens = 0;
  let promptTokens = 0;
  let cachedBlocks = 0;
  let promptBlocks = 0;
  for (let i = 0; i < count; i++) {
    const keys = keysOf(i);
    let hit = 0;
    while (hit < keys.length && lru.has(keys[hit]!)) hit++;
    const t = tokensOf(i, hit);
    cachedTokens += t.cached;
    promptTokens += t.prompt;
    cachedBlocks += hit;
    promptBlocks += keys.length;
    for (let b = keys.length - 1; b >= 0; b--) lru.touch(keys[b]!);
  }
  return { cachedTokens, promptTokens, cachedBlocks, promptBlocks };
}

/** LRU set of dense integer ids: touch() makes an id most recent, evicting the least recent. */
export class DenseLru {
  private prev = new Int32Array(1024);
  private next = new Int32Array(1024);
  private inCache = new Uint8Array(1024);
  /** Sentinel-free list: head = least recent, tail = most recent; -1 = none. */
  private head = -1;
  private tail = -1;
  size = 0;

  constructor(readonly capacity: number) {}

  has(id: number): boolean {
    return id < this.inCache.length && this.inCache[id] === 1;
  }

  private grow(id: number): void {
    let n = this.inCache.length;
    while (n <= id) n *= 2;
    this.prev = grown(this.prev, n);
    this.next = grown(this.next, n);
    this.inCache = grown(this.inCache, n);
  }

  private unlink(id: number): void {
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }

  touch(id: number): void {
    if (id >= this.inCache.length) this.grow(id);
    if (this.inCache[id] === 1) {
      if (this.tail === id) return;
      this.unlink(id);
    } else {
      this.inCache[id] = 1;
      this.size++;
    }
    this.prev[id] = this.tail;
    this.next[id] = -1;
    if (this.tail >= 0) this.next[this.tail] = id;
    else this.head = id;
    this.tail = id;
    while (this.size > this.capacity && this.head >= 0) {
      const v = this.head;
      this.unlink(v);
      this.inCache[v] = 0;
      this.size--;
    }
  }
}

/**
 * Oracle in engine blocks: blocks of `hasher.blockSize` tokens, capacity in those blocks
 * (workers x gpu_blocks for "all workers' capacity"). Only full blocks can be cached, as in
 * the engines, so cached tokens = hit blocks x block size.
 */
export function engineOracle(w: Workload, hasher: PromptHasher, capacityBlocks: number): OracleResult {
  const bs = hasher.blockSize;
  const r = lruPrefixReplay(
    (i) => hasher.blocks(w.requests[i]!).keys,
    w.requests.length,
    capacityBlocks,
    (i, hit) => ({ cached: Math.min(hit * bs, w.requests[i]!.inputLength), prompt: w.requests[i]!.inputLength }),
  );
  return result(r, Number.isFinite(capacityBlocks) ? capacityBlocks : null, bs);
}

/**
 * Oracle in the trace's own blocks (segments: 512-token hash ids), keyed by segment id. Valid
 * for prefix-chained ids (Mooncake's are). Tokens: hit segments' lengths.
 */
export function segmentOracle(w: Workload, capacitySegments = Infinity): OracleResult {
  // Dense ids for the segment ids (trace ids are dense already; synthetic ones need not be).
  const dense = new Map<number, number>();
  const keys = w.requests.map((r) =>
    r.segments.map((s) => {
      let d = dense.get(s.id);
      if (d === undefined) dense.set(s.id, (d = dense.size));
      return d;
    }),
  );
  const r = lruPrefixReplay(
    (i) => keys[i]!,
    w.requests.length,
    capacitySegments,
    (i, hit) => {
      const segs = w.requests[i]!.segments;
      let c = 0;
      for (let k = 0; k < hit; k++) c += segs[k]!.len;
      return { cached: c, prompt: w.requests[i]!.inputLength };
    },
  );
  return result(r, Number.isFinite(capacitySegments) ? capacitySegments : null, w.segmentTokens);
}

function result(r: ReturnType<typeof lruPrefixReplay>, cap: number | null, bs: number): OracleResult {
  return {
    hit_rate: r.promptTokens ? r.cachedTokens / r.promptTokens : 0,
    block_hit_rate: r.promptBlocks ? r.cachedBlocks / r.promptBlocks : 0,
    cached_tokens: r.cachedTokens,
    prompt_tokens: r.promptTokens,
    cached_blocks: r.cachedBlocks,
    prompt_blocks: r.promptBlocks,
    capacity_blocks: cap,
    block_size: bs,
  };
}
