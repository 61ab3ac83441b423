/**
 * Radix-tree KV indexer (dynamo-facts §1.1, newest semantics).
 *
 * The tree is keyed by local block hashes (`tokens_hash`); every node carries the set of
 * (worker, dp_rank) "slots" that hold that block, and every slot has a lookup map from its
 * engine block hash (`block_hash`) to the node, used to resolve parents and removals.
 *
 * Representation (chosen for speed, semantics are Dynamo's):
 * - nodes are fixed-size int32 records in one typed array, addressed by an int id (0 = root);
 * - the worker set of a node is a bitset of `stride` u32 words, one bit per slot;
 * - children are one global open-addressing table keyed by (parent id, tokens_hash);
 *   each node also keeps a doubly linked child list so "clear children" can enumerate them;
 * - each slot's lookup is its own table keyed by block_hash (u64 as two u32, exact).
 *
 * Semantics:
 * - Stored: the start node is the root (no parent) or lookup[slot][parent]; an unknown parent
 *   drops the whole event (`parent_block_not_found`). A duplicate block hash inside the event or
 *   a block hash equal to the parent rejects the event (`invalid_block_sequence`) before anything
 *   is applied. Missing children are created, reusing lookup[slot][block_hash] when present
 *   (re-attaching a node detached by an earlier clear).
 * - Removed: no cascade. The slot leaves the node; if the node's worker set becomes empty its
 *   children are cleared (detached: still reachable by lookup, no longer by find_matches).
 *   Unknown hashes are skipped and reported as `block_not_found` after the rest is applied.
 * - Cleared: only the emitting (worker, dp_rank).
 * - find_matches: per-slot count of consecutive blocks from the start (early_exit = false).
 *
 * Memory bound (`maxIndexedBlocks`, counted in (slot, block) lookup entries): when exceeded, the
 * entries that were stored or refreshed least recently are evicted first (FIFO by last store),
 * exactly as if the worker had sent `Removed` for them. Engines evict least-recently-used blocks
 * themselves, so the oldest stores are the likeliest to be gone already; evicting can only make
 * the router under-predict overlap, never over-predict it. Evictions are counted.
 *
 * Approximate mode (TTL): `storeWithTtl` records blocks whose expiry is rounded up to 100 ms
 * buckets; storing again refreshes the expiry; `expireTtl(nowMs)` removes expired blocks. The
 * records a refresh superseded are compacted away, so they stay within four per indexed block.
 *
 * Lower storage tiers (host / disk / external, from events that carry a tier) are kept in
 * separate continuation indexes (lower-tier.ts); each node remembers the engine block hash it
 * was last stored under, which is where a worker's lower-tier walk continues its device match.
 *
 * Pure computation: no I/O, no clock (time is always passed in).
 *
 * Over 400 lines on purpose: the node records, the child table, the per-slot lookups and the
 * eviction queue share one typed-array layout and its invariants; split into files they would
 * have to export that layout. The naive-reference property tests cover it as one unit.
 */
import { TtlRecords } from './ttl-records.js';
import { LowerTierIndex, lowerTierMatches, type Continuation } from './lower-tier.js';
import type { KvCacheEventData, RouterEvent, StorageTier, WorkerId, WorkerKey } from './types.js';
import { recycle, takeInt32 } from './pool.js';
import { mix, U64Table, splitU64 } from './u64.js';

export type ApplyStatus = 'ok' | 'parent_block_not_found' | 'block_not_found' | 'invalid_block_sequence' | 'unknown_worker' | 'ignored';

export interface ApplyResult {
  status: ApplyStatus;
  detail?: string;
  /** Set when the event id skipped ahead for this (worker, dp_rank): request a replay / dump. */
  gap?: { expected: number; got: number };
}

const ROOT = 0;
// Node record fields.
const F_LO = 0;
const F_HI = 1;
const F_PARENT = 2;
const F_FIRST = 3;
const F_NEXT = 4;
const F_PREV = 5;
const F_LREFS = 6;
/**
 * Number of children, and in the top bit (TABLE_BIT) whether they are also registered in the
 * global children table. A node has no worker count field: its bitset words are all zero or not.
 */
const F_NCHILD = 7;
/**
 * Engine block hash (lo, hi) the node was last stored under: the lower-tier anchor. In the record
 * rather than an array of its own, so storing a block on an existing node touches one cache line
 * (its bits and its hash) instead of two.
 */
const F_BLO = 8;
const F_BHI = 9;
const F_BITS = 10;
const TABLE_BIT = 1 << 31;
const COUNT_MASK = 0x7fffffff;
/**
 * Nodes with up to this many children are searched by walking their child list (records are
 * usually adjacent in memory: chains are allocated in order); busier nodes (the root, popular
 * prefixes) are indexed in the global children table. This avoids a random hash-table probe
 * per block on the long single-child chains that make up most of a prefix tree.
 */
const SMALL_CHILDREN = 6;
const NONE = -1;
const TTL_BUCKET_MS = 100;
/** Compact the TTL (or eviction-order) records only once there are this many (and more than four times the indexed blocks). */
const COMPACT_MIN = 65_536;

export interface IndexerOptions {
  /** Upper bound on (worker, block) entries; Infinity (default) = unbounded. */
  maxIndexedBlocks?: number;
}

function disposedError(): Error {
  return new Error('RadixIndexer used after dispose(): its memory went back to the pool; create a new index');
}

export class RadixIndexer {
  // ---- slots: one per (worker, dp_rank) ----
  /** Per worker: its slots as [dpRank, slot, dpRank, slot, ...] (a worker has few dp ranks); no key string is built per event. */
  private readonly slotsByWorker = new Map<WorkerId, number[]>();
  private slotWorkerIds: (WorkerId | undefined)[] = [];
  private slotDpRanks: number[] = [];
  private lookups: (U64Table | null)[] = [];
  private lastEventIds: number[] = [];
  private freeSlots: number[] = [];
  private slotCount = 0; // high-water mark of slot ids
  private stride = 1; // u32 words per node bitset

  // ---- nodes ----
  private nodeCap = 0;
  /** Node records, `ns` int32 per node: F_LO .. F_BHI then `stride` bitset words. */
  private nd = new Int32Array(0);
  private ns = F_BITS + 1;
  /** Lower storage tiers, created on their first event. */
  private readonly lowerTiers = new Map<StorageTier, LowerTierIndex>();
  private nodeHigh = 1; // ids below this were allocated at some point
  private freeNodes: number[] = [];
  private liveNodes = 1;
  private readonly children = new U64Table(1024);

