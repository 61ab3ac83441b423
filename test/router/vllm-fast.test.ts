/**
 * The fast path for vLLM KV-event batches (vllm-fast.ts) against the generic decoder (vllm.ts
 * with `generic: true`): on random batches, clean and not (hashes as i64, u64, small ints,
 * strings or floats; duplicate hashes; token ids out of range; other block sizes, media, cache
 * groups, localities, LoRA names; map events and map batches; trailing bytes), decoding gives
 * the same result, and the fast path takes the clean ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encode } from '@msgpack/msgpack';
import { decodeVllmZmqBatch } from '../../src/router/events/vllm.js';
import { decodeVllmBatchFast } from '../../src/router/events/vllm-fast.js';
import { REMOVED_ORDER, STORED_ORDER } from '../../src/router/events/vllm-fields.js';
import type { DecodeResult } from '../../src/router/events/types.js';

const BS = 4;

/** Everything a DecodeResult says, stored blocks read out as hashes. */
function normalize(r: DecodeResult): unknown {
  if (!r.ok) return r;
  return {
    ...r,
    events: r.events.map((e) => ({
      ...e,
      data: e.data.type === 'stored' ? { type: 'stored', parentHash: e.data.parentHash, blocks: e.data.blocks } : e.data,
    })),
  };
}

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const hashPool = fc.array(u64, { minLength: 1, maxLength: 6 });

/** A hash in one of the forms a worker might send (mostly integers). */
function hashValue(pool: bigint[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...pool) },
    { weight: 2, arbitrary: fc.constantFrom(...pool).map((h) => BigInt.asIntN(64, h)) },
    { weight: 2, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }) },
    { weight: 1, arbitrary: fc.constantFrom('12345', 1.5, null) },
  );
}

function tokenValue(): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 30, arbitrary: fc.integer({ min: 0, max: 150_000 }) },
    { weight: 3, arbitrary: fc.constantFrom(0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1) },
    { weight: 1, arbitrary: fc.constantFrom(-1, 2 ** 32, 2.5, 7n) },
  );
}

const storedArb = (pool: bigint[]) =>
  fc
    .record({
      nBlocks: fc.integer({ min: 0, max: 5 }),
      extraTokens: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1) }),
      parent: fc.oneof(fc.constant(null), fc.constant(undefined), hashValue(pool)),
      blockSize: fc.oneof({ weight: 9, arbitrary: fc.constant(BS) }, { weight: 1, arbitrary: fc.constantFrom(8, '4') }),
      medium: fc.constantFrom(undefined, null, 'GPU', 'gpu', 'cpu_pinned', 'DISK', 'SHARED', 'FLOPPY', 5),
      loraName: fc.constantFrom(undefined, null, '', 'adapter-1', 'é-adapter', 7),
      groupIdx: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(undefined, null, 0) }, { weight: 1, arbitrary: fc.constantFrom(1, '0') }),
      specKind: fc.constantFrom(undefined, undefined, 'full_attention', 'sliding_window', 3),
      locality: fc.constantFrom(undefined, undefined, null, 'local', 'GPU', 'remote', 4),
      tokenSeed: fc.array(tokenValue(), { minLength: 24, maxLength: 24 }),
      hashes: fc.array(hashValue(pool), { minLength: 5, maxLength: 5 }),
      extra: fc.constantFrom(undefined, null, 3, [[1, 'x']]),
    })
    .map((f) => {
      const n = f.nBlocks;
      const tokens = Array.from({ length: Math.max(0, n * BS + f.extraTokens) }, (_, i) => f.tokenSeed[i % f.tokenSeed.length]);
      return {
        type: 'BlockStored',
        block_hashes: f.hashes.slice(0, n),
        parent_block_hash: f.parent,
        token_ids: tokens,
        block_size: f.blockSize,
        lora_id: f.extra,
        medium: f.medium,
        lora_name: f.loraName,
        extra_keys: f.extra,
        group_idx: f.groupIdx,
        kv_cache_spec_kind: f.specKind,
        kv_cache_spec_sliding_window: f.extra,
        locality: f.locality,
      } as Record<string, unknown>;
    });

