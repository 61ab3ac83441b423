/**
 * Active (in-flight) load per (worker, dp_rank) slot (dynamo-facts §1.4).
 *
 * - Booking happens right after selection: the request's sequence hashes (full prompt blocks)
 *   are counted once per slot, so `active_blocks` counts unique blocks and shared prefixes count
 *   once; the booked prefill tokens are `isl - cached` (nothing when 0 or when prefill tracking
 *   is off).
 * - The active blocks of a slot form a tree (a sequence hash determines its whole prefix): each
 *   entry counts its children (value) and the requests that end there (aux). Booking a request
 *   adds only the blocks past the longest active prefix of its chain, freeing one removes blocks
 *   from the chain's end while nothing else reaches them: for requests that share most of their
 *   prefix, a few probes instead of two per block (bench:proxy's 8k-token prompts: 512 blocks).
 * - Without KV-reuse assumption (`assume_kv_reuse = false`) Dynamo books random hashes, i.e. no
 *   dedup: here those blocks are simply counted per request.
 * - markPrefillCompleted drops the request's prefill tokens; free drops everything.
 * - Requests older than the expiry (300 s by default) are force-freed by `expire`.
 * - Projection for a new request on a slot: potential decode blocks =
 *   active_blocks + (blocks - depth of the longest prefix of its sequence hashes already active).
 *
 * Pure: time is passed in.
 */
import { U64Table } from './u64.js';

export interface ActiveRequest {
  readonly requestId: string;
  readonly slot: number;
  /** Sequence hashes as interleaved u32 pairs (null when booked without KV reuse). */
  readonly seqPairs: Uint32Array | null;
  readonly blocks: number;
  prefillTokens: number;
  readonly startMs: number;
  readonly expectedOutputTokens: number | undefined;
}

export class ActiveSequences {
  private tables: (U64Table | null)[] = [];
  private uniqueBlocks: number[] = [];
  private prefill: number[] = [];
  private requests: number[] = [];
  private readonly byId = new Map<string, ActiveRequest>();

  ensureSlot(slot: number): void {
    if (this.tables[slot]) return;
    this.tables[slot] = new U64Table(64, true);
    this.uniqueBlocks[slot] = 0;
    this.prefill[slot] = 0;
    this.requests[slot] = 0;
  }

  /** Forget a slot and every request booked on it. */
  removeSlot(slot: number): void {
    for (const [id, r] of this.byId) if (r.slot === slot) this.byId.delete(id);
    this.tables[slot] = null;
    this.uniqueBlocks[slot] = 0;
    this.prefill[slot] = 0;
    this.requests[slot] = 0;
  }

  has(requestId: string): boolean {
    return this.byId.has(requestId);
  }
  get(requestId: string): ActiveRequest | undefined {
    return this.byId.get(requestId);
  }
  get size(): number {
    return this.byId.size;
  }
  ids(): IterableIterator<string> {
    return this.byId.keys();
  }

  activeBlocks(slot: number): number {
    return this.uniqueBlocks[slot] ?? 0;
  }
  activePrefillTokens(slot: number): number {
    return this.prefill[slot] ?? 0;
  }
  activeRequests(slot: number): number {
    return this.requests[slot] ?? 0;
  }