  // ---- bookkeeping ----
  private totalEntries = 0;
  private stampCounter = 0;
  private readonly maxIndexedBlocks: number;
  private _evictions = 0;
  private fifoSlot: number[] = [];
  private fifoLo: number[] = [];
  private fifoHi: number[] = [];
  private fifoStamp: number[] = [];
  private fifoHead = 0;
  /** Approximate mode, TTL policy: (slot, lo, hi, stamp) per store, by expiry bucket, current or superseded by a later store. */
  private readonly ttl = new TtlRecords();
  /** Approximate mode, LRU policy: per slot, stores in order (lo, hi, stamp), oldest first. */
  private lruQueues = new Map<number, { q: number[]; head: number }>();
  private _lruEvictions = 0;
  /**
   * Duplicate check for long events: a small open-addressing set sized for the event (so it stays
   * in cache), holding block indices (n = the parent); an entry is live when its stamp equals the
   * current generation, so nothing is cleared between events.
   */
  private dupIdx = new Int32Array(256);
  private dupStamp = new Int32Array(256);
  private dupGen = 0;
  /** `mayHaveDuplicate`'s bit set: all zeros between events. */
  private readonly dupBits = new Uint32Array(2048);
  /** Per block of the event being stored: `mix` of its block hash, computed once for the duplicate check, the prefetch and the probe. */
  private blockMix = new Int32Array(128);
  /**
   * Whether lookup entries carry store stamps (the `aux` values), which only the memory bound and
   * TTL expiry read: off for an unbounded indexer until the first TTL store, saving a third of
   * the lookup tables' memory. Entries stored before stamps were on have stamp 0 and no FIFO / TTL
   * record, so nothing ever compares against them.
   */
  private stamped: boolean;
  // Event hashes as u64 (bigint) arrays, read back as interleaved u32 pairs through a view of the
  // same buffer (little-endian: [lo, hi]), so a block costs one bigint store per hash.
  private scratchBig = new BigUint64Array(128);
  private scratchTokBig = new BigUint64Array(128);
  private scratchPairs = new Uint32Array(this.scratchBig.buffer);
  private scratchTok = new Uint32Array(this.scratchTokBig.buffer);
  /** A Stored event's parent hash as (lo, hi). */
  private readonly parentPair = new Uint32Array(2);
  private scoreScratch = new Int32Array(32);
  /** Sink of `U64Table.touch` reads (kept so the prefetching loads stay). */
  private touched = 0;
  /** Set by `dispose`: the memory belongs to the pool, so every use throws. */
  private disposed = false;

  constructor(opts: IndexerOptions = {}) {
    this.maxIndexedBlocks = opts.maxIndexedBlocks ?? Infinity;
    if (!(this.maxIndexedBlocks > 0)) throw new RangeError('maxIndexedBlocks must be > 0');
    this.stamped = this.maxIndexedBlocks !== Infinity;
    this.growNodes(1024);
    this.initNode(ROOT, 0, 0);
  }

  // =========================================================================================
  // Slots
  // =========================================================================================

  /** Slot id of (worker, dp_rank), creating it if needed. */
  ensureSlot(workerId: WorkerId, dpRank: number): number {
    if (this.disposed) throw disposedError();
    const existing = this.slotOf(workerId, dpRank);
    if (existing >= 0) return existing;
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.slotCount++;
    if (slot >= this.stride * 32) this.growStride(Math.ceil((slot + 1) / 32));
    if (this.scoreScratch.length < this.slotCount) this.scoreScratch = new Int32Array(this.stride * 32);
    const ranks = this.slotsByWorker.get(workerId);
    if (ranks) ranks.push(dpRank, slot);
    else this.slotsByWorker.set(workerId, [dpRank, slot]);
    this.slotWorkerIds[slot] = workerId;
    this.slotDpRanks[slot] = dpRank;
    this.lookups[slot] = new U64Table(64, this.stamped);
    this.lastEventIds[slot] = -1;
    return slot;
  }

  slotOf(workerId: WorkerId, dpRank: number): number {
    const ranks = this.slotsByWorker.get(workerId);
    if (ranks === undefined) return -1;
    for (let i = 0; i < ranks.length; i += 2) if (ranks[i] === dpRank) return ranks[i + 1]!;
    return -1;
  }

  /** Highest slot id + 1 (slot ids are dense; freed ids are reused). */
  get slotLimit(): number {
    return this.slotCount;
  }

  slotWorker(slot: number): WorkerKey | undefined {
    const id = this.slotWorkerIds[slot];
    return id === undefined ? undefined : { workerId: id, dpRank: this.slotDpRanks[slot]! };
  }

  slots(): WorkerKey[] {
    const out: WorkerKey[] = [];
    for (let s = 0; s < this.slotCount; s++) {
      const id = this.slotWorkerIds[s];
      if (id !== undefined) out.push({ workerId: id, dpRank: this.slotDpRanks[s]! });
    }
    return out;
  }

  /** Drop a (worker, dp_rank) entirely: all its blocks, and the slot. */
  removeSlot(slot: number): void {
    if (this.disposed) throw disposedError();
    const id = this.slotWorkerIds[slot];
    if (id === undefined) return;
    this.clearSlot(slot);
    // Dynamo can leave a worker's bit on a node without a lookup entry (a block hash re-stored
    // under another node). Slots are reused, so scrub any such bit before freeing the slot.
    const word = slot >>> 5;
    const bit = 1 << (slot & 31);
    for (let n = 0; n < this.nodeHigh; n++) {
      const w = n * this.ns + F_BITS + word;
      if ((this.nd[w]! & bit) !== 0) {
        this.nd[w] = this.nd[w]! & ~bit;
        if (this.noWorkers(n)) this.onNodeEmptied(n);
      }
    }
    for (const t of this.lowerTiers.values()) t.removeSlot(slot);
    const ranks = this.slotsByWorker.get(id)!;
    for (let i = 0; i < ranks.length; i += 2) if (ranks[i + 1] === slot) ranks.splice(i, 2);
    if (ranks.length === 0) this.slotsByWorker.delete(id);
    this.slotWorkerIds[slot] = undefined;
    this.lookups[slot] = null;
    this.freeSlots.push(slot);
  }

