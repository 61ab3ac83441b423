/**
 * Lower storage tiers of the KV index: blocks a worker holds in host memory (CPU offload), on
 * disk or in an external store, as KV events with a `storage_tier` (Dynamo-native RouterEvent)
 * or a `medium` (vLLM's ZMQ BlockStored / BlockRemoved) tell them.
 *
 * Semantics follow Dynamo's lower-tier continuation index (lib/kv-router, read for facts only):
 * - One index per tier. It holds edges `(parent block hash | root, local block hash) -> child
 *   block hash` with the set of (worker, dp_rank) slots that own the edge. The engine's block
 *   hashes are opaque here, exactly as in events.
 * - Stored: the chain starts at the event's parent (or the root) and rolls forward block by
 *   block. An edge already owned under another child hash, or a block hash the slot already has
 *   under another edge, stops the rest of the chain (the first mapping wins).
 * - Removed: the slot leaves the edge its block hash was stored under; an edge nobody owns is
 *   dropped. Unknown hashes are skipped. Cleared: everything of that slot in that tier.
 * - Lookup continues each worker's device match: a worker that matched d blocks on the device
 *   walks the host tier from position d, anchored on the block hash of its d-th device block,
 *   and counts consecutive owned edges; disk then continues from where host stopped, external
 *   from where disk stopped. A worker with no device match enters a tier only through a root
 *   edge it owns for the first block. The host hits are the "host blocks", disk + external hits
 *   the "disk blocks" of the cost function (Dynamo folds external into the disk weight).
 *
 * Pure: no I/O, no clock. Hashes are handled as (lo, hi) u32 pairs, as in the device indexer.
 */
import type { KvCacheEventData, StorageTier } from './types.js';
import { splitU64 } from './u64.js';

interface Edge {
  childLo: number;
  childHi: number;
  owners: Set<number>;
}

/** Lower tiers in lookup order (each continues the one before). */
export const LOWER_TIER_ORDER: readonly StorageTier[] = ['host_pinned', 'disk', 'external'];

function edgeKey(hasParent: boolean, plo: number, phi: number, llo: number, lhi: number): string {
  return hasParent ? `${plo >>> 0}:${phi >>> 0}/${llo >>> 0}:${lhi >>> 0}` : `r/${llo >>> 0}:${lhi >>> 0}`;
}

/** Where a worker's walk through the next tier starts: a position and the block hash before it. */
export interface Continuation {
  pos: number;
  /** false: the walk starts at the root (position 0, no parent). */
  hasHash: boolean;
  lo: number;
  hi: number;
}

/** One lower tier's continuation index. */
export class LowerTierIndex {
  private readonly edges = new Map<string, Edge>();
  /** Per slot: block hash key -> edge key it was stored under. */
  private readonly bySlot = new Map<number, Map<string, string>>();
  private readonly pair = new Uint32Array(2);

  get edgeCount(): number {
    return this.edges.size;
  }

  /** Blocks this tier holds for a slot. */
  blockCount(slot: number): number {
    return this.bySlot.get(slot)?.size ?? 0;
  }

  apply(slot: number, data: KvCacheEventData): void {
    switch (data.type) {
      case 'stored': {
        let hasParent = data.parentHash !== null && data.parentHash !== undefined;
        let plo = 0;
        let phi = 0;
        if (hasParent) {
          splitU64(data.parentHash!, this.pair, 0);
          plo = this.pair[0]!;
          phi = this.pair[1]!;
        }
        let mine = this.bySlot.get(slot);
        if (!mine) this.bySlot.set(slot, (mine = new Map()));
        for (const b of data.blocks) {
          splitU64(b.tokensHash, this.pair, 0);
          const key = edgeKey(hasParent, plo, phi, this.pair[0]!, this.pair[1]!);
          splitU64(b.blockHash, this.pair, 0);
          const blo = this.pair[0]!;
          const bhi = this.pair[1]!;
          const hkey = `${blo}:${bhi}`;
          const prev = mine.get(hkey);
          if (prev !== undefined && prev !== key) break;
          const e = this.edges.get(key);
          if (e) {
            if (e.childLo !== blo || e.childHi !== bhi) break;
            e.owners.add(slot);
          } else this.edges.set(key, { childLo: blo, childHi: bhi, owners: new Set([slot]) });
          mine.set(hkey, key);
          hasParent = true;
          plo = blo;
          phi = bhi;
        }
        if (mine.size === 0) this.bySlot.delete(slot);
        return;
      }
      case 'removed': {
        const mine = this.bySlot.get(slot);
        if (!mine) return;
        for (const h of data.blockHashes) {
          splitU64(h, this.pair, 0);
          const hkey = `${this.pair[0]}:${this.pair[1]}`;
          const key = mine.get(hkey);
          if (key === undefined) continue;
          mine.delete(hkey);
          this.leave(key, slot);
        }
        if (mine.size === 0) this.bySlot.delete(slot);
        return;
      }
      case 'cleared':
        this.removeSlot(slot);
        return;
    }
  }

