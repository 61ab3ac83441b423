/**
 * Property tests: the fast indexer / load tracker / router against the naive references in
 * reference.ts, on random event and request streams.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ActiveSequences,
  KvRouter,
  RadixIndexer,
  computeBlockHashes,
  computeSequenceHashes,
  toPairs,
  type KvCacheEventData,
  type RouterEvent,
} from '../../src/router/index.js';
import { RefIndexer, RefLoad } from './reference.js';
import { viaPairs } from '../helpers/events.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 200);

// Block size 1 and a tiny token alphabet: prefixes collide often, which is the interesting case.
const localOf = new Map<number, bigint>();
function local(t: number): bigint {
  let h = localOf.get(t);
  if (h === undefined) localOf.set(t, (h = computeBlockHashes([t], 1)[0]!));
  return h;
}
function localPath(path: number[]): bigint[] {
  return path.map(local);
}
function seqPath(path: number[]): bigint[] {
  return computeSequenceHashes(localPath(path));
}

const WORKERS = ['a', 'b', 'c', 'd'];
const path = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 6 });

/** Realistic events: block_hash = sequence hash of the path, as the mocker / approximate mode. */
const realisticOp = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('store' as const), w: fc.constantFrom(...WORKERS), path, start: fc.nat(5) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('remove' as const), w: fc.constantFrom(...WORKERS), paths: fc.array(path, { maxLength: 3 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), w: fc.constantFrom(...WORKERS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), w: fc.constantFrom(...WORKERS) }) },
);

// biome-ignore lint/suspicious/noExplicitAny: generated op records of several shapes
function realisticData(op: any): KvCacheEventData {
  if (op.kind === 'store') {
    const p: number[] = op.path;
    const start = Math.min(op.start, p.length - 1);
    const seq = seqPath(p);
    const loc = localPath(p);
    return {
      type: 'stored',
      parentHash: start === 0 ? null : seq[start - 1]!,
      blocks: p.slice(start).map((_, i) => ({ blockHash: seq[start + i]!, tokensHash: loc[start + i]! })),
    };
  }
  if (op.kind === 'remove') return { type: 'removed', blockHashes: (op.paths as number[][]).map((q) => seqPath(q).at(-1)!) };
  return { type: 'cleared' };
}

/** Adversarial events: block hashes from a tiny domain, unrelated to the path. */
const smallHash = fc.integer({ min: 1, max: 10 }).map(BigInt);
const adversarialOp = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('store' as const),
      w: fc.constantFrom(...WORKERS),
      parent: fc.option(smallHash, { nil: null }),
      blocks: fc.array(fc.record({ blockHash: smallHash, tok: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('remove' as const),
      w: fc.constantFrom(...WORKERS),
      hashes: fc.array(smallHash, { maxLength: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), w: fc.constantFrom(...WORKERS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), w: fc.constantFrom(...WORKERS) }) },
);

function adversarialData(op: any): KvCacheEventData {
  if (op.kind === 'store') {
    return {
      type: 'stored',
      parentHash: op.parent,
      blocks: op.blocks.map((b: { blockHash: bigint; tok: number }) => ({ blockHash: b.blockHash, tokensHash: local(b.tok) })),
    };
  }
  if (op.kind === 'remove') return { type: 'removed', blockHashes: op.hashes };
  return { type: 'cleared' };
}

