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
 *
 * Blocks are keyed by their hash's u32 halves in an open-addressing table (the router's
 * U64Table) and live in typed arrays by block id, the inactive ones on an intrusive LRU list:
 * no bigint is made or hashed to look a block up (Maps keyed by bigint were ~20 % of a sim
 * worker's main thread under load). Bigints are made only for the events.
 */
import type { KvCacheEventData, StoredBlock } from '../router/types.js';
import { joinU64, splitU64, U64Table } from '../router/u64.js';

/** Where a sequence's block hashes and tokens come from (computed lazily by the owner). */
export interface BlockSource {
  /** Sequence (chained) hash of full block i: low and high u32 halves (the manager's key). */
  seqLo(i: number): number;
  seqHi(i: number): number;
  /** Sequence (chained) hash of full block i, for events. */
  seqHash(i: number): bigint;
  /** Local (tokens) hash of full block i, for events. */
  localHash(i: number): bigint;
  /** Token ids of full block i (for vLLM-format events). */
  blockTokens(i: number): readonly number[];
}

/** The blocks one sequence holds. */
export interface BlockHolder {
  /** Full blocks held, in order (the manager's block ids). */
  held: number[];
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

const NONE = -1;
const halves = new Uint32Array(2);

export class KvBlockManager {
  readonly capacity: number;
  readonly blockSize: number;
  readonly prefixCaching: boolean;
  /** Cached full blocks (active and inactive): hash (lo, hi) -> block id. */
  private readonly ids = new U64Table(1024);
  /** Per block id: hash halves, reference count (0 = inactive), LRU links (inactive only). */
  private lo = new Uint32Array(0);
  private hi = new Uint32Array(0);
  private ref = new Int32Array(0);
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  /** Ids never used are `used`..; ids freed since are on `freeIds`. */
  private used = 0;
  private readonly freeIds: number[] = [];
  /** Inactive blocks, least recently used at the head. */
  private lruHead = NONE;
  private lruTail = NONE;
  private nActive = 0;
  private nInactive = 0;
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
    return this.nActive + this.partials;
  }

  activeBlocks(): number {
    return this.nActive;
  }

  inactiveBlocks(): number {
    return this.nInactive;
  }

  partialBlocks(): number {
    return this.partials;
  }

  /** Full blocks in the prefix cache (active or inactive): what the router's index should hold. */
  cachedBlockCount(): number {
    return this.nActive + this.nInactive;
  }

  /** Every cached full block hash (active and inactive). */
  cachedHashes(): bigint[] {
    const out: bigint[] = [];
    const t = this.ids;
    for (let i = 0; i < t.capacity; i++) if (t.isUsed(i)) out.push(joinU64(t.loAt(i), t.hiAt(i)));
    return out;
  }

  /** Inactive blocks, least recently used first. */
  inactiveLru(): bigint[] {
    const out: bigint[] = [];
    for (let b = this.lruHead; b !== NONE; b = this.next[b]!) out.push(joinU64(this.lo[b]!, this.hi[b]!));
    return out;
  }

  refCount(hash: bigint): number {
    const b = this.idOf(hash);
    return b === NONE ? 0 : this.ref[b]!;
  }

  has(hash: bigint): boolean {
    return this.idOf(hash) !== NONE;
  }

  private idOf(hash: bigint): number {
    splitU64(BigInt.asUintN(64, hash), halves, 0);
    return this.ids.get(0, halves[0]!, halves[1]!, NONE);
  }

  /** Longest leading run of the first `nFull` blocks of `src` present in the cache. */
  prefixMatch(src: BlockSource, nFull: number): number {
    if (!this.prefixCaching) return 0;
    let i = 0;
    while (i < nFull && this.ids.get(0, src.seqLo(i), src.seqHi(i), NONE) !== NONE) i++;
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
      const b = this.ids.get(0, src.seqLo(i), src.seqHi(i), NONE);
      if (b === NONE || this.ref[b] === 0) delta++;
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
    const found = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const b = this.ids.get(0, src.seqLo(curFull + k), src.seqHi(curFull + k), NONE);
      found[k] = b;
      if (b === NONE) continue;
      if (this.ref[b] === 0) {
        this.unlink(b);
        this.nInactive--;
        this.nActive++;
      }
      this.ref[b]!++;
    }
    // Phase 2: new blocks in order, evicting LRU inactive blocks when full.
    const removed: bigint[] = [];
    const stored: { parentHash: bigint | null; blocks: StoredBlock[]; tokens: number[] }[] = [];
    let run: (typeof stored)[number] | undefined;
    for (let k = 0; k < n; k++) {
      const i = curFull + k;
      let b = found[k]!;
      if (b === NONE) {
        this.makeRoom(removed);
        b = this.newBlock(src.seqLo(i), src.seqHi(i));
        if (!run) {
          run = { parentHash: i > 0 ? src.seqHash(i - 1) : null, blocks: [], tokens: [] };
          stored.push(run);
        }
        run.blocks.push({ blockHash: src.seqHash(i), tokensHash: src.localHash(i) });
        if (this.eventTokens) for (const t of src.blockTokens(i)) run.tokens.push(t);
      } else {
        run = undefined;
      }
      h.held.push(b);
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

  /** A new active block (reference count 1) for hash (lo, hi). */
  private newBlock(lo: number, hi: number): number {
    let b = this.freeIds.pop();
    if (b === undefined) {
      b = this.used++;
      if (b >= this.ref.length) this.growArrays(b + 1);
    }
    this.lo[b] = lo;
    this.hi[b] = hi;
    this.ref[b] = 1;
    this.ids.set(0, lo, hi, b);
    this.nActive++;
    return b;
  }

  /** Per-block arrays grow as blocks are first used (by doubling, up to the capacity). */
  private growArrays(need: number): void {
    const len = Math.min(this.capacity, Math.max(need, 1024, this.ref.length * 2));
    const grow = <T extends Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const c = make(len);
      c.set(a);
      return c;
    };
    this.lo = grow(this.lo, (n) => new Uint32Array(n));
    this.hi = grow(this.hi, (n) => new Uint32Array(n));
    this.ref = grow(this.ref, (n) => new Int32Array(n));
    this.prev = grow(this.prev, (n) => new Int32Array(n));
    this.next = grow(this.next, (n) => new Int32Array(n));
  }

  /** Append block `b` to the inactive list (most recently used end). */
  private append(b: number): void {
    this.prev[b] = this.lruTail;
    this.next[b] = NONE;
    if (this.lruTail === NONE) this.lruHead = b;
    else this.next[this.lruTail] = b;
    this.lruTail = b;
  }

  private unlink(b: number): void {
    const p = this.prev[b]!;
    const q = this.next[b]!;
    if (p === NONE) this.lruHead = q;
    else this.next[p] = q;
    if (q === NONE) this.lruTail = p;
    else this.prev[q] = p;
  }

  /** Drop block `b` from the cache (its id is reused); returns its hash. */
  private forget(b: number): bigint {
    this.ids.delete(0, this.lo[b]!, this.hi[b]!);
    this.freeIds.push(b);
    return joinU64(this.lo[b]!, this.hi[b]!);
  }

  private makeRoom(removed: bigint[]): void {
    if (this.nActive + this.partials + this.nInactive < this.capacity) return;
    const b = this.lruHead;
    if (b === NONE) throw new Error('KV cache full with no inactive block to evict (capacity check failed)');
    this.unlink(b);
    this.nInactive--;
    this.evictions++;
    removed.push(this.forget(b));
  }

  /** Release all of a sequence's blocks, tail first (reverse block order). */
  free(h: BlockHolder): void {
    if (h.partial) {
      this.partials--;
      h.partial = false;
    }
    const dropped: bigint[] = [];
    for (let i = h.held.length - 1; i >= 0; i--) {
      const b = h.held[i]!;
      const rc = this.ref[b]!;
      if (rc < 1) throw new Error('freeing a block that is not active');
      this.ref[b] = rc - 1;
      if (rc > 1) continue;
      this.nActive--;
      if (this.prefixCaching) {
        this.append(b);
        this.nInactive++;
      } else dropped.push(this.forget(b));
    }
    h.held = [];
    if (dropped.length > 0) this.emit({ type: 'removed', blockHashes: dropped });
  }

  /**
   * Drop every inactive block (vLLM's reset_prefix_cache). Emits AllBlocksCleared when no
   * block is in use, else Removed for the dropped ones. Returns the number dropped.
   */
  resetPrefixCache(): number {
    const hashes: bigint[] = [];
    for (let b = this.lruHead; b !== NONE; ) {
      const q = this.next[b]!;
      hashes.push(this.forget(b));
      b = q;
    }
    this.lruHead = this.lruTail = NONE;
    this.nInactive = 0;
    if (this.nActive === 0 && this.partials === 0) this.emit({ type: 'cleared' });
    else if (hashes.length > 0) this.emit({ type: 'removed', blockHashes: hashes });
    return hashes.length;
  }
}
