import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RadixIndexer,
  computeBlockHashes,
  computeSequenceHashes,
  storedFromPairs,
  toPairs,
  type KvCacheEventData,
} from '../../src/router/index.js';
import { mix } from '../../src/router/u64.js';
import { viaPairs } from '../helpers/events.js';

const local = (p: number[]) => computeBlockHashes(p, 1);
const seq = (p: number[]) => computeSequenceHashes(local(p));

function store(p: number[], start = 0): KvCacheEventData {
  const s = seq(p);
  const l = local(p);
  return {
    type: 'stored',
    parentHash: start === 0 ? null : s[start - 1]!,
    blocks: p.slice(start).map((_, i) => ({ blockHash: s[start + i]!, tokensHash: l[start + i]! })),
  };
}
const removeLast = (p: number[]): KvCacheEventData => ({ type: 'removed', blockHashes: [seq(p).at(-1)!] });

function scores(ix: RadixIndexer, p: number[]): number[] {
  const l = local(p);
  const s = ix.findMatchesPairs(toPairs(l), l.length);
  return Array.from(s.subarray(0, ix.slotLimit));
}

test('stored / find_matches: consecutive blocks from the start, per worker', () => {
  const ix = new RadixIndexer();
  const a = ix.ensureSlot('a', 0);
  const b = ix.ensureSlot('b', 0);
  assert.equal(ix.applyData(a, store([1, 2, 3, 4])).status, 'ok');
  assert.equal(ix.applyData(b, store([1, 2])).status, 'ok');
  assert.deepEqual(scores(ix, [1, 2, 3, 4, 5]), [4, 2]);
  assert.deepEqual(scores(ix, [1, 2, 9]), [2, 2]);
  assert.deepEqual(scores(ix, [2, 1]), [0, 0]);
  assert.deepEqual(scores(ix, []), [0, 0]);
  // Extend b from its parent.
  assert.equal(ix.applyData(b, store([1, 2, 3], 2)).status, 'ok');
  assert.deepEqual(scores(ix, [1, 2, 3, 4]), [4, 3]);
  assert.equal(ix.blockCount(a), 4);
  assert.equal(ix.blockCount(b), 3);
  ix.checkInvariants();
});

test('unknown parent drops the whole event; duplicates are an invalid sequence', () => {
  const ix = new RadixIndexer();
  const a = ix.ensureSlot('a', 0);
  assert.equal(ix.applyData(a, store([1, 2, 3], 2)).status, 'parent_block_not_found');
  assert.equal(ix.indexedBlocks, 0);
  const l = local([1]);
  assert.equal(
    ix.applyData(a, {
      type: 'stored',
      parentHash: null,
      blocks: [
        { blockHash: 5n, tokensHash: l[0]! },
        { blockHash: 5n, tokensHash: l[0]! },
      ],
    }).status,
    'invalid_block_sequence',
  );
  assert.equal(ix.applyData(a, { type: 'stored', parentHash: null, blocks: [{ blockHash: 5n, tokensHash: l[0]! }] }).status, 'ok');
  assert.equal(
    ix.applyData(a, { type: 'stored', parentHash: 5n, blocks: [{ blockHash: 5n, tokensHash: l[0]! }] }).status,
    'invalid_block_sequence',
  );
  // Long event (> 16 blocks) takes the table-based duplicate check.
  const long = Array.from({ length: 40 }, (_, i) => ({ blockHash: BigInt(100 + i), tokensHash: BigInt(i) }));
  assert.equal(ix.applyData(a, { type: 'stored', parentHash: null, blocks: [...long, long[7]!] }).status, 'invalid_block_sequence');
  assert.equal(ix.applyData(a, { type: 'stored', parentHash: null, blocks: long }).status, 'ok');
  assert.equal(ix.blockCount(a), 41);
  // ... and catches a block equal to the parent there too (the parent is hashed apart from the blocks).
  const next = Array.from({ length: 30 }, (_, i) => ({ blockHash: BigInt(500 + i), tokensHash: BigInt(i) }));
  next[21] = { blockHash: 139n, tokensHash: 21n };
  assert.equal(ix.applyData(a, { type: 'stored', parentHash: 139n, blocks: next }).status, 'invalid_block_sequence');
  assert.equal(ix.blockCount(a), 41, 'nothing of the rejected event was applied');
});

