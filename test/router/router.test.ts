import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KvRouter,
  NoEligibleWorkersError,
  candidateCost,
  computeBlockHashes,
  computeSequenceHashes,
  configFromFlags,
  selectByCost,
  Rng,
  DEFAULT_KV_ROUTER_CONFIG,
  type CostParams,
  type RouterEvent,
} from '../../src/router/index.js';

const BS = 4;

function tokens(n: number, start = 1): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

/** A Stored event for the full blocks of `toks` as the mocker would emit it (seq hash as block_hash). */
function storedFor(workerId: string, toks: number[], eventId: number, dpRank = 0): RouterEvent {
  const local = computeBlockHashes(toks, BS);
  const seq = computeSequenceHashes(local);
  return {
    workerId,
    dpRank,
    eventId,
    data: { type: 'stored', parentHash: null, blocks: local.map((l, i) => ({ blockHash: seq[i]!, tokensHash: l })) },
  };
}

test('worked example from router-design: costs 18 / 10 / 11, the 10 wins', () => {
  const p: CostParams = {
    blockSize: 16,
    isl: 160,
    overlapScoreCredit: 1,
    overlapScoreCreditDecay: 0,
    prefillLoadScale: 1,
    decodeActiveRequestWeight: 0,
    trackPrefillTokens: true,
  };
  // prefill 10 blocks (active 0 + isl 160 tokens), decode blocks as given.
  const cases = [
    { overlapBlocks: 2, activeBlocks: 10 },
    { overlapBlocks: 5, activeBlocks: 5 },
    { overlapBlocks: 8, activeBlocks: 9 },
  ];
  const costs = cases.map(
    (c) =>
      candidateCost(
        p,
        { overlapBlocks: c.overlapBlocks, activePrefillTokens: 0, activeBlocks: c.activeBlocks, newBlocks: 0, activeRequests: 0 },
        0,
      ).cost,
  );
  assert.deepEqual(costs, [18, 10, 11]);
  assert.equal(selectByCost(costs, 0, new Rng(1)), 1);
});

test('configFromFlags: defaults and legacy weight mapping', () => {
  assert.deepEqual(configFromFlags({}), { ...DEFAULT_KV_ROUTER_CONFIG });
  const w2 = configFromFlags({ kvOverlapScoreWeight: 2 });
  assert.equal(w2.prefillLoadScale, 2);
  assert.equal(w2.overlapScoreCredit, 1);
  const w0 = configFromFlags({ kvOverlapScoreWeight: 0 });
  assert.equal(w0.prefillLoadScale, 0);
  assert.equal(w0.overlapScoreCredit, 0);
  const la = configFromFlags({ loadAware: true });
  assert.equal(la.overlapScoreCredit, 0);
  assert.equal(la.useKvEvents, false);
  assert.equal(la.assumeKvReuse, false);
  assert.equal(configFromFlags({ ttlSecs: 5 }).ttlMs, 5000);
  assert.equal(configFromFlags({ routerTemperature: 0.5 }).temperature, 0.5);
  assert.throws(() => configFromFlags({ temperature: -1 }), RangeError);
});

test('kv route prefers the worker holding the prefix and books the request', () => {
  const r = new KvRouter({ blockSize: BS, seed: 7 });
  r.addWorker('a');
  r.addWorker('b');
  const prompt = tokens(40); // 10 blocks
  assert.equal(r.applyEvent(storedFor('b', prompt.slice(0, 32), 0)).status, 'ok'); // 8 blocks on b
  const d = r.route({ requestId: 'r1', tokens: prompt, nowMs: 0 });
  assert.equal(d.chosen, 'b');
  assert.equal(d.overlap_blocks, 8);
  assert.equal(d.cached_tokens, 32);
  assert.equal(d.isl_tokens, 40);
  for (const w of d.workers) {
    const expect = 1 * Math.max(0, w.potential_prefill_blocks - 1 * w.overlap_blocks) + w.potential_decode_blocks;
    assert.equal(w.cost, expect);
  }
  const wb = d.workers.find((w) => w.id === 'b')!;
  assert.equal(wb.potential_prefill_blocks, 10);
  assert.equal(wb.cost, 2 + 10);
  const snap = r.snapshot().workers.find((w) => w.id === 'b')!;
  assert.equal(snap.cached_blocks, 8);
  assert.equal(snap.active_blocks, 10);
  assert.equal(snap.active_prefill_tokens, 8);
  assert.equal(snap.active_requests, 1);
  // Second identical request: active blocks dedup, so b's new blocks are 0.
  const d2 = r.route({ requestId: 'r2', tokens: prompt, nowMs: 1 });
  const b2 = d2.workers.find((w) => w.id === 'b')!;
  assert.equal(b2.potential_decode_blocks, 10);
  assert.equal(b2.active_prefill_tokens, 8);
  r.markPrefillCompleted('r1', 2);
  r.free('r2', 3);
  const s2 = r.snapshot().workers.find((w) => w.id === d2.chosen)!;
  assert.ok(s2.active_requests <= 1);
  r.free('r1', 4);
  for (const w of r.snapshot().workers) {
    assert.equal(w.active_blocks, 0);
    assert.equal(w.active_prefill_tokens, 0);
    assert.equal(w.active_requests, 0);
  }
});

test('round-robin cycles and still reports overlaps', () => {
  const r = new KvRouter({ blockSize: BS, mode: 'round-robin' });
  for (const w of ['a', 'b', 'c']) r.addWorker(w);
  r.applyEvent(storedFor('c', tokens(8), 0));
  const chosen = [0, 1, 2, 3].map((i) => r.route({ requestId: `q${i}`, tokens: tokens(8), nowMs: i }));
  assert.deepEqual(
    chosen.map((d) => d.chosen),
    ['a', 'b', 'c', 'a'],
  );
  assert.equal(chosen[0]!.workers.find((w) => w.id === 'c')!.overlap_blocks, 2);
});

