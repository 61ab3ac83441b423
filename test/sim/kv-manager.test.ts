import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { computeBlockHashes, computeSequenceHashes } from '../../src/router/hashing.js';
import { RadixIndexer } from '../../src/router/indexer.js';
import { toPairs } from '../../src/router/u64.js';
import type { KvCacheEventData, RouterEvent } from '../../src/router/types.js';
import { KvBlockManager, type BlockHolder, type BlockSource } from '../../src/sim/kv-manager.js';
import { SimEngine, type EngineResult } from '../../src/sim/engine.js';
import { VirtualClock } from '../../src/sim/clock.js';

const BS = 4;

/** The blocks of `tokens` (block size `bs`) with the router's hashes (salt 1337 chain). */
function sourceOf(tokens: number[], bs: number): BlockSource {
  // Hashed again when tokens were added (a test may grow the sequence after creating it).
  let n = -1;
  let local: bigint[] = [];
  let chain: bigint[] = [];
  let pairs: Uint32Array = new Uint32Array(0);
  const at = () => {
    if (n !== tokens.length) {
      n = tokens.length;
      local = computeBlockHashes(tokens, bs);
      chain = computeSequenceHashes(local);
      pairs = toPairs(chain);
    }
  };
  return {
    seqLo: (i) => (at(), pairs[2 * i]!),
    seqHi: (i) => (at(), pairs[2 * i + 1]!),
    seqHash: (i) => (at(), chain[i]!),
    localHash: (i) => (at(), local[i]!),
    blockTokens: (i) => tokens.slice(i * bs, (i + 1) * bs),
  };
}

/** A sequence whose block hashes are the router's. */
function seqOf(tokens: number[]): BlockSource & BlockHolder {
  return { held: [], partial: false, ...sourceOf(tokens, BS) };
}