test('removed does not cascade; emptied node clears its children (Dynamo semantics)', () => {
  const ix = new RadixIndexer();
  const a = ix.ensureSlot('a', 0);
  const b = ix.ensureSlot('b', 0);
  ix.applyData(a, store([1, 2, 3]));
  ix.applyData(b, store([1, 2, 3]));
  // Removing a's middle block: a stops at depth 1, its block 3 stays indexed (no cascade).
  assert.equal(ix.applyData(a, removeLast([1, 2])).status, 'ok');
  assert.deepEqual(scores(ix, [1, 2, 3]), [1, 3]);
  assert.equal(ix.blockCount(a), 2);
  // b removes its middle block too: node 2 is empty, its children are cleared.
  ix.applyData(b, removeLast([1, 2]));
  assert.deepEqual(scores(ix, [1, 2, 3]), [1, 1]);
  // a stores block 2 again: block 3 was detached, so a's match ends at 2 although a still holds 3.
  assert.equal(ix.applyData(a, store([1, 2], 1)).status, 'ok');
  assert.deepEqual(scores(ix, [1, 2, 3]), [2, 1]);
  // Re-storing block 3 re-attaches the detached node (found through a's lookup).
  assert.equal(ix.applyData(a, store([1, 2, 3], 2)).status, 'ok');
  assert.deepEqual(scores(ix, [1, 2, 3]), [3, 1]);
  // Unknown hashes are skipped and reported after the rest is applied.
  const r = ix.applyData(a, { type: 'removed', blockHashes: [123n, seq([1, 2, 3])[2]!] });
  assert.equal(r.status, 'block_not_found');
  assert.deepEqual(scores(ix, [1, 2, 3]), [2, 1]);
  ix.checkInvariants();
});

test('cleared affects only the emitting (worker, dp_rank); removeSlot scrubs everything', () => {
  const ix = new RadixIndexer();
  const a0 = ix.ensureSlot('a', 0);
  const a1 = ix.ensureSlot('a', 1);
  const b = ix.ensureSlot('b', 0);
  for (const s of [a0, a1, b]) ix.applyData(s, store([1, 2]));
  ix.applyData(a0, { type: 'cleared' });
  assert.deepEqual(scores(ix, [1, 2]), [0, 2, 2]);
  assert.equal(ix.blockCount(a0), 0);
  ix.removeWorker('a');
  assert.equal(ix.slotOf('a', 1), -1);
  assert.equal(ix.indexedBlocks, 2);
  const c = ix.ensureSlot('c', 0); // reuses a freed slot id: must start empty
  assert.ok(c === a0 || c === a1);
  assert.equal(scores(ix, [1, 2])[c], 0);
  ix.checkInvariants();
  ix.removeWorker('b');
  assert.equal(ix.indexedBlocks, 0);
  assert.equal(ix.nodeCount, 1);
});

test('slots of one worker: each dp rank found, removed and reused on its own', () => {
  const ix = new RadixIndexer();
  const s = [3, 0, 7].map((r) => ix.ensureSlot('w', r));
  assert.deepEqual(
    [3, 0, 7].map((r) => ix.slotOf('w', r)),
    s,
  );
  assert.equal(ix.slotOf('w', 1), -1);
  assert.equal(ix.ensureSlot('w', 0), s[1], 'ensureSlot of a known rank returns its slot');
  ix.removeSlot(s[1]!);
  assert.equal(ix.slotOf('w', 0), -1);
  assert.equal(ix.slotOf('w', 3), s[0]);
  assert.equal(ix.slotOf('w', 7), s[2]);
  const again = ix.ensureSlot('w', 0);
  assert.equal(ix.slotOf('w', 0), again);
  ix.removeWorker('w');
  for (const r of [0, 3, 7]) assert.equal(ix.slotOf('w', r), -1);
  assert.deepEqual(ix.slots(), []);
});

test('long events: distinct hashes that share a bit of the quick filter are not duplicates', () => {
  // Two block hashes with the same 16 top bits of their mix: the filter flags the event and the
  // exact check must accept it; a real duplicate in the next event is still rejected.
  const byBits = new Map<number, number>();
  let pair: [number, number] | undefined;
  for (let lo = 1; !pair; lo++) {
    const b = mix(0, lo, 0) >>> 16;
    const other = byBits.get(b);
    if (other !== undefined) pair = [other, lo];
    else byBits.set(b, lo);
  }
  const ix = new RadixIndexer();
  const a = ix.ensureSlot('a', 0);
  const blocks = Array.from({ length: 30 }, (_, i) => ({ blockHash: BigInt(0x7000_0000 + i), tokensHash: BigInt(i) }));
  blocks[4] = { blockHash: BigInt(pair[0]), tokensHash: 4n };
  blocks[25] = { blockHash: BigInt(pair[1]), tokensHash: 25n };
  assert.equal(ix.applyData(a, { type: 'stored', parentHash: null, blocks }).status, 'ok');
  assert.equal(ix.blockCount(a), 30);
  const dup = blocks.map((b, i) => ({ blockHash: b.blockHash + 1000n, tokensHash: BigInt(i) }));
  dup[29] = dup[3]!;
  assert.equal(ix.applyData(a, { type: 'stored', parentHash: null, blocks: dup }).status, 'invalid_block_sequence');
  // The parent shares the bit of a block: flagged, then accepted.
  const child = Array.from({ length: 20 }, (_, i) => ({ blockHash: BigInt(0x7100_0000 + i), tokensHash: BigInt(100 + i) }));
  const parentLo = 0x7000_0000 + 29;
  let lo2 = 1;
  while (mix(0, lo2, 0) >>> 16 !== mix(0, parentLo, 0) >>> 16 || lo2 === parentLo) lo2++;
  child[11] = { blockHash: BigInt(lo2), tokensHash: 111n };
  assert.equal(ix.applyData(a, { type: 'stored', parentHash: blocks[29]!.blockHash, blocks: child }).status, 'ok');
  assert.equal(ix.blockCount(a), 50);
  ix.checkInvariants();
});

