/**
 * A KV event's data as a plain object, for deep comparisons: a Stored event built from u32 pairs
 * (storedFromPairs) reads its `blocks` through a getter; this returns { type, parentHash, blocks }
 * either way, after checking that the pairs, when present, hold exactly those hashes.
 */
import assert from 'node:assert/strict';
import { fromPairs, storedFromPairs, toPairs, type KvCacheEventData } from '../../src/router/index.js';

export function plainData(d: KvCacheEventData): KvCacheEventData {
  if (d.type !== 'stored') return d;
  const blocks = d.blocks.map((b) => ({ blockHash: b.blockHash, tokensHash: b.tokensHash }));
  if (d.pairs) {
    assert.deepEqual(
      fromPairs(d.pairs.block),
      blocks.map((b) => b.blockHash),
      'pairs.block = blocks[].blockHash',
    );
    assert.deepEqual(
      fromPairs(d.pairs.tokens),
      blocks.map((b) => b.tokensHash),
      'pairs.tokens = blocks[].tokensHash',
    );
  }
  return { type: 'stored', parentHash: d.parentHash, blocks };
}

/** The same Stored event as the decoders and the sim threads hand it over: hashes as u32 pairs. */
export function viaPairs(d: KvCacheEventData): KvCacheEventData {
  if (d.type !== 'stored') return d;
  return storedFromPairs(d.parentHash, toPairs(d.blocks.map((b) => b.blockHash)), toPairs(d.blocks.map((b) => b.tokensHash)));
}
