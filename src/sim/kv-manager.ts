/**
 * Paged KV block manager with a prefix cache, modelled on Dynamo mocker's vLLM backend
 * (dynamo-facts §5):
 *
 * - A full block is identified by its sequence hash (salt 1337 chain, the router's hash);
 *   a partial (tail) block belongs to one sequence and is only counted.
 * - Full blocks are either active (reference count > 0) or inactive. Inactive blocks stay in
 *   the prefix cache, in an LRU evictor (Map insertion order = least recently freed first).
 * - Using a block: active -> refcount + 1; inactive -> reactivated; absent -> a new slot,
 *   evicting the LRU inactive block when the cache is full (emits Removed).
 * - A new full block emits Stored with the parent (previous block's) hash; consecutive new
 *   blocks of one allocation share one Stored event. Reuse emits nothing.
 * - A partial block that fills up during decode is promoted to a full block (Stored if new).
 * - Freeing dereferences in reverse block order, so a sequence's tail becomes LRU first.
 * - Capacity: active + partial + inactive <= numGpuBlocks.
 */
import type { KvCacheEventData, StoredBlock } from '../router/types.js';

/** Where a sequence's block hashes and tokens come from (computed lazily by the owner). */
export interface BlockSource {
  /** Sequence (chained) hash of full block i. */
  seqHash(i: number): bigint;
  /** Local (tokens) hash of full block i. */
  localHash(i: number): bigint;
  /** Token ids of full block i (for vLLM-format events). */
  blockTokens(i: number): readonly number[];
}

/** The blocks one sequence holds. */
export interface BlockHolder {
  /** Full blocks held, in order (sequence hashes). */
  held: bigint[];
  /** Holds one partial tail block. */
  partial: boolean;
}

export type KvEmit = (data: KvCacheEventData, tokenIds?: readonly number[]) => void;

export interface KvManagerOptions {
  numGpuBlocks: number;
  blockSize: number;
  enablePrefixCaching?: boolean;
  emit?: KvEmit;
  /**
   * Collect each stored block's token ids for the emitter (default true; vLLM-format events
   * carry them). In-process consumers that only need hashes (the benchmark) turn it off.
   */
  eventTokens?: boolean;
}

export class KvBlockManager {
  readonly capacity: number;
  readonly blockSize: number;
  readonly prefixCaching: boolean;
  private readonly active = new Map<bigint, number>();
  /** LRU evictor: iteration order is least recently used first. */
  private readonly inactive = new Map<bigint, true>();
  private evictIter?: IterableIterator<bigint>;
  private partials = 0;
  private emit: KvEmit;
  private readonly eventTokens: boolean;
  /** Counters. */
  evictions = 0;