test('no workers -> NoEligibleWorkersError; allowedWorkers filters', () => {
  const r = new KvRouter({ blockSize: BS });
  assert.throws(() => r.route({ requestId: 'x', tokens: tokens(8), nowMs: 0 }), NoEligibleWorkersError);
  r.addWorker('a');
  r.addWorker('b');
  r.applyEvent(storedFor('a', tokens(8), 0));
  const d = r.route({ requestId: 'x', tokens: tokens(8), nowMs: 0, allowedWorkers: ['b'] });
  assert.equal(d.chosen, 'b');
  assert.equal(d.workers.length, 1);
  assert.throws(() => r.route({ requestId: 'y', tokens: tokens(8), nowMs: 0, allowedWorkers: ['zzz'] }), NoEligibleWorkersError);
});

test('dp ranks are separate candidates; removeWorker drops all', () => {
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('a', 2);
  r.addWorker('b');
  assert.deepEqual(r.workers(), [
    { workerId: 'a', dpRank: 0 },
    { workerId: 'a', dpRank: 1 },
    { workerId: 'b', dpRank: 0 },
  ]);
  r.applyEvent(storedFor('a', tokens(16), 0, 1));
  const d = r.route({ requestId: 'x', tokens: tokens(16), nowMs: 0 });
  assert.equal(d.chosen, 'a');
  assert.equal(d.chosen_dp_rank, 1);
  r.removeWorker('a');
  assert.deepEqual(r.workers(), [{ workerId: 'b', dpRank: 0 }]);
  assert.equal(r.stats().indexed_blocks, 0);
  assert.equal(r.stats().active_requests, 0);
  assert.equal(r.applyEvent(storedFor('a', tokens(16), 1, 1)).status, 'unknown_worker');
});

test('event id gap is reported per (worker, dp_rank)', () => {
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('a', 2);
  assert.equal(r.applyEvent(storedFor('a', tokens(4), 0)).gap, undefined);
  assert.equal(r.applyEvent(storedFor('a', tokens(4, 100), 1)).gap, undefined);
  assert.equal(r.applyEvent(storedFor('a', tokens(4, 200), 0, 1)).gap, undefined);
  assert.deepEqual(r.applyEvent(storedFor('a', tokens(4, 300), 5)).gap, { expected: 2, got: 5 });
  assert.equal(r.applyEvent(storedFor('a', tokens(4, 400), 6)).gap, undefined);
});

test('approximate mode inserts the decision with a TTL in 100 ms buckets', () => {
  const r = new KvRouter({ blockSize: BS, config: { useKvEvents: false, ttlMs: 1000 } });
  r.addWorker('a');
  r.addWorker('b');
  assert.equal(r.applyEvent(storedFor('a', tokens(8), 0)).status, 'ignored');
  const d1 = r.route({ requestId: 'x', tokens: tokens(16), nowMs: 10 });
  r.free('x', 20);
  const d2 = r.route({ requestId: 'y', tokens: tokens(16), nowMs: 30 });
  assert.equal(d2.chosen, d1.chosen);
  assert.equal(d2.overlap_blocks, 4);
  r.free('y', 40);
  // Inserted at 10 and refreshed at 30: expiry ceil(1030/100)*100 = 1100.
  assert.equal(r.expire(1099).expiredBlocks, 0);
  assert.equal(r.overlaps(tokens(16)).find((w) => w.workerId === d1.chosen)!.overlap_blocks, 4);
  assert.equal(r.expire(1100).expiredBlocks, 4);
  assert.ok(r.overlaps(tokens(16)).every((w) => w.overlap_blocks === 0));
});

test('active requests are force-expired after 300 s', () => {
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('a');
  r.route({ requestId: 'old', tokens: tokens(8), nowMs: 0 });
  r.route({ requestId: 'new', tokens: tokens(8, 50), nowMs: 200_000 });
  assert.deepEqual(r.expire(300_000).expiredRequests, []);
  assert.deepEqual(r.expire(300_001).expiredRequests, ['old']);
  assert.equal(r.snapshot().workers[0]!.active_requests, 1);
});

test('temperature > 0 samples; the same seed gives the same choices', () => {
  const mk = () => {
    const r = new KvRouter({ blockSize: BS, seed: 42, config: { temperature: 1 } });
    for (const w of ['a', 'b', 'c', 'd']) r.addWorker(w);
    return r;
  };
  const r1 = mk();
  const r2 = mk();
  const c1: string[] = [];
  const c2: string[] = [];
  for (let i = 0; i < 40; i++) {
    c1.push(r1.route({ requestId: `x${i}`, tokens: tokens(8, i * 10), nowMs: i }).chosen);
    c2.push(r2.route({ requestId: `x${i}`, tokens: tokens(8, i * 10), nowMs: i }).chosen);
  }
  assert.deepEqual(c1, c2);
  assert.ok(new Set(c1).size > 1);
});

test('per-request overrides change the cost and are echoed', () => {
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('a');
  r.applyEvent(storedFor('a', tokens(16), 0));
  const d = r.route({ requestId: 'x', tokens: tokens(16), nowMs: 0, overrides: { overlapScoreCredit: 0, prefillLoadScale: 2 } });
  assert.deepEqual(d.config, { overlap_score_credit: 0, prefill_load_scale: 2, temperature: 0 });
  assert.equal(d.workers[0]!.cost, 2 * 4 + 4);
});