const removedArb = (pool: bigint[]) =>
  fc.record({
    type: fc.constant('BlockRemoved'),
    block_hashes: fc.array(hashValue(pool), { maxLength: 4 }),
    medium: fc.constantFrom(undefined, null, 'GPU', 'CPU', 'FLOPPY'),
    group_idx: fc.constantFrom(undefined, null, 0, 2),
  });

const otherArb = fc.constantFrom<Record<string, unknown>>({ type: 'AllBlocksCleared' }, { type: 'Weird' }, { type: 3 });

/** An event as a msgspec tagged array (vLLM) or as a map (the simulated workers), undefined fields left out of the map. */
function wireEvent(ev: Record<string, unknown>, asArray: boolean): unknown {
  if (asArray) {
    const order: readonly string[] = ev.type === 'BlockStored' ? STORED_ORDER : ev.type === 'BlockRemoved' ? REMOVED_ORDER : [];
    let last = order.length;
    while (last > 0 && ev[order[last - 1]!] === undefined) last--;
    return [ev.type, ...order.slice(0, last).map((k) => ev[k] ?? null)];
  }
  return Object.fromEntries(Object.entries(ev).filter(([, v]) => v !== undefined));
}

const batchArb = hashPool.chain((pool) =>
  fc.record({
    events: fc.array(
      fc.tuple(
        fc.oneof({ weight: 6, arbitrary: storedArb(pool) }, { weight: 2, arbitrary: removedArb(pool) }, { weight: 1, arbitrary: otherArb }),
        fc.boolean(),
      ),
      { maxLength: 4 },
    ),
    rank: fc.constantFrom(undefined, null, 0, 2, -1, 2n ** 40n),
    ts: fc.constantFrom(1712345678.25, 0, null),
    shape: fc.constantFrom('array', 'array', 'array', 'array', 'map', 'trailing', 'extra'),
  }),
);

test('fast and generic vLLM batch decoding agree on random batches; the fast path takes the clean ones', () => {
  let fastTaken = 0;
  let runs = 0;
  fc.assert(
    fc.property(batchArb, fc.integer({ min: 0, max: 50 }), (b, idStart) => {
      const events = b.events.map(([ev, asArray]) => wireEvent(ev, asArray));
      const body =
        b.shape === 'map'
          ? { ts: b.ts, events, data_parallel_rank: b.rank }
          : b.shape === 'extra'
            ? [b.ts, events, b.rank ?? 0, 'more']
            : b.rank === undefined
              ? [b.ts, events]
              : [b.ts, events, b.rank];
      let payload = encode(body, { useBigInt64: true });
      if (b.shape === 'trailing') payload = Uint8Array.from([...payload, 0xc0]);
      const opts = { workerId: 'w', blockSize: BS, eventIdStart: idStart };
      const generic = decodeVllmZmqBatch(payload, { ...opts, generic: true });
      const withFast = decodeVllmZmqBatch(payload, opts);
      assert.deepEqual(normalize(withFast), normalize(generic));
      runs++;
      if (decodeVllmBatchFast(payload, opts)) {
        fastTaken++;
        // What the fast path takes, the generic decoder accepts whole.
        assert.ok(
          generic.ok && !generic.dropped,
          JSON.stringify(normalize(generic), (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
        );
      }
    }),
    { numRuns: 1500 },
  );
  assert.ok(fastTaken > runs / 10, `the fast path took ${fastTaken} of ${runs} batches`);
});

test('a 512-block BlockStored from a vLLM worker goes through the fast path, with the generic result', () => {
  let h = 0x9e3779b97f4a7c15n;
  const hashes = Array.from({ length: 512 }, () => (h = (h * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n)));
  const tokens = Array.from({ length: 512 * 16 }, (_, i) => (i * 7919) % 151_000);
  const ev = ['BlockStored', hashes, BigInt.asIntN(64, 0xfedcba9876543210n), tokens, 16, null, 'GPU', null];
  const payload = encode([1712345678.5, [ev], 1], { useBigInt64: true });
  const opts = { workerId: 'w', blockSize: 16 };
  const fast = decodeVllmBatchFast(payload, opts);
  assert.ok(fast?.ok);
  assert.equal(fast.events.length, 1);
  assert.equal(fast.dpRank, 1);
  assert.deepEqual(normalize(fast), normalize(decodeVllmZmqBatch(payload, { ...opts, generic: true })));
});