  removeWorker(workerId: WorkerId): void {
    for (let s = 0; s < this.slotCount; s++) if (this.slotWorkerIds[s] === workerId) this.removeSlot(s);
  }

  // =========================================================================================
  // Events
  // =========================================================================================

  /** Apply a decoded RouterEvent. Unknown (worker, dp_rank) -> `unknown_worker` unless autoRegister. */
  applyEvent(ev: RouterEvent, autoRegister = false): ApplyResult {
    if (this.disposed) throw disposedError();
    let slot = this.slotOf(ev.workerId, ev.dpRank);
    if (slot < 0) {
      if (!autoRegister) return { status: 'unknown_worker', detail: `unknown worker ${ev.workerId} dp_rank ${ev.dpRank}` };
      slot = this.ensureSlot(ev.workerId, ev.dpRank);
    }
    let gap: ApplyResult['gap'];
    const last = this.lastEventIds[slot]!;
    if (last >= 0 && ev.eventId > last + 1) gap = { expected: last + 1, got: ev.eventId };
    this.lastEventIds[slot] = ev.eventId;
    // Device blocks go to the radix tree; host / disk / external blocks to that tier's own
    // continuation index (separate in Dynamo too).
    let res: ApplyResult;
    if (ev.storageTier !== undefined && ev.storageTier !== 'device') {
      let t = this.lowerTiers.get(ev.storageTier);
      if (!t) this.lowerTiers.set(ev.storageTier, (t = new LowerTierIndex()));
      t.apply(slot, ev.data);
      res = OK;
    } else res = this.applyData(slot, ev.data);
    return gap ? { ...res, gap } : res;
  }

  applyData(slot: number, data: KvCacheEventData): ApplyResult {
    if (this.disposed) throw disposedError();
    switch (data.type) {
      case 'stored': {
        const hasParent = data.parentHash !== null && data.parentHash !== undefined;
        const parent = this.parentPair;
        if (hasParent) splitU64(data.parentHash, parent, 0);
        const pairs = data.pairs;
        if (pairs) {
          if (pairs.block.length % 2 !== 0 || pairs.tokens.length !== pairs.block.length)
            return invalidSeq('stored pairs of different or odd lengths');
          return this.storePairs(slot, hasParent, parent[0]!, parent[1]!, pairs.block, pairs.tokens, pairs.block.length >>> 1, -1);
        }
        // Bigint blocks: into u64 scratch arrays, read back as pairs through views of the same buffers.
        const n = data.blocks.length;
        if (this.scratchBig.length < n) {
          this.scratchBig = new BigUint64Array(n * 2);
          this.scratchTokBig = new BigUint64Array(n * 2);
          this.scratchPairs = new Uint32Array(this.scratchBig.buffer);
          this.scratchTok = new Uint32Array(this.scratchTokBig.buffer);
        }
        const bb = this.scratchBig;
        const tb = this.scratchTokBig;
        const blocks = data.blocks;
        for (let i = 0; i < n; i++) {
          const b = blocks[i]!;
          bb[i] = b.blockHash;
          tb[i] = b.tokensHash;
        }
        return this.storePairs(slot, hasParent, parent[0]!, parent[1]!, this.scratchPairs, this.scratchTok, n, -1);
      }
      case 'removed': {
        const hs = data.blockHashes;
        const p = this.scratchPairs;
        let missing = 0;
        for (let i = 0; i < hs.length; i++) {
          splitU64(hs[i]!, p, 0);
          if (!this.removeBlock(slot, p[0]!, p[1]!)) missing++;
        }
        return missing === 0 ? OK : { status: 'block_not_found', detail: `${missing} of ${hs.length} removed block(s) not found` };
      }
      case 'cleared':
        this.clearSlot(slot);
        return OK;
      default:
        return { status: 'ignored', detail: 'unknown event data' };
    }
  }

