/**
 * KV events across a simulated worker's thread boundary. A Stored event crosses as two
 * Uint32Arrays of hash halves (structured clone copies a typed array in one piece) instead of an
 * object and two bigints per block, and the router's side rebuilds it with `storedFromPairs`, so
 * its indexer reads the pairs directly: no bigint per block is made or read on the router's
 * thread. Other events cross as they are.
 */
import { storedFromPairs, type RouterEvent, type StoredBlock } from '../router/types.js';
import { toPairs } from '../router/u64.js';

interface StoredOnWire {
  readonly type: 'stored-pairs';
  readonly parentHash: bigint | null;
  readonly block: Uint32Array;
  readonly tokens: Uint32Array;
}

export type WireEvent = RouterEvent | (Omit<RouterEvent, 'data'> & { readonly data: StoredOnWire });

/** The thread's side: a Stored event's hashes packed into pairs. */
export function toWire(ev: RouterEvent): WireEvent {
  const d = ev.data;
  if (d.type !== 'stored') return ev;
  const pairs = d.pairs ?? packBlocks(d.blocks);
  return { ...ev, data: { type: 'stored-pairs', parentHash: d.parentHash, block: pairs.block, tokens: pairs.tokens } };
}

/** The router's side. */
export function fromWire(w: WireEvent): RouterEvent {
  const d = w.data;
  if (d.type !== 'stored-pairs') return w as RouterEvent;
  return { ...w, data: storedFromPairs(d.parentHash, d.block, d.tokens) };
}

function packBlocks(blocks: readonly StoredBlock[]): { block: Uint32Array; tokens: Uint32Array } {
  return { block: toPairs(blocks.map((b) => b.blockHash)), tokens: toPairs(blocks.map((b) => b.tokensHash)) };
}