function recorder() {
  const events: { data: KvCacheEventData; tokens?: readonly number[] }[] = [];
  return { events, emit: (data: KvCacheEventData, tokens?: readonly number[]) => events.push({ data, tokens }) };
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

test('new full blocks emit one Stored with the parent hash; the partial tail is not stored', () => {
  const r = recorder();
  const kv = new KvBlockManager({ numGpuBlocks: 10, blockSize: BS, emit: r.emit });
  const tokens = range(1, 10); // 2 full blocks + 2 tokens
  const s = seqOf(tokens);
  assert.equal(kv.tryGrow(s, s, tokens.length), true);
  assert.equal(kv.activeBlocks(), 2);
  assert.equal(kv.partialBlocks(), 1);
  assert.equal(r.events.length, 1);
  const ev = r.events[0]!;
  assert.equal(ev.data.type, 'stored');
  if (ev.data.type !== 'stored') return;
  assert.equal(ev.data.parentHash, null);
  assert.deepEqual(
    ev.data.blocks.map((b) => b.blockHash),
    [s.seqHash(0), s.seqHash(1)],
  );
  assert.deepEqual(
    ev.data.blocks.map((b) => b.tokensHash),
    [s.localHash(0), s.localHash(1)],
  );
  assert.deepEqual(ev.tokens, range(1, 8));

  // Growing past the block boundary promotes the partial block: Stored with parent = block 1.
  tokens.push(11, 12);
  assert.equal(kv.tryGrow(s, s, 12), true);
  assert.equal(kv.partialBlocks(), 0);
  assert.equal(r.events.length, 2);
  const ev2 = r.events[1]!.data;
  assert.equal(ev2.type, 'stored');
  if (ev2.type === 'stored') {
    assert.equal(ev2.parentHash, s.seqHash(1));
    assert.deepEqual(
      ev2.blocks.map((b) => b.blockHash),
      [s.seqHash(2)],
    );
  }
});

test('a shared prefix is reused with a ref count and emits nothing; free is tail first into the LRU', () => {
  const r = recorder();
  const kv = new KvBlockManager({ numGpuBlocks: 10, blockSize: BS, emit: r.emit });
  const a = seqOf(range(1, 12));
  const b = seqOf([...range(1, 8), 100, 101, 102, 103]);
  kv.tryGrow(a, a, 12);
  kv.tryGrow(b, b, 12);
  assert.equal(kv.refCount(a.seqHash(0)), 2);
  assert.equal(kv.refCount(a.seqHash(1)), 2);
  assert.equal(kv.activeBlocks(), 4);
  assert.equal(r.events.length, 2);
  const ev = r.events[1]!.data;
  assert.ok(ev.type === 'stored' && ev.parentHash === a.seqHash(1) && ev.blocks.length === 1);

  kv.free(a);
  assert.equal(kv.activeBlocks(), 3);
  assert.deepEqual(kv.inactiveLru(), [a.seqHash(2)]);
  kv.free(b);
  // b freed tail first: its block 2, then the shared blocks 1, 0.
  assert.deepEqual(kv.inactiveLru(), [a.seqHash(2), b.seqHash(2), b.seqHash(1), b.seqHash(0)]);
  assert.equal(kv.usedBlocks(), 0);
  assert.equal(kv.cachedBlockCount(), 4);
  assert.equal(kv.prefixMatch(seqOf(range(1, 12)), 3), 3);
  assert.equal(kv.prefixMatch(seqOf([...range(1, 4), 9, 9, 9, 9]), 2), 1);
});

test('when full, the least recently used inactive block is evicted (Removed) and reuse refreshes it', () => {
  const r = recorder();
  const kv = new KvBlockManager({ numGpuBlocks: 3, blockSize: BS, emit: r.emit });
  const x = seqOf(range(1, 4));
  const y = seqOf(range(11, 4));
  const z = seqOf(range(21, 4));
  for (const s of [x, y, z]) {
    kv.tryGrow(s, s, 4);
    kv.free(s);
  }
  assert.deepEqual(kv.inactiveLru(), [x.seqHash(0), y.seqHash(0), z.seqHash(0)]);
  // Reuse x: it is reactivated (no event), then freed again -> most recently used.
  const x2 = seqOf(range(1, 4));
  const before = r.events.length;
  kv.tryGrow(x2, x2, 4);
  assert.equal(r.events.length, before);
  kv.free(x2);
  assert.deepEqual(kv.inactiveLru(), [y.seqHash(0), z.seqHash(0), x.seqHash(0)]);
  // A new block evicts y (LRU).
  const w = seqOf(range(31, 4));
  kv.tryGrow(w, w, 4);
  const last2 = r.events.slice(-2).map((e) => e.data);
  assert.deepEqual(last2[0], { type: 'removed', blockHashes: [y.seqHash(0)] });
  assert.equal(last2[1]!.type, 'stored');
  assert.equal(kv.has(y.seqHash(0)), false);
  assert.equal(kv.cachedBlockCount(), 3);
});

test('tryGrow refuses (and changes nothing) when active blocks would exceed capacity', () => {
  const r = recorder();
  const kv = new KvBlockManager({ numGpuBlocks: 2, blockSize: BS, emit: r.emit });
  const a = seqOf(range(1, 8));
  assert.equal(kv.tryGrow(a, a, 8), true);
  const b = seqOf(range(50, 4));
  assert.equal(kv.tryGrow(b, b, 1), false);
  assert.equal(kv.usedBlocks(), 2);
  assert.equal(r.events.length, 1);
  assert.deepEqual(b.held, []);
  assert.equal(b.partial, false);
});

// ------------------------------------------------------------------ random workloads

interface Workload {
  blockSize: number;
  numGpuBlocks: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  preemptionMode: 'lifo' | 'fifo';
  requests: { at: number; prefix: number; prefixLen: number; suffix: number[]; maxTokens: number; abortAfter: number | null }[];
}

const workloadArb: fc.Arbitrary<Workload> = fc.record({
  blockSize: fc.integer({ min: 1, max: 6 }),
  numGpuBlocks: fc.integer({ min: 12, max: 60 }),
  maxNumSeqs: fc.integer({ min: 1, max: 6 }),
  maxNumBatchedTokens: fc.integer({ min: 4, max: 48 }),
  preemptionMode: fc.constantFrom('lifo' as const, 'fifo' as const),
  requests: fc.array(
    fc.record({
      at: fc.integer({ min: 0, max: 400 }),
      prefix: fc.integer({ min: 0, max: 2 }),
      prefixLen: fc.integer({ min: 0, max: 24 }),
      suffix: fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 20 }),
      maxTokens: fc.integer({ min: 1, max: 12 }),
      abortAfter: fc.option(fc.integer({ min: 0, max: 200 }), { freq: 4 }),
    }),
    { minLength: 1, maxLength: 25 },
  ),
});

