/**
 * Router core: `direct` and `device-aware-weighted` modes, and host / disk tier overlap credits
 * from KV events that carry a storage tier (Dynamo-native storage_tier, vLLM medium).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from '@msgpack/msgpack';
import {
  DirectTargetError,
  KvRouter,
  Rng,
  candidateCost,
  computeBlockHashes,
  computeSequenceHashes,
  decodeVllmZmqBatch,
  parsePolicyConfig,
  selectDeviceAware,
  type CandidateInput,
  type RouterEvent,
  type StorageTier,
} from '../../src/router/index.js';

const BS = 4;
const toks = (n: number, start = 1) => Array.from({ length: n }, (_, i) => start + i);

/** Stored events for blocks [from, to) of `prompt`, the parent being block from-1 (as engines chain them). */
function stored(workerId: string, prompt: number[], from: number, to: number, eventId: number, tier?: StorageTier): RouterEvent {
  const local = computeBlockHashes(prompt, BS);
  const seq = computeSequenceHashes(local);
  return {
    workerId,
    dpRank: 0,
    eventId,
    ...(tier ? { storageTier: tier } : {}),
    data: {
      type: 'stored',
      parentHash: from === 0 ? null : seq[from - 1]!,
      blocks: local.slice(from, to).map((l, i) => ({ blockHash: seq[from + i]!, tokensHash: l })),
    },
  };
}

function seqHashes(prompt: number[]): bigint[] {
  return computeSequenceHashes(computeBlockHashes(prompt, BS));
}

// ------------------------------------------------------------------------------------------
// direct
// ------------------------------------------------------------------------------------------

test('direct: the named worker takes the request even when kv would pick another; load booked, all costs shown', () => {
  const r = new KvRouter({ blockSize: BS, mode: 'direct', seed: 3 });
  for (const w of ['a', 'b', 'c']) r.addWorker(w);
  const prompt = toks(32);
  r.applyEvent(stored('b', prompt, 0, 8, 0));
  const d = r.route({ requestId: 'q1', tokens: prompt, nowMs: 0, target: { workerId: 'c' } });
  assert.equal(d.mode, 'direct');
  assert.equal(d.chosen, 'c');
  assert.equal(d.workers.length, 3);
  const costs = Object.fromEntries(d.workers.map((w) => [w.id, w.cost]));
  assert.ok(costs.b! < costs.c!, 'kv would have picked b');
  const snap = r.snapshot().workers.find((w) => w.id === 'c')!;
  assert.equal(snap.active_requests, 1);
  assert.equal(snap.active_prefill_tokens, 32);
  r.free('q1', 1);
  assert.equal(r.snapshot().workers.find((w) => w.id === 'c')!.active_requests, 0);
});

test('direct: no target and an unknown target throw DirectTargetError; a dp rank is honoured', () => {
  const r = new KvRouter({ blockSize: BS, mode: 'direct' });
  r.addWorker('a', 2);
  r.addWorker('b');
  assert.throws(
    () => r.route({ requestId: 'x', tokens: toks(8), nowMs: 0 }),
    (e: unknown) => e instanceof DirectTargetError && e.reason === 'missing',
  );
  assert.throws(
    () => r.route({ requestId: 'y', tokens: toks(8), nowMs: 0, target: { workerId: 'zz' } }),
    (e: unknown) => e instanceof DirectTargetError && e.reason === 'unknown' && /zz/.test(e.message),
  );
  assert.throws(
    () => r.route({ requestId: 'z', tokens: toks(8), nowMs: 0, target: { workerId: 'b', dpRank: 1 } }),
    (e: unknown) => e instanceof DirectTargetError && e.reason === 'unknown',
  );
  // Nothing was booked by the failed attempts.
  for (const w of r.snapshot().workers) assert.equal(w.active_requests, 0);
  const d = r.route({ requestId: 'w', tokens: toks(8), nowMs: 0, target: { workerId: 'a', dpRank: 1 } });
  assert.deepEqual([d.chosen, d.chosen_dp_rank], ['a', 1]);
  // Without a rank: the cheaper rank of a (rank 1 is now loaded, so rank 0).
  const d2 = r.route({ requestId: 'v', tokens: toks(8, 100), nowMs: 0, target: { workerId: 'a' } });
  assert.deepEqual([d2.chosen, d2.chosen_dp_rank], ['a', 0]);
});