  /**
   * Store a chain of blocks for `slot` (hashes as interleaved u32 pairs).
   * `ttlBucket >= 0` marks the entries for TTL expiry at that time (approximate mode).
   */
  storePairs(
    slot: number,
    hasParent: boolean,
    parentLo: number,
    parentHi: number,
    blockPairs: Uint32Array,
    tokenPairs: Uint32Array,
    n: number,
    ttlBucket: number,
  ): ApplyResult {
    const lookup = this.lookups[slot];
    if (!lookup) return { status: 'unknown_worker', detail: `slot ${slot} not registered` };
    if (ttlBucket >= 0 && !this.stamped) {
      this.stamped = true;
      for (const t of this.lookups) t?.enableAux();
    }
    if (this.blockMix.length < n) this.blockMix = new Int32Array(n * 2);
    const mixes = this.blockMix;
    for (let i = 0; i < n; i++) mixes[i] = mix(0, blockPairs[2 * i]! | 0, blockPairs[2 * i + 1]! | 0);
    // Validate: no duplicate block hash, none equal to the parent.
    if (n > 1 || hasParent) {
      if (n <= 16) {
        for (let i = 0; i < n; i++) {
          const lo = blockPairs[2 * i]!;
          const hi = blockPairs[2 * i + 1]!;
          if (hasParent && lo === parentLo && hi === parentHi) return invalidSeq('block hash equals parent hash');
          for (let j = 0; j < i; j++) {
            if (blockPairs[2 * j] === lo && blockPairs[2 * j + 1] === hi) return invalidSeq('duplicate block hash');
          }
        }
      } else {
        if (
          this.mayHaveDuplicate(hasParent, parentLo, parentHi, mixes, n) &&
          this.hasDuplicate(hasParent, parentLo, parentHi, blockPairs, mixes, n)
        )
          return invalidSeq('duplicate block hash (or equal to parent)');
      }
    }
    let cur = ROOT;
    if (hasParent) {
      const pi = lookup.find(0, parentLo, parentHi);
      if (pi < 0) return { status: 'parent_block_not_found', detail: 'parent block hash not indexed for this worker' };
      cur = lookup.valueAt(pi);
    }
    const word = slot >>> 5;
    const bit = 1 << (slot & 31);
    // Room for every block up front (no resize inside the loop), then one pass over the blocks'
    // lookup entries so their cache lines load in parallel before the loop probes them in turn.
    lookup.reserveFor(n);
    if (n > 2) this.touched ^= lookup.touchHashed(mixes, n);
    const ns = this.ns;
    let nd = this.nd; // reloaded after allocNode, which may grow the arena
    // After a node was created in this event, the next block's parent has no children yet: no search.
    let fresh = false;
    for (let i = 0; i < n; i++) {
      const tlo = tokenPairs[2 * i]!;
      const thi = tokenPairs[2 * i + 1]!;
      const blo = blockPairs[2 * i]!;
      const bhi = blockPairs[2 * i + 1]!;
      // One probe of the slot's lookup serves both the reuse check and the insert / update below
      // (nothing in between modifies the lookup).
      const li = lookup.findSlotHashed(mixes[i]!, 0, blo, bhi);
      // The node this worker last stored the block hash on, if any.
      const reuse = li >= 0 ? lookup.valueAt(li) : -1;
      let child = -1;
      if (!fresh) {
        // A block this worker already stored (14 % of bench:router's stored blocks): that node is
        // already cur's child with these tokens. Children of a node have distinct token hashes, so
        // it is the node the search would find, without walking siblings.
        const rb = reuse * ns;
        child =
          reuse >= 0 && nd[rb + F_PARENT] === cur && nd[rb + F_LO] === (tlo | 0) && nd[rb + F_HI] === (thi | 0)
            ? reuse
            : this.childOf(cur, tlo, thi);
      }
      if (child < 0) {
        if (
          reuse >= 0 &&
          nd[reuse * ns + F_LO] === (tlo | 0) &&
          nd[reuse * ns + F_HI] === (thi | 0) &&
          !this.isAncestorOrSelf(reuse, cur)
        ) {
          child = reuse;
          const oldParent = nd[child * ns + F_PARENT]!;
          if (oldParent !== NONE) this.unlinkFromParent(child);
          this.linkChild(cur, child);
          if (oldParent !== NONE) this.maybeFree(oldParent);
          fresh = false; // a re-attached node keeps its children
        } else {
          child = this.allocNode(tlo, thi);
          nd = this.nd;
          this.linkChild(cur, child);
          fresh = true;
        }
      }
      const cb = child * ns;
      const w = cb + F_BITS + word;
      nd[w] = nd[w]! | bit;
      nd[cb + F_BLO] = blo;
      nd[cb + F_BHI] = bhi;
      let idx: number;
      if (li < 0) {
        idx = ~li;
        lookup.insertAt(idx, 0, blo, bhi, child);
        nd[cb + F_LREFS]!++;
        this.totalEntries++;
      } else {
        idx = li;
        const old = reuse;
        if (old !== child) {
          lookup.setValueAt(li, child);
          nd[cb + F_LREFS]!++;
          nd[old * ns + F_LREFS]!--;
          this.maybeFree(old);
        }
      }
      const stamp = ++this.stampCounter;
      if (lookup.aux) lookup.aux[idx] = stamp;
      if (this.maxIndexedBlocks !== Infinity) {
        this.fifoSlot.push(slot);
        this.fifoLo.push(blo);
        this.fifoHi.push(bhi);
        this.fifoStamp.push(stamp);
      }
      if (ttlBucket >= 0) this.ttl.push(ttlBucket, slot, blo, bhi, stamp);
      cur = child;
    }
    if (this.totalEntries > this.maxIndexedBlocks) this.evictOverflow();
    const fifoPending = this.fifoSlot.length - this.fifoHead;
    if (fifoPending > COMPACT_MIN && fifoPending > 4 * this.totalEntries) this.compactFifo();
    if (this.ttl.size > COMPACT_MIN && this.ttl.size > 4 * this.totalEntries) this.compactTtl();
    return OK;
  }

  /**
   * A quick filter before `hasDuplicate`: one bit per block hash in a 64k-bit set (8 KB, stays in
   * L1) addressed by 16 bits of its mix. No bit hit twice means no two hashes are equal; a bit hit
   * twice (likely two different hashes: about n²/2^17 of events) sends the event to the exact check.
   */
  private mayHaveDuplicate(hasParent: boolean, parentLo: number, parentHi: number, mixes: Int32Array, n: number): boolean {
    const set = this.dupBits;
    let hit = false;
    let k = 0;
    const pb = hasParent ? mix(0, parentLo | 0, parentHi | 0) >>> 16 : 0;
    if (hasParent) set[pb >>> 5] = 1 << (pb & 31);
    for (; k < n; k++) {
      const b = mixes[k]! >>> 16;
      const w = b >>> 5;
      const m = 1 << (b & 31);
      const v = set[w]!;
      if ((v & m) !== 0) {
        hit = true;
        break;
      }
      set[w] = v | m;
    }
    // Leave the set empty for the next event.
    if (hasParent) set[pb >>> 5] = 0;
    for (let j = Math.min(k, n - 1); j >= 0; j--) set[mixes[j]! >>> 21] = 0;
    return hit;
  }

  /** Whether two of the n block hashes (or one and the parent) are equal. */
  private hasDuplicate(hasParent: boolean, parentLo: number, parentHi: number, pairs: Uint32Array, mixes: Int32Array, n: number): boolean {
    let cap = 64;
    let bits = 6;
    while (cap < 2 * (n + 1)) {
      cap <<= 1;
      bits++;
    }
    if (this.dupIdx.length < cap) {
      this.dupIdx = new Int32Array(cap);
      this.dupStamp = new Int32Array(cap);
    }
    if (this.dupGen >= 0x7fffffff) {
      this.dupStamp.fill(0);
      this.dupGen = 0;
    }
    const gen = ++this.dupGen;
    const idx = this.dupIdx;
    const stamp = this.dupStamp;
    const mask = cap - 1;
    const shift = 32 - bits;
    parentLo |= 0;
    parentHi |= 0;
    for (let k = hasParent ? -1 : 0; k < n; k++) {
      const lo = k < 0 ? parentLo : pairs[2 * k]! | 0;
      const hi = k < 0 ? parentHi : pairs[2 * k + 1]! | 0;
      let i = (k < 0 ? mix(0, lo, hi) : mixes[k]!) >>> shift;
      while (stamp[i] === gen) {
        const j = idx[i]!;
        const jlo = j < 0 ? parentLo : pairs[2 * j]! | 0;
        const jhi = j < 0 ? parentHi : pairs[2 * j + 1]! | 0;
        if (jlo === lo && jhi === hi) return true;
        i = (i + 1) & mask;
      }
      stamp[i] = gen;
      idx[i] = k;
    }
    return false;
  }