  /**
   * Depth of the longest prefix of `seqPairs` whose blocks are all active on `slot`.
   * The active set of a slot is prefix-closed (every booking adds a whole chain of sequence
   * hashes from the first block, and a sequence hash determines its whole prefix), so the
   * membership predicate is monotone along the chain and a binary search is exact.
   */
  activeDepth(slot: number, seqPairs: Uint32Array, n: number): number {
    const t = this.tables[slot];
    if (!t || t.size === 0 || n === 0) return 0;
    let lo = 0; // blocks [0, lo) known active
    let hi = n; // blocks [hi, n) known inactive (hi may equal n)
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (t.find(0, seqPairs[2 * mid]!, seqPairs[2 * mid + 1]!) >= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Reference (linear) version of activeDepth, for tests. */
  activeDepthLinear(slot: number, seqPairs: Uint32Array, n: number): number {
    const t = this.tables[slot];
    if (!t) return 0;
    let d = 0;
    while (d < n && t.find(0, seqPairs[2 * d]!, seqPairs[2 * d + 1]!) >= 0) d++;
    return d;
  }

  /** Book a request on a slot. A request id already booked is freed first. */
  add(
    requestId: string,
    slot: number,
    seqPairs: Uint32Array | null,
    blocks: number,
    prefillTokens: number,
    nowMs: number,
    expectedOutputTokens?: number,
  ): void {
    if (this.byId.has(requestId)) this.free(requestId);
    this.ensureSlot(slot);
    const t = this.tables[slot]!;
    if (seqPairs && blocks > 0) {
      // The blocks already active are a prefix of the chain (found in log2(blocks) probes); only
      // the rest is new. Room for them first: no resize inside the loop, so entry indices hold.
      const depth = this.activeDepth(slot, seqPairs, blocks);
      t.reserveFor(blocks - depth);
      let prev = depth > 0 ? t.find(0, seqPairs[2 * depth - 2]!, seqPairs[2 * depth - 1]!) : -1;
      for (let i = depth; i < blocks; i++) {
        const idx = t.findSlot(0, seqPairs[2 * i]!, seqPairs[2 * i + 1]!);
        if (idx >= 0) {
          // Only a 64-bit collision lands here (the chain's next hash active elsewhere): leave that entry as it is.
          prev = idx;
          continue;
        }
        t.insertAt(~idx, 0, seqPairs[2 * i]!, seqPairs[2 * i + 1]!, 0);
        this.uniqueBlocks[slot]!++;
        if (prev >= 0) t.addValueAt(prev, 1);
        prev = ~idx;
      }
      t.aux![prev] = t.aux![prev]! + 1;
    } else {
      this.uniqueBlocks[slot]! += blocks;
    }
    const prefill = Math.max(0, prefillTokens);
    this.prefill[slot]! += prefill;
    this.requests[slot]!++;
    this.byId.set(requestId, {
      requestId,
      slot,
      seqPairs: seqPairs ? seqPairs.slice(0, blocks * 2) : null,
      blocks,
      prefillTokens: prefill,
      startMs: nowMs,
      expectedOutputTokens,
    });
  }

  markPrefillCompleted(requestId: string): boolean {
    const r = this.byId.get(requestId);
    if (!r || r.prefillTokens === 0) return false;
    this.prefill[r.slot]! -= r.prefillTokens;
    r.prefillTokens = 0;
    return true;
  }

  free(requestId: string): boolean {
    const r = this.byId.get(requestId);
    if (!r) return false;
    this.byId.delete(requestId);
    const slot = r.slot;
    const t = this.tables[slot];
    if (!t) return true;
    this.prefill[slot]! -= r.prefillTokens;
    this.requests[slot]!--;
    if (r.seqPairs && r.blocks > 0) {
      // Up the chain from its last block, removing each block no other request reaches.
      const p = r.seqPairs;
      let i = r.blocks - 1;
      let idx = t.find(0, p[2 * i]!, p[2 * i + 1]!);
      if (idx >= 0) t.aux![idx] = t.aux![idx]! - 1;
      while (idx >= 0 && t.valueAt(idx) === 0 && t.aux![idx] === 0) {
        t.deleteAt(idx);
        this.uniqueBlocks[slot]!--;
        if (--i < 0) break;
        idx = t.find(0, p[2 * i]!, p[2 * i + 1]!);
        if (idx >= 0) t.addValueAt(idx, -1);
      }
    } else {
      this.uniqueBlocks[slot]! -= r.blocks;
    }
    return true;
  }

  /** Force-free requests older than `maxAgeMs`; returns their ids. */
  expire(nowMs: number, maxAgeMs: number): string[] {
    const out: string[] = [];
    for (const r of this.byId.values()) if (nowMs - r.startMs > maxAgeMs) out.push(r.requestId);
    for (const id of out) this.free(id);
    return out;
  }
}