// ------------------------------------------------------------------------------------------
// device-aware-weighted
// ------------------------------------------------------------------------------------------

function load(activeRequests: number): CandidateInput {
  return { overlapBlocks: 0, activePrefillTokens: 0, activeBlocks: 0, newBlocks: 0, activeRequests };
}

test('device-aware: CPU budget floor(nonCpuInflight * cpuCount / (ratio * nonCpuCount)), least in-flight within the class', () => {
  const rng = new Rng(1);
  // 2 GPU, 1 CPU, ratio 8: budget floor(16 * 1 / 16) = 1 > 0 CPU in flight -> the CPU worker.
  assert.equal(selectDeviceAware([load(8), load(8), load(0)], [false, false, true], 8, rng), 2);
  // Budget floor(15 / 16) = 0: the least loaded GPU.
  assert.equal(selectDeviceAware([load(8), load(7), load(0)], [false, false, true], 8, rng), 1);
  // CPU already at its budget.
  assert.equal(selectDeviceAware([load(8), load(9), load(1)], [false, false, true], 8, rng), 0);
  // One class only: plain least in-flight.
  assert.equal(selectDeviceAware([load(3), load(1), load(2)], [true, true, true], 8, rng), 1);
  assert.equal(selectDeviceAware([load(3), load(1), load(2)], [false, false, false], 8, rng), 1);
  // Ratio 1: CPU workers count as much as GPU ones.
  assert.equal(selectDeviceAware([load(1), load(0)], [false, true], 1, rng), 1);
});

test('device-aware-weighted route: 8 requests to the GPU worker per CPU request (ratio 8), in-flight counted', () => {
  const r = new KvRouter({ blockSize: BS, mode: 'device-aware-weighted', seed: 5 });
  r.addWorker('gpu');
  r.addWorker('cpu');
  r.setWorkerDevice('cpu', 'cpu');
  const chosen: string[] = [];
  for (let i = 0; i < 18; i++) chosen.push(r.route({ requestId: `r${i}`, tokens: toks(8, i * 10), nowMs: i }).chosen);
  const expected = [...Array(8).fill('gpu'), 'cpu', ...Array(8).fill('gpu'), 'cpu'];
  assert.deepEqual(chosen, expected);
  // A smaller ratio sends more to the CPU worker.
  const r2 = new KvRouter({ blockSize: BS, mode: 'device-aware-weighted', nonCpuToCpuRatio: 2 });
  r2.addWorker('gpu');
  r2.addWorker('cpu');
  r2.setWorkerDevice('cpu', 'cpu');
  const c2 = Array.from({ length: 6 }, (_, i) => r2.route({ requestId: `s${i}`, tokens: toks(8), nowMs: 0 }).chosen);
  assert.deepEqual(c2, ['gpu', 'gpu', 'cpu', 'gpu', 'gpu', 'cpu']);
  assert.throws(() => new KvRouter({ blockSize: BS, nonCpuToCpuRatio: 0 }), RangeError);
  assert.throws(() => r.setWorkerDevice('gpu', 'tpu' as never), RangeError);
});

// ------------------------------------------------------------------------------------------
// Lower storage tiers
// ------------------------------------------------------------------------------------------

test('tiers: host blocks continuing the device overlap earn host_cache_hit_weight and change the choice', () => {
  const prompt = toks(32); // 8 blocks
  const r = new KvRouter({ blockSize: BS, seed: 1 });
  r.addWorker('a');
  r.addWorker('b');
  r.applyEvent(stored('a', prompt, 0, 4, 0)); // a: device 0..3
  r.applyEvent(stored('a', prompt, 4, 8, 1, 'host_pinned')); // a: host 4..7, parent = device block 3
  r.applyEvent(stored('b', prompt, 0, 6, 0)); // b: device 0..5
  const d = r.route({ requestId: 'q', tokens: prompt, nowMs: 0 });
  const a = d.workers.find((w) => w.id === 'a')!;
  const b = d.workers.find((w) => w.id === 'b')!;
  assert.deepEqual([a.overlap_blocks, a.host_overlap_blocks, a.disk_overlap_blocks], [4, 4, 0]);
  assert.deepEqual([b.overlap_blocks, b.host_overlap_blocks, b.disk_overlap_blocks], [6, 0, 0]);
  // a: prefill 8 - (4 + 0.75 * 4) = 1, decode 8 -> 9; b: 8 - 6 = 2, decode 8 -> 10.
  assert.equal(a.cost, 9);
  assert.equal(b.cost, 10);
  assert.equal(d.chosen, 'a');
  // The booking and the predicted hit stay device-only (32 - 16 prefill tokens).
  assert.equal(d.cached_tokens, 16);
  assert.equal(r.snapshot().workers.find((w) => w.id === 'a')!.active_prefill_tokens, 16);
});