  /** Remove one block of a slot; false when it is not indexed. */
  removeBlock(slot: number, lo: number, hi: number): boolean {
    if (this.disposed) throw disposedError();
    const lookup = this.lookups[slot];
    if (!lookup) return false;
    const i = lookup.find(0, lo, hi);
    if (i < 0) return false;
    this.removeEntryAt(slot, lookup, i);
    return true;
  }

  private removeEntryAt(slot: number, lookup: U64Table, i: number): void {
    const node = lookup.valueAt(i);
    lookup.deleteAt(i);
    this.totalEntries--;
    this.nd[node * this.ns + F_LREFS]!--;
    const w = node * this.ns + F_BITS + (slot >>> 5);
    const bit = 1 << (slot & 31);
    this.nd[w] = this.nd[w]! & ~bit;
    // As Dynamo: after a removal, an empty worker set clears the node's children.
    if (this.noWorkers(node)) this.onNodeEmptied(node);
    this.maybeFree(node);
  }

  /** All blocks of one slot (the slot stays registered). */
  clearSlot(slot: number): void {
    if (this.disposed) throw disposedError();
    const lookup = this.lookups[slot];
    if (!lookup) return;
    this.lruQueues.delete(slot);
    const word = slot >>> 5;
    const bit = 1 << (slot & 31);
    const touched: number[] = [];
    for (let i = 0; i < lookup.capacity; i++) {
      if (!lookup.isUsed(i)) continue;
      const node = lookup.valueAt(i);
      this.nd[node * this.ns + F_LREFS]!--;
      this.totalEntries--;
      const w = node * this.ns + F_BITS + word;
      this.nd[w] = this.nd[w]! & ~bit;
      if (this.noWorkers(node)) this.onNodeEmptied(node);
      touched.push(node);
    }
    lookup.clear();
    for (const node of touched) this.maybeFree(node);
  }

  // =========================================================================================
  // Approximate mode (TTL) and memory bound
  // =========================================================================================

  /** Expiry bucket for an insertion at `nowMs` with `ttlMs`: rounded up to 100 ms. */
  static ttlBucket(nowMs: number, ttlMs: number): number {
    return Math.ceil((nowMs + ttlMs) / TTL_BUCKET_MS) * TTL_BUCKET_MS;
  }

  /** Record a routing decision's blocks (local + sequence hashes, from the root) with a TTL. */
  storeWithTtl(slot: number, seqPairs: Uint32Array, localPairs: Uint32Array, n: number, nowMs: number, ttlMs: number): ApplyResult {
    if (this.disposed) throw disposedError();
    return this.storePairs(slot, false, 0, 0, seqPairs, localPairs, n, RadixIndexer.ttlBucket(nowMs, ttlMs));
  }

  /**
   * Record a routing decision's blocks under the LRU policy: the slot keeps at most
   * `capacityBlocks` blocks; beyond that, the blocks stored or refreshed least recently are
   * removed (as an engine's LRU would evict them). Returns the store result.
   */
  storeWithLru(slot: number, seqPairs: Uint32Array, localPairs: Uint32Array, n: number, capacityBlocks: number): ApplyResult {
    if (this.disposed) throw disposedError();
    if (!this.stamped) {
      this.stamped = true;
      for (const t of this.lookups) t?.enableAux();
    }
    const before = this.stampCounter;
    const r = this.storePairs(slot, false, 0, 0, seqPairs, localPairs, n, -1);
    if (r.status !== 'ok') return r;
    let e = this.lruQueues.get(slot);
    if (!e) this.lruQueues.set(slot, (e = { q: [], head: 0 }));
    // storePairs stamped the n blocks before+1 .. before+n, in order. Queue them tail first, so
    // that (like an engine freeing a sequence's blocks in reverse) a chain loses its tail before
    // its prefix.
    for (let i = n - 1; i >= 0; i--) e.q.push(seqPairs[2 * i]!, seqPairs[2 * i + 1]!, before + 1 + i);
    const lookup = this.lookups[slot]!;
    while (lookup.size > capacityBlocks && e.head < e.q.length) {
      const lo = e.q[e.head]!;
      const hi = e.q[e.head + 1]!;
      const stamp = e.q[e.head + 2]!;
      e.head += 3;
      const i = this.currentAt(slot, lo, hi, stamp);
      if (i >= 0) {
        this.removeEntryAt(slot, lookup, i);
        this._lruEvictions++;
      }
    }
    const pending = (e.q.length - e.head) / 3;
    if (pending > COMPACT_MIN && pending > 4 * lookup.size) this.compactLru(slot, e);
    else if (e.head > 3072 && e.head * 2 > e.q.length) {
      e.q = e.q.slice(e.head);
      e.head = 0;
    }
    return r;
  }

  /**
   * Drop the records of `slot`'s LRU queue that a later store of the same block superseded.
   * Routing a prefix again queues its blocks again and the earlier records stay until the head
   * reaches them; while the worker's blocks stay within its capacity the head never moves, so
   * without this the queue grew with every routing (100,000 routings of 512 blocks: 1.6 GB of
   * heap). Order is kept: each block's live record is its latest store.
   */
  private compactLru(slot: number, e: { q: number[]; head: number }): void {
    const q = e.q;
    let w = 0;
    for (let k = e.head; k < q.length; k += 3) {
      const lo = q[k]!;
      const hi = q[k + 1]!;
      const stamp = q[k + 2]!;
      if (this.currentAt(slot, lo, hi, stamp) < 0) continue;
      q[w] = lo;
      q[w + 1] = hi;
      q[w + 2] = stamp;
      w += 3;
    }
    q.length = w;
    e.head = 0;
  }

  /** LRU-queue records held (approximate lru policy), superseded ones included until the next compaction. */
  get lruEntries(): number {
    let n = 0;
    for (const e of this.lruQueues.values()) n += (e.q.length - e.head) / 3;
    return n;
  }

  /** Blocks removed by the approximate-mode LRU policy so far. */
  get lruEvictions(): number {
    return this._lruEvictions;
  }