  constructor(opts: KvManagerOptions) {
    if (!Number.isInteger(opts.numGpuBlocks) || opts.numGpuBlocks < 1)
      throw new RangeError(`numGpuBlocks must be an integer >= 1, got ${opts.numGpuBlocks}`);
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1)
      throw new RangeError(`blockSize must be an integer >= 1, got ${opts.blockSize}`);
    this.capacity = opts.numGpuBlocks;
    this.blockSize = opts.blockSize;
    this.prefixCaching = opts.enablePrefixCaching ?? true;
    this.emit = opts.emit ?? (() => {});
    this.eventTokens = opts.eventTokens ?? true;
  }

  setEmitter(emit: KvEmit): void {
    this.emit = emit;
  }

  /** Blocks in use by sequences (active full + partial): what vLLM's usage counts. */
  usedBlocks(): number {
    return this.active.size + this.partials;
  }

  activeBlocks(): number {
    return this.active.size;
  }

  inactiveBlocks(): number {
    return this.inactive.size;
  }

  partialBlocks(): number {
    return this.partials;
  }

  /** Full blocks in the prefix cache (active or inactive): what the router's index should hold. */
  cachedBlockCount(): number {
    return this.active.size + this.inactive.size;
  }

  /** Every cached full block hash (active and inactive). */
  cachedHashes(): bigint[] {
    return [...this.active.keys(), ...this.inactive.keys()];
  }

  /** Inactive blocks, least recently used first. */
  inactiveLru(): bigint[] {
    return [...this.inactive.keys()];
  }

  refCount(hash: bigint): number {
    return this.active.get(hash) ?? 0;
  }

  has(hash: bigint): boolean {
    return this.active.has(hash) || this.inactive.has(hash);
  }

  /** Longest leading run of the first `nFull` blocks of `src` present in the cache. */
  prefixMatch(src: BlockSource, nFull: number): number {
    if (!this.prefixCaching) return 0;
    let i = 0;
    while (i < nFull && this.has(src.seqHash(i))) i++;
    return i;
  }

  /** Would growing `h` to `kvTokens` tokens fit? (no state change) */
  canGrow(h: BlockHolder, src: BlockSource, kvTokens: number): boolean {
    return this.usedBlocks() + this.growthDelta(h, src, kvTokens) <= this.capacity;
  }

  private growthDelta(h: BlockHolder, src: BlockSource, kvTokens: number): number {
    const targetFull = Math.floor(kvTokens / this.blockSize);
    const wantPartial = kvTokens % this.blockSize !== 0;
    let delta = 0;
    for (let i = h.held.length; i < targetFull; i++) {
      if (!this.active.has(src.seqHash(i))) delta++;
    }
    if (h.partial) delta--;
    if (wantPartial) delta++;
    return delta;
  }

  /**
   * Grow a sequence's blocks to cover `kvTokens` tokens. Returns false (and changes nothing)
   * when the blocks would not fit even after evicting every inactive block.
   */
  tryGrow(h: BlockHolder, src: BlockSource, kvTokens: number): boolean {
    const bs = this.blockSize;
    const targetFull = Math.floor(kvTokens / bs);
    const wantPartial = kvTokens % bs !== 0;
    const curFull = h.held.length;
    if (targetFull < curFull) throw new Error(`cannot shrink a sequence (${curFull} -> ${targetFull} full blocks)`);
    if (targetFull === curFull && wantPartial === h.partial) return true;
    if (this.usedBlocks() + this.growthDelta(h, src, kvTokens) > this.capacity) return false;

    // The partial tail either is promoted (its slot becomes the full block) or stays.
    if (h.partial && targetFull > curFull) {
      this.partials--;
      h.partial = false;
    }
    // Phase 1: pin every block already cached, so that evictions below cannot take them.
    const n = targetFull - curFull;
    const present = new Array<boolean>(n);
    for (let k = 0; k < n; k++) {
      const hash = src.seqHash(curFull + k);
      const rc = this.active.get(hash);
      if (rc !== undefined) {
        this.active.set(hash, rc + 1);
        present[k] = true;
      } else if (this.inactive.has(hash)) {
        this.inactive.delete(hash);
        this.active.set(hash, 1);
        present[k] = true;
      } else {
        present[k] = false;
      }
    }
    // Phase 2: new blocks in order, evicting LRU inactive blocks when full.
    const removed: bigint[] = [];
    const stored: { parentHash: bigint | null; blocks: StoredBlock[]; tokens: number[] }[] = [];
    let run: (typeof stored)[number] | undefined;
    for (let k = 0; k < n; k++) {
      const i = curFull + k;
      const hash = src.seqHash(i);
      if (!present[k]) {
        this.makeRoom(removed);
        this.active.set(hash, 1);
        if (!run) {
          run = { parentHash: i > 0 ? src.seqHash(i - 1) : null, blocks: [], tokens: [] };
          stored.push(run);
        }
        run.blocks.push({ blockHash: hash, tokensHash: src.localHash(i) });
        if (this.eventTokens) for (const t of src.blockTokens(i)) run.tokens.push(t);
      } else {
        run = undefined;
      }
      h.held.push(hash);
    }
    if (wantPartial && !h.partial) {
      this.makeRoom(removed);
      this.partials++;
      h.partial = true;
    }
    if (removed.length > 0) this.emit({ type: 'removed', blockHashes: removed });
    for (const s of stored)
      this.emit({ type: 'stored', parentHash: s.parentHash, blocks: s.blocks }, this.eventTokens ? s.tokens : undefined);
    return true;
  }

  private makeRoom(removed: bigint[]): void {
    if (this.active.size + this.partials + this.inactive.size < this.capacity) return;
    // A long-lived iterator finds the LRU block in amortised O(1): a fresh keys().next() would
    // rescan every deleted slot at the front of the Map's table on each eviction (V8 keeps
    // them until a rehash). Map iterators skip deleted entries and see later insertions, so
    // the next live key is always the least recently used one.
    let it = this.evictIter?.next();
    if (!it || it.done) {
      this.evictIter = this.inactive.keys();
      it = this.evictIter.next();
    }
    if (it.done) throw new Error('KV cache full with no inactive block to evict (capacity check failed)');
    this.inactive.delete(it.value);
    this.evictions++;
    removed.push(it.value);
  }

  /** Release all of a sequence's blocks, tail first (reverse block order). */
  free(h: BlockHolder): void {
    if (h.partial) {
      this.partials--;
      h.partial = false;
    }
    const dropped: bigint[] = [];
    for (let i = h.held.length - 1; i >= 0; i--) {
      const hash = h.held[i]!;
      const rc = this.active.get(hash);
      if (rc === undefined) throw new Error('freeing a block that is not active');
      if (rc > 1) {
        this.active.set(hash, rc - 1);
      } else {
        this.active.delete(hash);
        if (this.prefixCaching) this.inactive.set(hash, true);
        else dropped.push(hash);
      }
    }
    h.held = [];
    if (dropped.length > 0) this.emit({ type: 'removed', blockHashes: dropped });
  }

  /**
   * Drop every inactive block (vLLM's reset_prefix_cache). Emits AllBlocksCleared when no
   * block is in use, else Removed for the dropped ones. Returns the number dropped.
   */
  resetPrefixCache(): number {
    const hashes = [...this.inactive.keys()];
    this.inactive.clear();
    this.evictIter = undefined;
    if (this.active.size === 0 && this.partials === 0) this.emit({ type: 'cleared' });
    else if (hashes.length > 0) this.emit({ type: 'removed', blockHashes: hashes });
    return hashes.length;
  }
}
