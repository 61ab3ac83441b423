import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvRouter, configFromFlags } from '../../src/router/index.js';

const BS = 4;
const prompt = (n: number, start: number) => Array.from({ length: n * BS }, (_, i) => start + i);

function overlapOn(r: KvRouter, toks: number[], worker: string): number {
  return r.overlaps(toks).find((w) => w.workerId === worker)!.overlap_blocks;
}

/**
 * 8 prompts x 64 blocks (512 blocks) on worker `a`, each routed 2,000 times in turn (1,024,000
 * stores, one per ms from t = 1): returns the last time and the most records `held()` reported.
 */
function routeRepeatedly(r: KvRouter, held: () => number): { prompts: number[][]; t: number; most: number } {
  const prompts = Array.from({ length: 8 }, (_, k) => prompt(64, 1 + k * 10_000));
  let t = 0;
  let most = 0;
  for (let i = 0; i < 2_000; i++)
    for (const [k, p] of prompts.entries()) {
      t += 1;
      r.route({ requestId: `r${i}.${k}`, tokens: p, nowMs: t });
      r.free(`r${i}.${k}`, t);
      most = Math.max(most, held());
    }
  return { prompts, t, most };
}

test('approximate ttl: routed blocks expire ttl after the last routing (time passed in, no sleeps)', () => {
  const r = new KvRouter({ blockSize: BS, config: configFromFlags({ useKvEvents: false }) });
  assert.equal(r.config.ttlMs, 120_000, "Dynamo's --router-ttl-secs default");
  assert.equal(r.config.approximateCachePolicy, 'ttl');
  r.addWorker('a');
  r.addWorker('b');
  const p = prompt(6, 1);
  const d0 = r.route({ requestId: 'r0', tokens: p, nowMs: 0 });
  r.free('r0', 10);
  const d1 = r.route({ requestId: 'r1', tokens: p, nowMs: 60_000 });
  assert.equal(d1.chosen, d0.chosen);
  assert.equal(d1.overlap_blocks, 6, 'the first routing was recorded');
  r.free('r1', 60_010);
  // r1 refreshed the TTL at 60 s: still there at 170 s, gone after 180 s (+ 100 ms bucket).
  const probe = (t: number) => {
    const d = r.route({ requestId: `p${t}`, tokens: prompt(1, 9_000_000 + t), nowMs: t });
    r.free(`p${t}`, t);
    return d;
  };
  probe(170_000);
  assert.equal(overlapOn(r, p, d0.chosen), 6);
  probe(180_100);
  assert.equal(overlapOn(r, p, d0.chosen), 0, 'expired at the next routing decision');
});

test('approximate ttl: routing the same prefixes again and again keeps the TTL records bounded by the blocks, and the latest routing still sets the expiry', () => {
  const r = new KvRouter({ blockSize: BS, config: configFromFlags({ useKvEvents: false, ttlSecs: 60 }) });
  r.addWorker('a');
  // 1,024,000 stores within the TTL.
  const { prompts, t, most } = routeRepeatedly(r, () => r.indexer.ttlEntries);
  assert.equal(r.indexer.indexedBlocks, 512);
  assert.ok(most <= 65_536 + 64, `TTL records peaked at ${most}`);
  // Every block was last routed at t - 7..t: none expires before t - 7 + 60 s, all by t + 60.1 s.
  assert.equal(r.expire(t - 8 + 60_000).expiredBlocks, 0);
  for (const p of prompts) assert.equal(overlapOn(r, p, 'a'), 64);
  assert.equal(r.expire(t + 60_100).expiredBlocks, 512);
  assert.equal(r.indexer.ttlEntries, 0);
});