  /** Remove TTL-expired blocks (bucket time <= nowMs). Returns how many were removed. */
  expireTtl(nowMs: number): number {
    let removed = 0;
    this.ttl.expire(nowMs, (slot, lo, hi, stamp) => {
      const i = this.currentAt(slot, lo, hi, stamp);
      if (i >= 0) {
        this.removeEntryAt(slot, this.lookups[slot]!, i);
        removed++;
      }
    });
    return removed;
  }

  /**
   * Where block (lo, hi) sits in `slot`'s lookup when `stamp` is still its latest store; -1 when
   * the block is gone or was stored again since (the records the TTL buckets, the memory bound's
   * FIFO and the LRU queues keep are checked this way before they act).
   */
  private currentAt(slot: number, lo: number, hi: number, stamp: number): number {
    const lookup = this.lookups[slot];
    if (!lookup) return -1;
    const i = lookup.find(0, lo, hi);
    return i >= 0 && lookup.aux![i] === stamp ? i : -1;
  }

  /**
   * Drop the TTL entries a later store superseded. Routing a prefix again refreshes its blocks'
   * expiry by adding an entry in a later bucket; the earlier one is only skipped when its bucket
   * comes due. Without this the buckets held an entry per routed block per request within the TTL
   * (at 500 requests/s of 512 blocks and a 120 s TTL, ~30 million); with it, at most four times
   * the indexed blocks. A pass looks up each entry once; it runs after at least three entries per
   * indexed block were added since the last one.
   */
  private compactTtl(): void {
    this.ttl.compact((slot, lo, hi, stamp) => this.currentAt(slot, lo, hi, stamp) >= 0);
  }

  /**
   * Drop the eviction-order records a later store of the same block superseded (the memory bound's
   * FIFO): storing a block again adds a record at the tail and the earlier one stays until the head
   * reaches it. While the index stays under its bound the head never moves, so without this the
   * records grew with every store. Order is kept: each block's live record is its latest store.
   */
  private compactFifo(): void {
    let w = 0;
    for (let k = this.fifoHead; k < this.fifoSlot.length; k++) {
      const slot = this.fifoSlot[k]!;
      const lo = this.fifoLo[k]!;
      const hi = this.fifoHi[k]!;
      const stamp = this.fifoStamp[k]!;
      if (this.currentAt(slot, lo, hi, stamp) < 0) continue;
      this.fifoSlot[w] = slot;
      this.fifoLo[w] = lo;
      this.fifoHi[w] = hi;
      this.fifoStamp[w] = stamp;
      w++;
    }
    this.fifoSlot.length = w;
    this.fifoLo.length = w;
    this.fifoHi.length = w;
    this.fifoStamp.length = w;
    this.fifoHead = 0;
  }

  /** Eviction-order records held (memory bound), superseded ones included until the next compaction. */
  get fifoEntries(): number {
    return this.fifoSlot.length - this.fifoHead;
  }

  /** TTL entries held (approximate mode), superseded ones included until the next compaction. */
  get ttlEntries(): number {
    return this.ttl.size;
  }

  private evictOverflow(): void {
    while (this.totalEntries > this.maxIndexedBlocks && this.fifoHead < this.fifoSlot.length) {
      const k = this.fifoHead++;
      const slot = this.fifoSlot[k]!;
      const i = this.currentAt(slot, this.fifoLo[k]!, this.fifoHi[k]!, this.fifoStamp[k]!);
      if (i >= 0) {
        this.removeEntryAt(slot, this.lookups[slot]!, i);
        this._evictions++;
      }
    }
    if (this.fifoHead > 1024 && this.fifoHead * 2 > this.fifoSlot.length) {
      this.fifoSlot = this.fifoSlot.slice(this.fifoHead);
      this.fifoLo = this.fifoLo.slice(this.fifoHead);
      this.fifoHi = this.fifoHi.slice(this.fifoHead);
      this.fifoStamp = this.fifoStamp.slice(this.fifoHead);
      this.fifoHead = 0;
    }
  }

  get evictions(): number {
    return this._evictions;
  }
  /** (slot, block) lookup entries across all slots. */
  get indexedBlocks(): number {
    return this.totalEntries;
  }
  /** Live radix nodes, the root included. */
  get nodeCount(): number {
    return this.liveNodes;
  }
  blockCount(slot: number): number {
    return this.lookups[slot]?.size ?? 0;
  }

  // =========================================================================================
  // find_matches
  // =========================================================================================

  /**
   * Overlap scores for a query of local hashes (interleaved u32 pairs, `n` blocks).
   * Returns an Int32Array indexed by slot (valid until the next call; length >= slotLimit).
   */
  findMatchesPairs(pairs: Uint32Array, n: number, earlyExit = false): Int32Array {
    if (this.disposed) throw disposedError();
    const scores = this.scoreScratch;
    scores.fill(0, 0, this.slotCount);
    if (n === 0) return scores;
    let c = this.childOf(ROOT, pairs[0]!, pairs[1]!);
    if (c < 0) return scores;
    const nd = this.nd;
    const ns = this.ns;
    if (this.stride === 1) {
      let active = nd[c * ns + F_BITS]!;
      if (active === 0) return scores;
      let d = 1;
      if (earlyExit && (active & (active - 1)) === 0) return setBits(scores, active, 0, 1);
      for (; d < n; d++) {
        const nx = this.childOf(c, pairs[2 * d]!, pairs[2 * d + 1]!);
        if (nx < 0) break;
        const b = nd[nx * ns + F_BITS]!;
        const dropped = active & ~b;
        if (dropped !== 0) {
          setBits(scores, dropped, 0, d);
          active &= b;
          if (active === 0) return scores;
        }
        if (earlyExit && (active & (active - 1)) === 0) return setBits(scores, active, 0, d + 1);
        c = nx;
      }
      return setBits(scores, active, 0, d);
    }
    // General case: bitsets of `stride` words.
    const stride = this.stride;
    const active = new Int32Array(stride);
    let any = 0;
    for (let k = 0; k < stride; k++) any |= active[k] = nd[c * ns + F_BITS + k]!;
    if (any === 0) return scores;
    let d = 1;
    for (; d < n; d++) {
      if (earlyExit && popcountWords(active) === 1) break;
      const nx = this.childOf(c, pairs[2 * d]!, pairs[2 * d + 1]!);
      if (nx < 0) break;
      any = 0;
      for (let k = 0; k < stride; k++) {
        const b = nd[nx * ns + F_BITS + k]!;
        const a = active[k]!;
        const dropped = a & ~b;
        if (dropped !== 0) setBits(scores, dropped, k * 32, d);
        any |= active[k] = a & b;
      }
      if (any === 0) return scores;
      c = nx;
    }
    for (let k = 0; k < stride; k++) if (active[k] !== 0) setBits(scores, active[k]!, k * 32, d);
    return scores;
  }