/** Run a workload in virtual time, mirroring KV events into a plain map and a RadixIndexer. */
function runWorkload(w: Workload) {
  const clock = new VirtualClock();
  const engine = new SimEngine(
    {
      id: 'w0',
      blockSize: w.blockSize,
      numGpuBlocks: w.numGpuBlocks,
      maxNumSeqs: w.maxNumSeqs,
      maxNumBatchedTokens: w.maxNumBatchedTokens,
      preemptionMode: w.preemptionMode,
      seed: 7,
    },
    clock,
  );
  const mirror = new Set<bigint>();
  const radix = new RadixIndexer();
  const slot = radix.ensureSlot('w0', 0);
  const events: RouterEvent[] = [];
  const problems: string[] = [];
  engine.onKvEvent((ev, tokenIds) => {
    if (ev.eventId !== events.length) problems.push(`event id ${ev.eventId} != ${events.length}`);
    events.push(ev);
    const d = ev.data;
    if (d.type === 'stored') {
      if (d.parentHash !== null && !mirror.has(d.parentHash)) problems.push('stored with unknown parent');
      if (tokenIds?.length !== d.blocks.length * w.blockSize) problems.push('stored token ids length');
      for (const b of d.blocks) {
        if (mirror.has(b.blockHash)) problems.push('stored a block already cached');
        mirror.add(b.blockHash);
      }
    } else if (d.type === 'removed') {
      for (const h of d.blockHashes) if (!mirror.delete(h)) problems.push('removed an unknown block');
    } else mirror.clear();
    const res = radix.applyEvent(ev);
    if (res.status !== 'ok') problems.push(`radix: ${res.status} ${res.detail ?? ''}`);
    const st = engine.stats();
    if (st.usedBlocks + st.inactiveBlocks > w.numGpuBlocks) problems.push('capacity exceeded');
  });
  const prefixes = [0, 1, 2].map((p) => Array.from({ length: 24 }, (_, i) => 500 + p * 100 + i));
  const results = new Map<string, EngineResult[]>();
  const prompts: number[][] = [];
  w.requests.forEach((r, i) => {
    const tokens = [...prefixes[r.prefix]!.slice(0, r.prefixLen), ...r.suffix];
    if (tokens.length === 0) tokens.push(1);
    if (tokens.length + r.maxTokens - 1 > w.numGpuBlocks * w.blockSize) return;
    prompts.push(tokens);
    const id = `r${i}`;
    results.set(id, []);
    clock.schedule(r.at, () => {
      engine.submit({ requestId: id, tokens, maxTokens: r.maxTokens, onDone: (res) => results.get(id)!.push(res) });
      if (r.abortAfter !== null) clock.schedule(r.at + r.abortAfter, () => engine.abort(id));
    });
  });
  clock.runUntilIdle(2_000_000);
  return { engine, clock, mirror, radix, slot, events, problems, results, prompts };
}

test('random workloads: no leaked blocks, every request ends once, events reproduce the cache exactly', () => {
  fc.assert(
    fc.property(workloadArb, (w) => {
      const { engine, clock, mirror, radix, slot, problems, results, prompts } = runWorkload(w);
      assert.deepEqual(problems, []);
      assert.equal(clock.pending, 0, 'the loop went idle');
      assert.ok(engine.isIdle());
      const st = engine.stats();
      assert.equal(st.usedBlocks, 0, 'no active or partial block after all requests ended');
      assert.equal(st.running + st.waiting, 0);
      for (const [id, rs] of results) {
        assert.equal(rs.length, 1, `${id} finished exactly once`);
        const r = rs[0]!;
        if (r.status === 'finished') assert.equal(r.completionTokens, w.requests[Number(id.slice(1))]!.maxTokens);
      }
      // The events replayed into a fresh index reproduce the worker's cache exactly.
      const cached = new Set(engine.kv.cachedHashes());
      assert.equal(mirror.size, cached.size);
      for (const h of cached) assert.ok(mirror.has(h));
      assert.equal(radix.blockCount(slot), engine.cachedBlockCount());
      // And the router's prefix match agrees with the worker's own prefix match.
      for (const p of prompts) {
        const local = computeBlockHashes(p, w.blockSize);
        const overlap = radix.findMatchesPairs(toPairs(local), local.length)[slot] ?? 0;
        const own = engine.kv.prefixMatch(sourceOf(p, w.blockSize), local.length);
        assert.equal(overlap, own);
      }
    }),
    { numRuns: 150, seed: 20260821 },
  );
});

test('random workloads exercise preemption and eviction (the property test is not vacuous)', () => {
  let preemptions = 0;
  let evictions = 0;
  let hits = 0;
  fc.assert(
    fc.property(workloadArb, (w) => {
      const { engine } = runWorkload(w);
      const st = engine.stats();
      preemptions += st.preemptions;
      evictions += st.evictions;
      hits += st.prefixHitTokens;
    }),
    { numRuns: 60, seed: 42 },
  );
  assert.ok(preemptions > 0, 'some preemptions happened');
  assert.ok(evictions > 0, 'some evictions happened');
  assert.ok(hits > 0, 'some prefix cache hits happened');
});