test('more than 32 slots use multi-word bitsets', () => {
  const ix = new RadixIndexer();
  const slots = Array.from({ length: 70 }, (_, i) => ix.ensureSlot(`w${i}`, 0));
  for (const [i, s] of slots.entries()) ix.applyData(s, store([1, 2, 3].slice(0, 1 + (i % 3))));
  const sc = scores(ix, [1, 2, 3]);
  for (const [i, s] of slots.entries()) assert.equal(sc[s], 1 + (i % 3));
  ix.checkInvariants();
});

test('TTL: 100 ms buckets, refresh on re-insert', () => {
  assert.equal(RadixIndexer.ttlBucket(0, 120_000), 120_000);
  assert.equal(RadixIndexer.ttlBucket(1, 120_000), 120_100);
  assert.equal(RadixIndexer.ttlBucket(100, 120_000), 120_100);
  const ix = new RadixIndexer();
  const a = ix.ensureSlot('a', 0);
  const l = toPairs(local([1, 2]));
  const s = toPairs(seq([1, 2]));
  ix.storeWithTtl(a, s, l, 2, 0, 1000);
  ix.storeWithTtl(a, s, l, 1, 500, 1000); // refresh block 1 only
  assert.equal(ix.expireTtl(999), 0);
  assert.equal(ix.expireTtl(1000), 1);
  assert.deepEqual(scores(ix, [1, 2]), [1]);
  assert.equal(ix.expireTtl(1500), 1);
  assert.equal(ix.indexedBlocks, 0);
  assert.equal(ix.nodeCount, 1);
});

test('memory bound evicts the least recently stored entries first', () => {
  const ix = new RadixIndexer({ maxIndexedBlocks: 4 });
  const a = ix.ensureSlot('a', 0);
  const b = ix.ensureSlot('b', 0);
  ix.applyData(a, store([1, 2, 3]));
  ix.applyData(b, store([3, 2]));
  assert.equal(ix.indexedBlocks, 4);
  assert.equal(ix.evictions, 1);
  // a's first block (oldest) went: a matches nothing from the start any more.
  assert.deepEqual(scores(ix, [1, 2, 3]), [0, 0]);
  assert.deepEqual(scores(ix, [3, 2]), [0, 2]);
  ix.applyData(a, store([1]));
  assert.equal(ix.evictions, 2);
  ix.checkInvariants();
});

test('memory bound: storing the same blocks again and again keeps the eviction-order records bounded, and eviction still goes by the latest store', () => {
  const ix = new RadixIndexer({ maxIndexedBlocks: 600 });
  const a = ix.ensureSlot('a', 0);
  const prompts = Array.from({ length: 8 }, (_, k) => Array.from({ length: 64 }, (_, i) => 1 + k * 1000 + i));
  // 512 blocks, under the bound of 600, stored 300 times each: 153,600 stores, no eviction.
  let most = 0;
  for (let r = 0; r < 300; r++)
    for (const p of prompts) {
      ix.applyData(a, store(p));
      most = Math.max(most, ix.fifoEntries);
    }
  assert.equal(ix.indexedBlocks, 512);
  assert.equal(ix.evictions, 0);
  assert.ok(most <= 65_536 + 64, `eviction-order records peaked at ${most}`);
  // Prompt 0 was stored longest ago: 100 new blocks push out its first 12 (512 + 100 - 600).
  ix.applyData(a, store(Array.from({ length: 100 }, (_, i) => 900_000 + i)));
  assert.equal(ix.evictions, 12);
  assert.deepEqual(scores(ix, prompts[0]!), [0]);
  assert.deepEqual(scores(ix, prompts[1]!), [64]);
  ix.checkInvariants();
});