  // =========================================================================================
  // Lower storage tiers
  // =========================================================================================

  /** Whether any lower tier (host / disk / external) holds a block. */
  get hasLowerTiers(): boolean {
    for (const t of this.lowerTiers.values()) if (t.edgeCount > 0) return true;
    return false;
  }

  /** Blocks a slot holds in one lower tier. */
  lowerTierBlockCount(slot: number, tier: StorageTier): number {
    return this.lowerTiers.get(tier)?.blockCount(slot) ?? 0;
  }

  /** Forget a slot's lower-tier blocks (a worker restart: its host / disk caches are gone too). */
  clearLowerTiers(slot: number): void {
    for (const t of this.lowerTiers.values()) t.removeSlot(slot);
  }

  /**
   * Host and disk blocks per slot continuing the device matches `scores` (as findMatchesPairs
   * returned them for the same query), or null when no lower tier holds anything.
   */
  lowerTierOverlaps(pairs: Uint32Array, n: number, scores: Int32Array): { host: Map<number, number>; disk: Map<number, number> } | null {
    if (!this.hasLowerTiers) return null;
    let maxDepth = 0;
    for (let s = 0; s < this.slotCount; s++) if (this.lookups[s] && scores[s]! > maxDepth) maxDepth = scores[s]!;
    const path: number[] = [];
    for (let d = 0, c = ROOT; d < maxDepth; d++) {
      c = this.childOf(c, pairs[2 * d]!, pairs[2 * d + 1]!);
      if (c < 0) break;
      path.push(c);
    }
    const device = new Map<number, Continuation>();
    for (let s = 0; s < this.slotCount; s++) {
      const d = this.lookups[s] ? scores[s]! : 0;
      const node = d > 0 ? path[d - 1] : undefined;
      if (node !== undefined)
        device.set(s, { pos: d, hasHash: true, lo: this.nd[node * this.ns + F_BLO]! >>> 0, hi: this.nd[node * this.ns + F_BHI]! >>> 0 });
    }
    return lowerTierMatches(this.lowerTiers, pairs, n, device);
  }

  /**
   * Hand this index's memory to the pool (./pool.ts) for the next index, as a dropped Rust tree's
   * memory goes back to its allocator. The index is empty and must not be used afterwards.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    recycle(this.nd);
    this.nd = new Int32Array(0);
    this.nodeCap = 0;
    for (const t of this.lookups) t?.release();
    this.lookups = [];
    this.children.release();
  }

  // =========================================================================================
  // Node management
  // =========================================================================================

  private growNodes(minCap: number): void {
    // Grow 4x: fewer copies of the arena (and fewer large allocations, which drive GC).
    let cap = Math.max(this.nodeCap * 4, 1024);
    while (cap < minCap) cap *= 2;
    const nd = takeInt32(cap * this.ns);
    nd.set(this.nd);
    recycle(this.nd);
    this.nd = nd;
    this.nodeCap = cap;
  }

  private growStride(newStride: number): void {
    const old = this.nd;
    const os = this.ns;
    const ns = F_BITS + newStride;
    const nd = takeInt32(this.nodeCap * ns);
    for (let n = 0; n < this.nodeHigh; n++) for (let k = 0; k < os; k++) nd[n * ns + k] = old[n * os + k]!;
    recycle(old);
    this.nd = nd;
    this.ns = ns;
    this.stride = newStride;
    this.scoreScratch = new Int32Array(newStride * 32);
  }

  /** `fresh`: the record was never used (ids from `nodeHigh` up are zeros: the arena grows by new zeroed arrays). */
  private initNode(id: number, lo: number, hi: number, fresh = false): void {
    const b = id * this.ns;
    const nd = this.nd;
    nd[b + F_LO] = lo;
    nd[b + F_HI] = hi;
    nd[b + F_PARENT] = NONE;
    nd[b + F_FIRST] = NONE;
    nd[b + F_NEXT] = NONE;
    nd[b + F_PREV] = NONE;
    if (fresh) return;
    nd[b + F_LREFS] = 0;
    nd[b + F_NCHILD] = id === ROOT ? TABLE_BIT : 0;
    for (let k = b + F_BITS, e = b + this.ns; k < e; k++) nd[k] = 0;
  }

  private allocNode(lo: number, hi: number): number {
    let id: number;
    let fresh = false;
    if (this.freeNodes.length > 0) id = this.freeNodes.pop()!;
    else {
      if (this.nodeHigh >= this.nodeCap) this.growNodes(this.nodeHigh + 1);
      id = this.nodeHigh++;
      fresh = true;
    }
    this.initNode(id, lo, hi, fresh);
    this.liveNodes++;
    return id;
  }

  /** Child of `p` with local hash (lo, hi), or -1. */
  private childOf(p: number, lo: number, hi: number): number {
    const nd = this.nd;
    const ns = this.ns;
    const b = p * ns;
    if (nd[b + F_NCHILD]! < 0) return this.children.get(p, lo, hi); // TABLE_BIT
    lo |= 0;
    hi |= 0;
    for (let c = nd[b + F_FIRST]!; c !== NONE; c = nd[c * ns + F_NEXT]!) {
      const cb = c * ns;
      if (nd[cb + F_LO] === lo && nd[cb + F_HI] === hi) return c;
    }
    return -1;
  }

  private linkChild(p: number, c: number): void {
    const nd = this.nd;
    const ns = this.ns;
    const pb = p * ns;
    const cb = c * ns;
    nd[cb + F_PARENT] = p;
    const first = nd[pb + F_FIRST]!;
    nd[cb + F_NEXT] = first;
    nd[cb + F_PREV] = NONE;
    if (first !== NONE) nd[first * ns + F_PREV] = c;
    nd[pb + F_FIRST] = c;
    const v = ++nd[pb + F_NCHILD]!;
    if (v < 0) this.children.set(p, nd[cb + F_LO]!, nd[cb + F_HI]!, c);
    else if (v > SMALL_CHILDREN) {
      nd[pb + F_NCHILD] = v | TABLE_BIT;
      for (let k = c; k !== NONE; k = nd[k * ns + F_NEXT]!) this.children.set(p, nd[k * ns + F_LO]!, nd[k * ns + F_HI]!, k);
    }
  }