function checkAgainstReference(
  ops: any[],
  queries: number[][],
  toData: (op: any) => KvCacheEventData,
  manySlots: boolean,
  asPairs = false,
) {
  const fast = new RadixIndexer();
  const ref = new RefIndexer();
  // Optionally push slot ids past 32 so the multi-word bitset path is exercised.
  if (manySlots) for (let i = 0; i < 40; i++) fast.ensureSlot(`pad${i}`, 0);
  for (const w of WORKERS) {
    fast.ensureSlot(w, 0);
    ref.addWorker(w);
  }
  for (const op of ops) {
    if (op.kind === 'drop') {
      fast.removeWorker(op.w);
      ref.removeWorker(op.w);
      fast.ensureSlot(op.w, 0);
      ref.addWorker(op.w);
    } else {
      const data = asPairs ? viaPairs(toData(op)) : toData(op);
      const a = fast.applyData(fast.slotOf(op.w, 0), data).status;
      const b = ref.apply(op.w, data);
      assert.equal(a, b, `status for ${JSON.stringify(op, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    }
    fast.checkInvariants();
    for (const w of WORKERS) assert.equal(fast.blockCount(fast.slotOf(w, 0)), ref.blockCount(w), `block count of ${w}`);
    for (const q of queries) {
      const lp = localPath(q);
      const scores = fast.findMatchesPairs(toPairs(lp), lp.length);
      const expect = ref.findMatches(lp);
      for (const w of WORKERS) assert.equal(scores[fast.slotOf(w, 0)], expect.get(w) ?? 0, `score of ${w} for ${q}`);
    }
  }
  // Half of the indexes hand their memory back (src/router/pool.ts), so later runs build theirs
  // partly from arrays an earlier index filled; the other half leave it to the GC.
  if (queries.length % 2 === 0) fast.dispose();
}

test('indexer == naive reference on realistic event streams', () => {
  fc.assert(
    fc.property(
      fc.array(realisticOp, { maxLength: 40 }),
      fc.array(fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 7 }), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      fc.boolean(),
      (ops, queries, many, asPairs) => checkAgainstReference(ops, queries, realisticData, many, asPairs),
    ),
    { numRuns: RUNS },
  );
});

// Dense variant: two workers, alphabet {1, 2}, short paths: empties, detaches and re-stores are common.
const densePath = fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 1, maxLength: 4 });
const denseOp = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('store' as const), w: fc.constantFrom('a', 'b'), path: densePath, start: fc.nat(3) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('remove' as const),
      w: fc.constantFrom('a', 'b'),
      paths: fc.array(densePath, { minLength: 1, maxLength: 2 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), w: fc.constantFrom('a', 'b') }) },
);

test('indexer == naive reference on dense realistic streams (detach / re-attach paths)', () => {
  fc.assert(
    fc.property(fc.array(denseOp, { maxLength: 40 }), fc.array(densePath, { minLength: 2, maxLength: 4 }), (ops, queries) =>
      checkAgainstReference(ops, queries, realisticData, false, ops.length % 2 === 1),
    ),
    { numRuns: RUNS * 2 },
  );
});

test('indexer == naive reference on adversarial event streams (colliding hashes, bad parents)', () => {
  fc.assert(
    fc.property(
      fc.array(adversarialOp, { maxLength: 40 }),
      fc.array(fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 5 }), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      fc.boolean(),
      (ops, queries, many, asPairs) => checkAgainstReference(ops, queries, adversarialData, many, asPairs),
    ),
    { numRuns: RUNS },
  );
});

test('memory bound: never more than maxIndexedBlocks entries, evictions counted, only under-prediction', () => {
  fc.assert(
    fc.property(fc.array(realisticOp, { maxLength: 60 }), fc.integer({ min: 1, max: 12 }), (ops, max) => {
      const fast = new RadixIndexer({ maxIndexedBlocks: max });
      const full = new RadixIndexer();
      for (const w of WORKERS) {
        fast.ensureSlot(w, 0);
        full.ensureSlot(w, 0);
      }
      let stored = 0;
      for (const op of ops) {
        if (op.kind === 'drop') continue;
        const data = realisticData(op);
        fast.applyData(fast.slotOf(op.w, 0), data);
        full.applyData(full.slotOf(op.w, 0), data);
        if (data.type === 'stored') stored += data.blocks.length;
        assert.ok(fast.indexedBlocks <= max);
        fast.checkInvariants();
        // Each fast entry exists in the unbounded indexer too: eviction never invents blocks.
        for (const w of WORKERS) assert.ok(fast.blockCount(fast.slotOf(w, 0)) <= full.blockCount(full.slotOf(w, 0)));
      }
      if (full.indexedBlocks > max) assert.ok(fast.evictions > 0);
      assert.ok(fast.evictions <= stored);
    }),
    { numRuns: RUNS },
  );
});

// ------------------------------------------------------------------------------------------
// Active load
// ------------------------------------------------------------------------------------------

const loadOp = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      id: fc.integer({ min: 0, max: 8 }),
      w: fc.constantFrom(...WORKERS),
      path: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 6 }),
      prefill: fc.nat(100),
      dt: fc.nat(100_000),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('prefill' as const), id: fc.integer({ min: 0, max: 8 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('free' as const), id: fc.integer({ min: 0, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const), dt: fc.nat(200_000) }) },
);

test('active-load tracker == naive reference (unique blocks, prefill, requests, prefix depth)', () => {
  fc.assert(
    fc.property(
      fc.array(loadOp, { maxLength: 60 }),
      fc.array(fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 7 }), { minLength: 1, maxLength: 5 }),
      (ops, queries) => {
        const fast = new ActiveSequences();
        const ref = new RefLoad();
        const slot = new Map(WORKERS.map((w, i) => [w, i] as const));
        let now = 0;
        for (const op of ops) {
          if (op.kind === 'add') {
            now += op.dt;
            const seq = seqPath(op.path);
            fast.add(`r${op.id}`, slot.get(op.w)!, toPairs(seq), seq.length, op.prefill, now);
            ref.add({ id: `r${op.id}`, worker: op.w, seq, prefill: op.prefill, start: now });
          } else if (op.kind === 'prefill') {
            fast.markPrefillCompleted(`r${op.id}`);
            ref.prefillDone(`r${op.id}`);
          } else if (op.kind === 'free') {
            fast.free(`r${op.id}`);
            ref.free(`r${op.id}`);
          } else {
            now += op.dt;
            assert.deepEqual(fast.expire(now, 300_000).sort(), ref.expire(now, 300_000).sort());
          }
          for (const w of WORKERS) {
            const s = slot.get(w)!;
            assert.equal(fast.activeBlocks(s), ref.activeBlocks(w), `active blocks ${w}`);
            assert.equal(fast.activePrefillTokens(s), ref.prefillTokens(w), `prefill ${w}`);
            assert.equal(fast.activeRequests(s), ref.requests(w), `requests ${w}`);
            for (const q of queries) {
              const seq = seqPath(q);
              const p = toPairs(seq);
              assert.equal(fast.activeDepth(s, p, seq.length), ref.activeDepth(w, seq), `depth ${w} ${q}`);
              assert.equal(fast.activeDepthLinear(s, p, seq.length), ref.activeDepth(w, seq));
            }
          }
        }
      },
    ),
    { numRuns: RUNS },
  );
});

// ------------------------------------------------------------------------------------------
// Router end to end: every decision's numbers recomputed from the references
// ------------------------------------------------------------------------------------------

const routerOp = fc.oneof(
  { weight: 3, arbitrary: realisticOp.filter((o) => o.kind !== 'drop') },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('route' as const),
      id: fc.integer({ min: 0, max: 6 }),
      path: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 6 }),
      extra: fc.nat(3),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('prefill' as const), id: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('free' as const), id: fc.integer({ min: 0, max: 6 }) }) },
);

test('KvRouter kv decisions: costs recomputed from the references, chosen = argmin', () => {
  fc.assert(
    fc.property(fc.array(routerOp, { maxLength: 40 }), fc.integer(), (ops, seed) => {
      const r = new KvRouter({ blockSize: 1, seed });
      const idx = new RefIndexer();
      const load = new RefLoad();
      for (const w of WORKERS) {
        r.addWorker(w);
        idx.addWorker(w);
      }
      let eid = 0;
      for (const op of ops as any[]) {
        if (op.kind === 'route') {
          const tokens = [...op.path, ...new Array(op.extra).fill(9)];
          const lp = localPath(tokens);
          const seq = computeSequenceHashes(lp);
          const d = r.route({ requestId: `r${op.id}`, tokens, nowMs: eid });
          const overlaps = idx.findMatches(lp);
          let min = Infinity;
          for (const ws of d.workers) {
            const ov = overlaps.get(ws.id) ?? 0;
            const ap = load.prefillTokens(ws.id);
            const ab = load.activeBlocks(ws.id);
            const pp = ap + tokens.length;
            const pd = ab + seq.length - load.activeDepth(ws.id, seq);
            assert.equal(ws.overlap_blocks, ov);
            assert.equal(ws.active_prefill_tokens, ap);
            assert.equal(ws.active_blocks, ab);
            assert.equal(ws.potential_prefill_blocks, pp);
            assert.equal(ws.potential_decode_blocks, pd);
            assert.equal(ws.cost, Math.max(0, pp - ov) + pd);
            min = Math.min(min, ws.cost);
          }
          const chosen = d.workers.find((w) => w.id === d.chosen)!;
          assert.equal(chosen.cost, min);
          assert.equal(d.cached_tokens, chosen.overlap_blocks);
          load.add({ id: `r${op.id}`, worker: d.chosen, seq, prefill: tokens.length - chosen.overlap_blocks, start: eid });
        } else if (op.kind === 'prefill') {
          r.markPrefillCompleted(`r${op.id}`, eid);
          load.prefillDone(`r${op.id}`);
        } else if (op.kind === 'free') {
          r.free(`r${op.id}`, eid);
          load.free(`r${op.id}`);
        } else {
          const data = realisticData(op);
          const ev: RouterEvent = { workerId: op.w, dpRank: 0, eventId: eid, data };
          r.applyEvent(ev);
          idx.apply(op.w, data);
        }
        eid++;
      }
    }),
    { numRuns: RUNS },
  );
});
