/**
 * The typed-array pool under the indexer (src/router/pool.ts): arrays handed back are reused only
 * at their own type and length and always come back zeroed; the pool keeps at most its limit; an
 * index built from memory a disposed index handed back answers exactly as one built from fresh
 * memory; a disposed index refuses to be used.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RadixIndexer, computeBlockHashes, computeSequenceHashes, toPairs } from '../../src/router/index.js';
import { POOL_LIMIT_BYTES, clearPool, pooledByteCount, recycle, takeFloat64, takeInt32 } from '../../src/router/pool.js';
import { U64Table } from '../../src/router/u64.js';

test('a recycled array comes back zeroed, only for its own type and length', () => {
  clearPool();
  const a = takeInt32(1000);
  a.fill(-7);
  recycle(a);
  assert.equal(pooledByteCount(), 4000);
  assert.notEqual(takeInt32(999), a, 'another length gets a new array');
  assert.equal(takeFloat64(1000).length, 1000);
  assert.equal(pooledByteCount(), 4000, 'a Float64Array of the same length does not take it');
  const b = takeInt32(1000);
  assert.equal(b, a, 'the same length reuses it');
  assert.ok(
    b.every((x) => x === 0),
    'and it is zeroed',
  );
  assert.equal(pooledByteCount(), 0);
  const f = takeFloat64(16);
  f.fill(Math.PI);
  recycle(f);
  const g = takeFloat64(16);
  assert.equal(g, f);
  assert.ok(g.every((x) => x === 0));
});

test('the pool keeps at most its limit', () => {
  clearPool();
  const len = Math.floor(POOL_LIMIT_BYTES / 4 / 3); // a third of the limit each
  for (let i = 0; i < 5; i++) recycle(new Int32Array(len));
  assert.equal(pooledByteCount(), 3 * len * 4);
  assert.ok(pooledByteCount() <= POOL_LIMIT_BYTES);
  clearPool();
  assert.equal(pooledByteCount(), 0);
});

test('U64Table: a resize hands the old array back; a released table leaves nothing for the next one', () => {
  clearPool();
  const t = new U64Table(4);
  for (let i = 0; i < 200; i++) t.set(i & 3, i, ~i, i);
  assert.ok(pooledByteCount() > 0, 'resizes recycled the smaller arrays');
  const cap = t.capacity;
  t.release();
  const u = new U64Table(cap / 2);
  assert.equal(u.capacity, cap);
  assert.equal(u.size, 0);
  for (let i = 0; i < 200; i++) assert.equal(u.get(i & 3, i, ~i), -1, `key ${i} gone`);
  u.set(1, 5, ~5, 42);
  assert.equal(u.get(1, 5, ~5), 42);
  // The released table itself is empty and usable.
  assert.equal(t.size, 0);
  assert.equal(t.get(0, 0, ~0), -1);
  t.set(2, 9, 9, 7);
  assert.equal(t.get(2, 9, 9), 7);
});

const WORKERS = ['w0', 'w1', 'w2', 'w3'];

/** Sessions over shared system prompts: enough blocks to grow the arena and the tables several times. */
function stream(seed: number, requests: number): number[][] {
  let s = seed;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  const out: number[][] = [];
  const sessions: number[][] = [];
  let next = seed * 1_000_000;
  for (let i = 0; i < requests; i++) {
    if (sessions.length < 20 || rnd() < 0.2) sessions.push([Math.floor(rnd() * 5)]);
    const sess = sessions[Math.floor(rnd() * sessions.length)]!;
    for (let j = 0; j < 1 + Math.floor(rnd() * 6); j++) sess.push(next++);
    out.push([...sess]);
  }
  return out;
}

function build(paths: number[][]): RadixIndexer {
  const ix = new RadixIndexer();
  for (const w of WORKERS) ix.ensureSlot(w, 0);
  paths.forEach((p, i) => {
    const local = computeBlockHashes(p, 1);
    const seq = computeSequenceHashes(local);
    const res = ix.applyEvent({
      workerId: WORKERS[i % WORKERS.length]!,
      dpRank: 0,
      eventId: Math.floor(i / WORKERS.length),
      data: { type: 'stored', parentHash: null, blocks: seq.map((h, k) => ({ blockHash: h, tokensHash: local[k]! })) },
    });
    assert.equal(res.status, 'ok');
  });
  return ix;
}

function answers(ix: RadixIndexer, paths: number[][]): number[][] {
  return paths.map((p) => {
    const l = computeBlockHashes(p, 1);
    return Array.from(ix.findMatchesPairs(toPairs(l), l.length).subarray(0, WORKERS.length));
  });
}

test('an index built from a disposed index memory answers as one built from fresh memory', () => {
  const first = stream(1, 3000);
  const second = stream(2, 3000);
  const queries = [...second.slice(0, 200), ...first.slice(0, 50)];
  clearPool();
  const fresh = build(second);
  const expected = answers(fresh, queries);
  const freshNodes = fresh.nodeCount;
  const freshBlocks = fresh.indexedBlocks;
  assert.ok(expected.some((row) => row.some((x) => x > 0)));

  clearPool();
  const old = build(first);
  old.dispose();
  const pooled = pooledByteCount();
  assert.ok(pooled > 1_000_000, `the disposed index handed back its arrays (${pooled} bytes)`);
  const reused = build(second);
  assert.ok(pooledByteCount() < pooled, 'the new index took memory from the pool');
  assert.deepEqual(answers(reused, queries), expected);
  assert.equal(reused.nodeCount, freshNodes);
  assert.equal(reused.indexedBlocks, freshBlocks);
  reused.checkInvariants();
});

test('a disposed index throws on use, naming dispose()', () => {
  const ix = build(stream(3, 50));
  ix.dispose();
  ix.dispose(); // twice is harmless
  const l = computeBlockHashes([1, 2], 1);
  assert.throws(() => ix.findMatchesPairs(toPairs(l), 2), /after dispose\(\)/);
  assert.throws(() => ix.ensureSlot('x', 0), /after dispose\(\)/);
  assert.throws(() => ix.applyEvent({ workerId: 'w0', dpRank: 0, eventId: 99, data: { type: 'cleared' } }), /after dispose\(\)/);
});