  private unlinkFromParent(c: number): void {
    const nd = this.nd;
    const ns = this.ns;
    const cb = c * ns;
    const p = nd[cb + F_PARENT]!;
    if (p === NONE) return;
    const pb = p * ns;
    if (nd[pb + F_NCHILD]! < 0) this.children.delete(p, nd[cb + F_LO]!, nd[cb + F_HI]!);
    const prev = nd[cb + F_PREV]!;
    const next = nd[cb + F_NEXT]!;
    if (prev !== NONE) nd[prev * ns + F_NEXT] = next;
    else nd[pb + F_FIRST] = next;
    if (next !== NONE) nd[next * ns + F_PREV] = prev;
    nd[pb + F_NCHILD]!--;
    nd[cb + F_PARENT] = NONE;
    nd[cb + F_NEXT] = NONE;
    nd[cb + F_PREV] = NONE;
  }

  /** Whether no slot holds the node (all its bitset words are zero). */
  private noWorkers(node: number): boolean {
    const b = node * this.ns + F_BITS;
    for (let k = 0; k < this.stride; k++) if (this.nd[b + k] !== 0) return false;
    return true;
  }

  private isAncestorOrSelf(candidate: number, node: number): boolean {
    for (let n = node; n !== NONE; n = this.nd[n * this.ns + F_PARENT]!) if (n === candidate) return true;
    return false;
  }

  /** Worker set became empty: clear (detach) its children, as Dynamo does. */
  private onNodeEmptied(node: number): void {
    if (node === ROOT) return;
    const ns = this.ns;
    const inTable = this.nd[node * ns + F_NCHILD]! < 0;
    let c = this.nd[node * ns + F_FIRST]!;
    while (c !== NONE) {
      const cb = c * ns;
      const next = this.nd[cb + F_NEXT]!;
      if (inTable) this.children.delete(node, this.nd[cb + F_LO]!, this.nd[cb + F_HI]!);
      this.nd[cb + F_PARENT] = NONE;
      this.nd[cb + F_NEXT] = NONE;
      this.nd[cb + F_PREV] = NONE;
      this.maybeFree(c);
      c = next;
    }
    this.nd[node * ns + F_FIRST] = NONE;
    this.nd[node * ns + F_NCHILD] = 0;
  }

  /**
   * Free nodes nobody can observe any more: no worker, no lookup entry, no child. An empty leaf
   * left in the tree would behave exactly like a missing child in find_matches, so dropping it
   * changes no score.
   */
  private maybeFree(node: number): void {
    let n = node;
    while (
      n !== ROOT &&
      n !== NONE &&
      this.nd[n * this.ns + F_LREFS] === 0 &&
      this.noWorkers(n) &&
      this.nd[n * this.ns + F_FIRST] === NONE
    ) {
      const p = this.nd[n * this.ns + F_PARENT]!;
      this.unlinkFromParent(n);
      this.freeNodes.push(n);
      this.liveNodes--;
      this.nd[n * this.ns + F_PARENT] = NONE;
      this.nd[n * this.ns + F_LREFS] = -1; // poison: never double-free
      n = p;
    }
  }

  /** Internal consistency check for tests: throws on a broken invariant. */
  checkInvariants(): void {
    let entries = 0;
    const refs = new Int32Array(this.nodeHigh);
    for (let s = 0; s < this.slotCount; s++) {
      const t = this.lookups[s];
      if (!t) continue;
      entries += t.size;
      for (let i = 0; i < t.capacity; i++) if (t.isUsed(i)) refs[t.valueAt(i)]!++;
    }
    if (entries !== this.totalEntries) throw new Error(`entries ${entries} != ${this.totalEntries}`);
    const free = new Set(this.freeNodes);
    for (let n = 1; n < this.nodeHigh; n++) {
      if (free.has(n)) continue;
      if (refs[n] !== this.nd[n * this.ns + F_LREFS]) throw new Error(`node ${n} refs ${refs[n]} != ${this.nd[n * this.ns + F_LREFS]}`);
      const p = this.nd[n * this.ns + F_PARENT]!;
      if (p !== NONE && this.childOf(p, this.nd[n * this.ns + F_LO]!, this.nd[n * this.ns + F_HI]!) !== n)
        throw new Error(`node ${n} not in parent's children`);
    }
    let tableEntries = 0;
    for (let n = 0; n < this.nodeHigh; n++) {
      if (free.has(n)) continue;
      let cnt = 0;
      for (let c = this.nd[n * this.ns + F_FIRST]!; c !== NONE; c = this.nd[c * this.ns + F_NEXT]!) {
        cnt++;
        if (this.nd[c * this.ns + F_PARENT] !== n) throw new Error(`child ${c} of ${n} has parent ${this.nd[c * this.ns + F_PARENT]}`);
      }
      if (cnt !== (this.nd[n * this.ns + F_NCHILD]! & COUNT_MASK)) throw new Error(`node ${n} child count`);
      if (this.nd[n * this.ns + F_NCHILD]! < 0) tableEntries += cnt;
    }
    if (tableEntries !== this.children.size) throw new Error(`children table has ${this.children.size} entries, expected ${tableEntries}`);
  }
}

/** The result of every event that applied cleanly: one shared, frozen object (no allocation per event). */
const OK: ApplyResult = Object.freeze({ status: 'ok' });

function invalidSeq(detail: string): ApplyResult {
  return { status: 'invalid_block_sequence', detail };
}

function setBits(scores: Int32Array, mask: number, base: number, value: number): Int32Array {
  let x = mask;
  while (x !== 0) {
    const t = x & -x;
    scores[base + 31 - Math.clz32(t)] = value;
    x ^= t;
  }
  return scores;
}

function popcount(x: number): number {
  x = x >>> 0;
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

function popcountWords(a: Int32Array): number {
  let c = 0;
  for (let k = 0; k < a.length; k++) c += popcount(a[k]!);
  return c;
}