test('tiers: disk continues where host stops, external folds into disk, root entries without a device match', () => {
  const prompt = toks(40); // 10 blocks
  const r = new KvRouter({ blockSize: BS, config: { hostCacheHitWeight: 0.5, diskCacheHitWeight: 0.25 } });
  for (const w of ['a', 'c', 'e']) r.addWorker(w);
  r.applyEvent(stored('a', prompt, 0, 2, 0));
  r.applyEvent(stored('a', prompt, 2, 4, 1, 'host_pinned'));
  r.applyEvent(stored('a', prompt, 4, 6, 2, 'disk'));
  r.applyEvent(stored('a', prompt, 6, 7, 3, 'external'));
  // c: nothing on the device, the first 3 blocks in host memory (a root entry).
  r.applyEvent(stored('c', prompt, 0, 3, 0, 'host_pinned'));
  // e: disk blocks that do not start where its (empty) device / host match ends: no credit.
  r.applyEvent(stored('e', prompt, 5, 8, 0, 'disk'));
  const d = r.route({ requestId: 'q', tokens: prompt, nowMs: 0 });
  const by = Object.fromEntries(d.workers.map((w) => [w.id, w]));
  assert.deepEqual([by.a!.overlap_blocks, by.a!.host_overlap_blocks, by.a!.disk_overlap_blocks], [2, 2, 3]);
  assert.deepEqual([by.c!.overlap_blocks, by.c!.host_overlap_blocks, by.c!.disk_overlap_blocks], [0, 3, 0]);
  assert.deepEqual([by.e!.overlap_blocks, by.e!.host_overlap_blocks, by.e!.disk_overlap_blocks], [0, 0, 0]);
  // a: 10 - (2 + 0.5 * 2 + 0.25 * 3) = 6.25 (+ decode 10).
  assert.equal(by.a!.cost, 16.25);
  assert.equal(by.c!.cost, 10 - 1.5 + 10);
});

test('tiers: removed / cleared lower-tier blocks stop earning credit; a worker reset drops them', () => {
  const prompt = toks(16); // 4 blocks
  const seq = seqHashes(prompt);
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('a');
  r.addWorker('b');
  r.applyEvent(stored('a', prompt, 0, 2, 0));
  r.applyEvent(stored('a', prompt, 2, 4, 1, 'host_pinned'));
  const host = () =>
    r.route({ requestId: `q${Math.random()}`, tokens: prompt, nowMs: 0 }).workers.find((w) => w.id === 'a')!.host_overlap_blocks;
  assert.equal(host(), 2);
  // Removing the 4th block leaves a 1-block host continuation.
  r.applyEvent({ workerId: 'a', dpRank: 0, eventId: 2, storageTier: 'host_pinned', data: { type: 'removed', blockHashes: [seq[3]!] } });
  assert.equal(host(), 1);
  // A device Removed does not touch the host tier; a host Cleared does.
  r.applyEvent({ workerId: 'a', dpRank: 0, eventId: 3, storageTier: 'host_pinned', data: { type: 'cleared' } });
  assert.equal(host(), undefined, 'no lower tier holds anything: the device-only path (no tier fields)');
  r.applyEvent(stored('a', prompt, 2, 4, 4, 'host_pinned'));
  assert.equal(host(), 2);
  r.resetWorkerCache('a');
  assert.equal(r.indexer.hasLowerTiers, false);
  r.applyEvent(stored('a', prompt, 0, 4, 5, 'host_pinned'));
  r.removeWorker('a');
  assert.equal(r.indexer.hasLowerTiers, false);
});