test('--router-ttl-secs sets the TTL; expire() runs it without a route', () => {
  const r = new KvRouter({ blockSize: BS, config: configFromFlags({ useKvEvents: false, ttlSecs: 5 }) });
  r.addWorker('a');
  const p = prompt(3, 1);
  r.route({ requestId: 'x', tokens: p, nowMs: 1_000 });
  assert.equal(r.expire(5_900).expiredBlocks, 0);
  assert.equal(overlapOn(r, p, 'a'), 3);
  assert.equal(r.expire(6_000).expiredBlocks, 3);
  assert.equal(overlapOn(r, p, 'a'), 0);
});

test('approximate lru: each worker keeps at most its KV capacity, least recently routed tails go first', () => {
  const r = new KvRouter({
    blockSize: BS,
    config: configFromFlags({ useKvEvents: false, approximateCachePolicy: 'lru', approximateCapacityBlocks: 10 }),
  });
  r.addWorker('a');
  const A = prompt(8, 1);
  const B = prompt(8, 1_000);
  r.route({ requestId: 'a1', tokens: A, nowMs: 0 });
  r.route({ requestId: 'b1', tokens: B, nowMs: 1 });
  assert.equal(overlapOn(r, B, 'a'), 8);
  assert.equal(overlapOn(r, A, 'a'), 2, "A's 6 tail blocks were dropped, its prefix kept");
  assert.equal(r.snapshot().workers[0]!.cached_blocks, 10);
  // No TTL under lru: nothing expires however late.
  r.route({ requestId: 'b2', tokens: B, nowMs: 10_000_000 });
  assert.equal(overlapOn(r, B, 'a'), 8);
  // Routing A again refreshes it, so now B's tail goes.
  r.route({ requestId: 'a2', tokens: A, nowMs: 10_000_001 });
  assert.equal(overlapOn(r, A, 'a'), 8);
  assert.equal(overlapOn(r, B, 'a'), 2);
  // An advertised capacity per worker overrides the default.
  r.setWorkerCapacity('a', 4);
  r.route({ requestId: 'a3', tokens: A, nowMs: 10_000_002 });
  assert.equal(overlapOn(r, A, 'a'), 4);
  assert.throws(() => configFromFlags({ approximateCachePolicy: 'fifo' }), /ttl or lru/);
});

test('approximate lru: routing the same prefixes again and again within the capacity keeps the LRU records bounded by the blocks, and eviction still follows the latest routing', () => {
  const r = new KvRouter({
    blockSize: BS,
    config: configFromFlags({ useKvEvents: false, approximateCachePolicy: 'lru', approximateCapacityBlocks: 100_000 }),
  });
  r.addWorker('a');
  // 512 blocks, well within the capacity.
  const run = routeRepeatedly(r, () => r.indexer.lruEntries);
  const { prompts, most } = run;
  let t = run.t;
  assert.equal(r.indexer.indexedBlocks, 512);
  assert.equal(r.indexer.lruEvictions, 0);
  assert.ok(most <= 65_536 + 64, `LRU records peaked at ${most}`);
  // Route prompt 0 alone until the queue is compacted (the other prompts' records then come only
  // from before it), then shrink the capacity to 3 prompts' worth: the least recently routed
  // prompts (1..5) go, tails first; 6, 7 and 0 stay whole.
  let compacted = false;
  for (let i = 0; i < 3_000 && !compacted; i++) {
    const before = r.indexer.lruEntries;
    r.route({ requestId: `z${i}`, tokens: prompts[0]!, nowMs: ++t });
    r.free(`z${i}`, t);
    compacted = r.indexer.lruEntries < before;
  }
  assert.ok(compacted, 'routing one prompt again and again compacts the queue');
  r.setWorkerCapacity('a', 3 * 64);
  r.route({ requestId: 'shrink', tokens: prompts[0]!, nowMs: ++t });
  for (const k of [6, 7, 0]) assert.equal(overlapOn(r, prompts[k]!, 'a'), 64, `prompt ${k} kept`);
  for (const k of [1, 2, 3, 4, 5]) assert.equal(overlapOn(r, prompts[k]!, 'a'), 0, `prompt ${k} evicted`);
  assert.equal(r.indexer.indexedBlocks, 192);
});