  /** Drop everything a slot holds in this tier. */
  removeSlot(slot: number): void {
    const mine = this.bySlot.get(slot);
    if (!mine) return;
    for (const key of mine.values()) this.leave(key, slot);
    this.bySlot.delete(slot);
  }

  private leave(key: string, slot: number): void {
    const e = this.edges.get(key);
    if (!e) return;
    e.owners.delete(slot);
    if (e.owners.size === 0) this.edges.delete(key);
  }

  /** Slots owning the root edge of the first query block (entry points without a device match). */
  rootSlots(localPairs: Uint32Array): Iterable<number> {
    if (localPairs.length < 2) return [];
    return this.edges.get(edgeKey(false, 0, 0, localPairs[0]!, localPairs[1]!))?.owners ?? [];
  }

  /**
   * Walk every continuation forward through this tier over the query's local hashes (n blocks).
   * Returns the hits per slot; continuations with hits are advanced in place (the next tier
   * continues from there), the others are left as they were.
   */
  walk(localPairs: Uint32Array, n: number, conts: Map<number, Continuation>): Map<number, number> {
    const hits = new Map<number, number>();
    for (const [slot, c] of conts) {
      let pos = c.pos;
      let hasHash = c.hasHash;
      let lo = c.lo;
      let hi = c.hi;
      while (pos < n) {
        const e = this.edges.get(edgeKey(hasHash, lo, hi, localPairs[2 * pos]!, localPairs[2 * pos + 1]!));
        if (!e || !e.owners.has(slot)) break;
        hasHash = true;
        lo = e.childLo;
        hi = e.childHi;
        pos++;
      }
      const h = pos - c.pos;
      hits.set(slot, h);
      if (h > 0) {
        c.pos = pos;
        c.hasHash = hasHash;
        c.lo = lo;
        c.hi = hi;
      }
    }
    return hits;
  }
}

/**
 * Host and disk blocks per slot for a query, continuing the device matches (`device` gives, for
 * each slot with a device match, its depth and the block hash of its last matched block).
 * Returns null when no lower tier holds anything.
 */
export function lowerTierMatches(
  tiers: ReadonlyMap<StorageTier, LowerTierIndex>,
  localPairs: Uint32Array,
  n: number,
  device: Map<number, Continuation>,
): { host: Map<number, number>; disk: Map<number, number> } | null {
  let any = false;
  for (const t of tiers.values()) if (t.edgeCount > 0) any = true;
  if (!any || n === 0) return null;
  const conts = device;
  const host = new Map<number, number>();
  const disk = new Map<number, number>();
  for (const tier of LOWER_TIER_ORDER) {
    const idx = tiers.get(tier);
    if (!idx || idx.edgeCount === 0) continue;
    for (const s of idx.rootSlots(localPairs)) if (!conts.has(s)) conts.set(s, { pos: 0, hasHash: false, lo: 0, hi: 0 });
    const hits = idx.walk(localPairs, n, conts);
    const into = tier === 'host_pinned' ? host : disk;
    for (const [s, h] of hits) if (h > 0) into.set(s, (into.get(s) ?? 0) + h);
  }
  return { host, disk };
}