test('tiers: a conflicting child for the same (parent, block) keeps the first mapping', () => {
  const prompt = toks(12);
  const local = computeBlockHashes(prompt, BS);
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('a');
  r.addWorker('b');
  r.applyEvent(stored('a', prompt, 0, 3, 0, 'host_pinned'));
  // b claims the same root edge under another engine hash: rejected, so b earns nothing.
  r.applyEvent({
    workerId: 'b',
    dpRank: 0,
    eventId: 0,
    storageTier: 'host_pinned',
    data: { type: 'stored', parentHash: null, blocks: [{ blockHash: 999n, tokensHash: local[0]! }] },
  });
  const d = r.route({ requestId: 'q', tokens: prompt, nowMs: 0 });
  assert.deepEqual(
    d.workers.map((w) => [w.id, w.host_overlap_blocks]),
    [
      ['a', 3],
      ['b', 0],
    ],
  );
});

test('tiers: with no tier data the cost is exactly the device-only cost (and host/disk 0 add nothing)', () => {
  const p = {
    blockSize: 16,
    isl: 160,
    overlapScoreCredit: 1,
    overlapScoreCreditDecay: 0.3,
    prefillLoadScale: 1.7,
    decodeActiveRequestWeight: 0.1,
    trackPrefillTokens: true,
  };
  const c: CandidateInput = { overlapBlocks: 3, activePrefillTokens: 77, activeBlocks: 5, newBlocks: 4, activeRequests: 2 };
  const base = candidateCost(p, c, 11).cost;
  assert.equal(
    candidateCost({ ...p, hostCacheHitWeight: 0.75, diskCacheHitWeight: 0.25 }, { ...c, hostBlocks: 0, diskBlocks: 0 }, 11).cost,
    base,
  );
  assert.equal(
    candidateCost({ ...p, hostCacheHitWeight: 0.75, diskCacheHitWeight: 0.25 }, { ...c, hostBlocks: 2, diskBlocks: 4 }, 11).cost,
    1.7 * Math.max(0, (77 + 160) / 16 - (1 / (1 + (0.3 * (66 / 16)) / 10)) * 3 - 0.75 * 2 - 0.25 * 4) + 9 + 0.2,
  );
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('a');
  r.applyEvent(stored('a', toks(16), 0, 4, 0));
  const w = r.route({ requestId: 'q', tokens: toks(16), nowMs: 0 }).workers[0]!;
  assert.equal('host_overlap_blocks' in w, false);
});

test('tiers: vLLM BlockStored with medium CPU reaches the host tier through the ZMQ decoder', () => {
  const prompt = toks(16);
  const seq = seqHashes(prompt);
  const batch = encode(
    [
      1.0,
      [
        {
          type: 'BlockStored',
          block_hashes: seq.slice(0, 2),
          parent_block_hash: null,
          token_ids: prompt.slice(0, 8),
          block_size: BS,
          medium: 'GPU',
        },
        {
          type: 'BlockStored',
          block_hashes: seq.slice(2, 4),
          parent_block_hash: seq[1],
          token_ids: prompt.slice(8, 16),
          block_size: BS,
          medium: 'CPU',
        },
      ],
      0,
    ],
    { useBigInt64: true },
  );
  const dec = decodeVllmZmqBatch(batch, { workerId: 'v', blockSize: BS });
  assert.ok(dec.ok);
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('v');
  for (const ev of dec.events) assert.equal(r.applyEvent(ev).status, 'ok');
  const w = r.route({ requestId: 'q', tokens: prompt, nowMs: 0 }).workers[0]!;
  assert.deepEqual([w.overlap_blocks, w.host_overlap_blocks], [2, 2]);
});

test('policy config: host_cache_hit_weight / disk_cache_hit_weight (Dynamo 1.6 names)', () => {
  assert.deepEqual(parsePolicyConfig('host_cache_hit_weight: 0.5\ndisk_cache_hit_weight: 0.1\n'), {
    hostCacheHitWeight: 0.5,
    diskCacheHitWeight: 0.1,
  });
  assert.throws(() => parsePolicyConfig('host_cache_hit_weight: -1\n'), /host_cache_hit_weight must be a finite number >= 0/);
});