test('re-storing a detached block re-attaches its whole subtree (lookup reuse)', () => {
  const ix = new RadixIndexer();
  const a = ix.ensureSlot('a', 0);
  ix.applyData(a, store([1, 2, 3, 4]));
  ix.applyData(a, removeLast([1, 2])); // node 2 empty: node 3 (with child 4) detached
  assert.deepEqual(scores(ix, [1, 2, 3, 4]), [1]);
  ix.applyData(a, store([1, 2], 1));
  assert.deepEqual(scores(ix, [1, 2, 3, 4]), [2]);
  // Only block 3 is re-stored; block 4 comes back with it because node 3 is reused.
  ix.applyData(a, store([1, 2, 3], 2));
  assert.deepEqual(scores(ix, [1, 2, 3, 4]), [4]);
  ix.checkInvariants();
});

test('busy nodes switch to the children table; removal and clear keep them consistent', () => {
  const ix = new RadixIndexer();
  const a = ix.ensureSlot('a', 0);
  const b = ix.ensureSlot('b', 0);
  for (let t = 10; t < 30; t++) ix.applyData(t % 2 ? a : b, store([1, 2, t]));
  ix.checkInvariants();
  for (let t = 10; t < 30; t++) assert.deepEqual(scores(ix, [1, 2, t]), t % 2 ? [3, 2] : [2, 3]);
  for (let t = 10; t < 30; t += 3) ix.applyData(t % 2 ? a : b, removeLast([1, 2, t]));
  ix.checkInvariants();
  for (let t = 10; t < 30; t++) assert.equal(scores(ix, [1, 2, t])[t % 2 ? a : b], (t - 10) % 3 === 0 ? 2 : 3);
  ix.applyData(a, { type: 'cleared' });
  ix.applyData(b, removeLast([1, 2]));
  ix.checkInvariants();
  assert.deepEqual(scores(ix, [1, 2, 12]), [0, 1]);
  ix.applyData(b, { type: 'cleared' });
  ix.checkInvariants();
  assert.equal(ix.nodeCount, 1);
});

test('a Stored event with a parent and exactly 128 blocks (one 8,192-token prefill chunk of 64-token blocks) is applied', () => {
  // Regression: the scratch buffer held 2 x 128 u32 and the parent hash was written past its
  // end (silently dropped by the typed array), so the parent looked unknown and the whole event
  // was dropped as parent_block_not_found, then every later extension of that prefix too.
  for (const n of [127, 128, 129, 256]) {
    const ix = new RadixIndexer();
    const a = ix.ensureSlot('a', 0);
    const p = Array.from({ length: n + 1 }, (_, i) => i + 1);
    assert.equal(ix.applyData(a, store(p.slice(0, 1))).status, 'ok');
    assert.equal(ix.applyData(a, store(p, 1)).status, 'ok', `${n} blocks after a parent`);
    assert.deepEqual(scores(ix, p), [n + 1]);
    // And the next chunk, chained onto the last block of this one.
    const q = [...p, 10_000];
    assert.equal(ix.applyData(a, store(q, p.length)).status, 'ok');
    assert.deepEqual(scores(ix, q), [n + 2]);
    ix.checkInvariants();
  }
});

test('Stored events as u32 pairs: the same index as bigint blocks; lazy blocks; malformed pairs rejected', () => {
  const p = [1, 2, 3, 4, 5];
  const plain = store(p);
  if (plain.type !== 'stored') throw new Error('unreachable');
  const paired = viaPairs(plain);
  if (paired.type !== 'stored') throw new Error('unreachable');
  assert.deepEqual(
    paired.blocks.map((b) => [b.blockHash, b.tokensHash]),
    plain.blocks.map((b) => [b.blockHash, b.tokensHash]),
  );
  const ix = new RadixIndexer();
  const a = ix.ensureSlot('a', 0);
  const b = ix.ensureSlot('b', 0);
  assert.equal(ix.applyData(a, plain).status, 'ok');
  assert.equal(ix.applyData(b, paired).status, 'ok');
  assert.deepEqual(scores(ix, p), [5, 5]);
  // With a parent: extend b's chain by one block, given as pairs.
  const ext = store([1, 2, 3, 4, 5, 6], 5);
  if (ext.type !== 'stored') throw new Error('unreachable');
  const extPairs = viaPairs(ext);
  assert.equal(ix.applyData(b, extPairs).status, 'ok');
  assert.deepEqual(scores(ix, [1, 2, 3, 4, 5, 6]), [5, 6]);
  ix.checkInvariants();
  assert.throws(() => storedFromPairs(null, new Uint32Array(4), new Uint32Array(2)), /two equal, even lengths/);
  assert.throws(() => storedFromPairs(null, new Uint32Array(3), new Uint32Array(3)), /two equal, even lengths/);
  const bad: KvCacheEventData = {
    type: 'stored',
    parentHash: null,
    blocks: [],
    pairs: { block: new Uint32Array(4), tokens: new Uint32Array(2) },
  };
  assert.equal(ix.applyData(a, bad).status, 'invalid_block_sequence');
  assert.equal(ix.blockCount(a), 5);
});
