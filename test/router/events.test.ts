import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from '@msgpack/msgpack';
import {
  computeBlockHashes,
  decodeDynamoEvents,
  decodeEventPlaneFrame,
  decodeNatsEnvelope,
  decodeVllmZmqBatch,
  mediumToTier,
  parseJsonExact,
  type RouterEvent,
} from '../../src/router/index.js';
import { plainData } from '../helpers/events.js';

const enc = (v: unknown) => encode(v, { useBigInt64: true });
const BIG = 18_000_000_000_000_000_000n; // > 2^63: needs uint64 on the wire
const NEG = -5_000_000_000_000_000_000n; // i64 that must become 2^64 + NEG

function ok<T extends { ok: boolean }>(r: T): Extract<T, { ok: true }> {
  assert.equal(r.ok, true, `expected ok, got ${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
  return r as Extract<T, { ok: true }>;
}
function notOk<T extends { ok: boolean }>(r: T): string {
  assert.equal(r.ok, false);
  return (r as unknown as { reason: string }).reason;
}

// ------------------------------------------------------------------------------------------
// (a) Dynamo RouterEvent
// ------------------------------------------------------------------------------------------

const dynStored = {
  worker_id: 7,
  storage_tier: 'device',
  event: {
    event_id: 3,
    dp_rank: 1,
    data: {
      stored: {
        parent_hash: BIG,
        start_position: null,
        blocks: [
          { block_hash: 11n, tokens_hash: 12, mm_extra_info: null },
          { block_hash: BIG + 1n, tokens_hash: 14 },
        ],
      },
    },
  },
};

test('Dynamo RouterEvent msgpack: single stored event with u64 hashes', () => {
  const r = ok(decodeDynamoEvents(enc(dynStored)));
  assert.equal(r.events.length, 1);
  const e = r.events[0]!;
  assert.equal(e.workerId, '7');
  assert.equal(e.dpRank, 1);
  assert.equal(e.eventId, 3);
  assert.equal(e.storageTier, 'device');
  assert.deepEqual(e.data, {
    type: 'stored',
    parentHash: BIG,
    blocks: [
      { blockHash: 11n, tokensHash: 12n },
      { blockHash: BIG + 1n, tokensHash: 14n },
    ],
  });
});

test('Dynamo RouterEvent msgpack: batch with removed, cleared and a bad one', () => {
  const batch = [
    { worker_id: BIG, event: { event_id: 0, data: { removed: { block_hashes: [1, NEG] } } } },
    { worker_id: 2, event: { event_id: 1, dp_rank: 0, data: 'cleared' } },
    { worker_id: 2, event: { event_id: 2, data: { exploded: {} } } },
  ];
  const r = ok(decodeDynamoEvents(enc(batch)));
  assert.equal(r.events.length, 2);
  assert.equal(r.events[0]!.workerId, BIG.toString());
  assert.equal(r.events[0]!.dpRank, 0);
  assert.deepEqual(r.events[0]!.data, { type: 'removed', blockHashes: [1n, (1n << 64n) + NEG] });
  assert.deepEqual(r.events[1]!.data, { type: 'cleared' });
  assert.equal(r.dropped?.length, 1);
  assert.equal(r.dropped![0]!.index, 2);
  assert.match(r.dropped![0]!.reason, /exploded/);
});

test('Dynamo RouterEvent JSON text keeps u64 exact (string and bytes)', () => {
  const json = `{"worker_id": 18446744073709551615, "event": {"event_id": 5, "data": {"stored": {"parent_hash": null, "blocks": [{"block_hash": 18446744073709551614, "tokens_hash": 9007199254740993}]}}}}`;
  for (const input of [json, new TextEncoder().encode(json)]) {
    const r = ok(decodeDynamoEvents(input));
    const e = r.events[0]!;
    assert.equal(e.workerId, '18446744073709551615');
    assert.deepEqual(e.data, {
      type: 'stored',
      parentHash: null,
      blocks: [{ blockHash: 18446744073709551614n, tokensHash: 9007199254740993n }],
    });
  }
  assert.deepEqual(parseJsonExact('{"a":"12345678901234567890","b":12345678901234567890,"c":1.5e3}'), {
    a: '12345678901234567890',
    b: '12345678901234567890',
    c: 1500,
  });
});

test('Dynamo decoder rejects garbage without throwing', () => {
  notOk(decodeDynamoEvents(new Uint8Array([0xc1, 0xff, 0x00])));
  notOk(decodeDynamoEvents('{"worker_id": 1'));
  notOk(decodeDynamoEvents(enc({ worker_id: 1 })));
  notOk(decodeDynamoEvents(enc({ worker_id: 1, event: { event_id: -1, data: 'cleared' } })));
  notOk(decodeDynamoEvents(enc({ worker_id: 1, storage_tier: 'moon', event: { event_id: 0, data: 'cleared' } })));
  notOk(decodeDynamoEvents(enc({ worker_id: 1, event: { event_id: 0, data: { stored: { parent_hash: 1.5, blocks: [] } } } })));
  notOk(decodeDynamoEvents(enc(42)));
  notOk(decodeDynamoEvents(new Uint8Array()));
  // Value out of u64 range.
  notOk(decodeDynamoEvents('{"worker_id": 1, "event": {"event_id": 0, "data": {"removed": {"block_hashes": [99999999999999999999]}}}}'));
});

// ------------------------------------------------------------------------------------------
// (b) envelope
// ------------------------------------------------------------------------------------------

test('event-plane envelope with a batched payload; ZMQ frame header', () => {
  const payload = enc([dynStored, { worker_id: 7, event: { event_id: 4, dp_rank: 1, data: 'cleared' } }]);
  const env = enc({ publisher_id: 123456789012345n, sequence: 9, published_at: 1700000000000, topic: 'kv-events', payload });
  const r = ok(decodeNatsEnvelope(env));
  assert.deepEqual(r.envelope, { publisherId: 123456789012345n, sequence: 9n, publishedAt: 1700000000000, topic: 'kv-events' });
  assert.equal(r.events.length, 2);
  assert.equal(r.events[1]!.eventId, 4);
  const frame = new Uint8Array(5 + env.length);
  frame[0] = 1;
  new DataView(frame.buffer).setUint32(1, env.length, false);
  frame.set(env, 5);
  assert.equal(ok(decodeEventPlaneFrame(frame)).events.length, 2);
  frame[0] = 2;
  assert.match(notOk(decodeEventPlaneFrame(frame)), /version/);
  // Single (older) payload.
  const single = ok(decodeNatsEnvelope(enc({ publisher_id: 1, sequence: 0, published_at: 0, topic: 't', payload: enc(dynStored) })));
  assert.equal(single.events.length, 1);
  notOk(decodeNatsEnvelope(enc({ publisher_id: 1, sequence: 0, published_at: 0, topic: 't', payload: 'nope' })));
  notOk(decodeNatsEnvelope(enc({ publisher_id: 1, sequence: 0, published_at: 0, topic: 't', payload: new Uint8Array([0xc1]) })));
  notOk(decodeNatsEnvelope(new Uint8Array([1, 2, 3])));
});

// ------------------------------------------------------------------------------------------
// (c) vLLM ZMQ batches
// ------------------------------------------------------------------------------------------

const BS = 4;
const toks8 = [1, 2, 3, 4, 5, 6, 7, 8];

function expectStored(e: RouterEvent, parent: bigint | null, hashes: bigint[], toks: number[], lora?: string) {
  const local = computeBlockHashes(toks, BS, lora ? { loraName: lora } : undefined);
  assert.deepEqual(plainData(e.data), {
    type: 'stored',
    parentHash: parent,
    blocks: hashes.map((h, i) => ({ blockHash: h, tokensHash: local[i]! })),
  });
}

test('vLLM positional batch with tagged-array events, signed hashes and tail fields', () => {
  const events = [
    ['BlockStored', [NEG, 2], null, toks8, BS, null, 'GPU', null, null],
    [
      'BlockStored',
      [3],
      2,
      [9, 10, 11, 12],
      BS,
      null,
      'GPU',
      'my-lora',
      null,
      0,
      'full_attention',
      null,
      'LOCAL',
      null,
      'sess',
      'future-field',
    ],
    ['BlockRemoved', [NEG], 'GPU'],
    ['BlockRemoved', [2], 'GPU', 0],
    ['AllBlocksCleared'],
  ];
  const r = ok(decodeVllmZmqBatch(enc([1712345678.5, events, 2]), { workerId: 'w', blockSize: BS, eventIdStart: 10 }));
  assert.equal(r.dpRank, 2);
  assert.equal(r.dropped, undefined);
  assert.equal(r.nextEventId, 15);
  assert.deepEqual(
    r.events.map((e) => [e.workerId, e.dpRank, e.eventId, e.storageTier]),
    [
      ['w', 2, 10, 'device'],
      ['w', 2, 11, 'device'],
      ['w', 2, 12, 'device'],
      ['w', 2, 13, 'device'],
      ['w', 2, 14, 'device'],
    ],
  );
  const negU = (1n << 64n) + NEG;
  expectStored(r.events[0]!, null, [negU, 2n], toks8);
  expectStored(r.events[1]!, 2n, [3n], [9, 10, 11, 12], 'my-lora');
  // LoRA name salts the local hash.
  assert.notDeepEqual(computeBlockHashes([9, 10, 11, 12], BS), computeBlockHashes([9, 10, 11, 12], BS, { loraName: 'my-lora' }));
  assert.deepEqual(r.events[2]!.data, { type: 'removed', blockHashes: [negU] });
  assert.deepEqual(r.events[4]!.data, { type: 'cleared' });
});

test('vLLM map batch with map events (newer vLLM / mocker shape), null rank, u64 hashes', () => {
  const events = [
    {
      type: 'BlockStored',
      block_hashes: [BIG],
      parent_block_hash: null,
      token_ids: [1, 2, 3, 4],
      block_size: BS,
      medium: 'CPU',
      group_idx: 0,
    },
    { type: 'BlockStored', block_hashes: [BIG + 5n], parent_block_hash: BIG, token_ids: [5, 6, 7, 8], block_size: BS, lora_name: null },
    { type: 'BlockRemoved', block_hashes: [BIG], medium: 'DISK' },
  ];
  const r = ok(decodeVllmZmqBatch(enc({ ts: 1.0, events, data_parallel_rank: null }), { workerId: 'm', blockSize: BS }));
  assert.equal(r.dpRank, 0);
  assert.deepEqual(
    r.events.map((e) => e.storageTier),
    ['host_pinned', 'device', 'disk'],
  );
  assert.deepEqual(
    r.events.map((e) => e.eventId),
    [0, 1, 2],
  );
  expectStored(r.events[1]!, BIG, [BIG + 5n], [5, 6, 7, 8]);
  // Positional batch of map events, as Dynamo's mocker publishes.
  const r2 = ok(decodeVllmZmqBatch(enc([0.5, events.slice(0, 1), 3]), { workerId: 'm', blockSize: BS }));
  assert.equal(r2.dpRank, 3);
  assert.equal(r2.events.length, 1);
});

test('vLLM block size mismatch drops the event and the rest of the batch', () => {
  const events = [
    ['BlockStored', [1], null, [1, 2, 3, 4], BS, null, 'GPU', null, null],
    ['BlockStored', [2], 1, [1, 2, 3, 4, 5, 6, 7, 8], 8, null, 'GPU', null, null],
    ['BlockRemoved', [1], 'GPU'],
  ];
  const r = ok(decodeVllmZmqBatch(enc([0, events, 0]), { workerId: 'w', blockSize: BS }));
  assert.equal(r.events.length, 1);
  assert.deepEqual(
    r.dropped!.map((d) => d.index),
    [1, 2],
  );
  assert.match(r.dropped![0]!.reason, /block_size 8/);
});

test('vLLM per-event filtering: unknown medium, remote locality, other cache groups, bad tokens, duplicates', () => {
  const events = [
    ['BlockStored', [1], null, [1, 2, 3, 4], BS, null, 'TAPE', null, null],
    { type: 'BlockStored', block_hashes: [2], parent_block_hash: null, token_ids: [1, 2, 3, 4], block_size: BS, locality: 'REMOTE' },
    { type: 'BlockStored', block_hashes: [3], parent_block_hash: null, token_ids: [1, 2, 3, 4], block_size: BS, group_idx: 1 },
    { type: 'BlockStored', block_hashes: [4], parent_block_hash: null, token_ids: [1, 2, 3], block_size: BS },
    { type: 'BlockStored', block_hashes: [5, 5], parent_block_hash: null, token_ids: toks8, block_size: BS },
    { type: 'BlockStored', block_hashes: [6], parent_block_hash: 6, token_ids: [1, 2, 3, 4], block_size: BS },
    { type: 'Mystery' },
    'junk',
    ['BlockStored', [new Uint8Array([1, 2])], null, [1, 2, 3, 4], BS, null, 'GPU', null, null],
    {
      type: 'BlockStored',
      block_hashes: [7],
      parent_block_hash: null,
      token_ids: [1, 2, 3, 4],
      block_size: BS,
      kv_cache_spec_kind: 'sliding_window',
    },
  ];
  const r = ok(decodeVllmZmqBatch(enc([0, events, 0]), { workerId: 'w', blockSize: BS, eventIdStart: 100 }));
  // The two duplicate-hash events become empty Removed (no-ops) that still take an event id.
  assert.deepEqual(
    r.events.map((e) => e.data),
    [
      { type: 'removed', blockHashes: [] },
      { type: 'removed', blockHashes: [] },
    ],
  );
  assert.deepEqual(
    r.events.map((e) => e.eventId),
    [100, 101],
  );
  assert.deepEqual(
    r.dropped!.map((d) => d.index),
    [0, 1, 2, 3, 6, 7, 8, 9],
  );
});

test('vLLM decoder: garbage and malformed batches are ok:false, never throw', () => {
  const o = { workerId: 'w', blockSize: BS };
  notOk(decodeVllmZmqBatch(new Uint8Array([0xde, 0xad, 0xbe, 0xef]), o));
  notOk(decodeVllmZmqBatch(new Uint8Array(), o));
  notOk(decodeVllmZmqBatch(enc('hello'), o));
  notOk(decodeVllmZmqBatch(enc([1.0]), o));
  notOk(decodeVllmZmqBatch(enc([1.0, 'x', 0]), o));
  notOk(decodeVllmZmqBatch(enc([1.0, [], -1]), o));
  notOk(decodeVllmZmqBatch(enc({ ts: 1 }), o));
  notOk(decodeVllmZmqBatch(enc([1.0, []]), { workerId: 'w', blockSize: 0 }));
  // Random bytes: must not throw.
  let seed = 12345;
  for (let i = 0; i < 500; i++) {
    const n = i % 64;
    const b = new Uint8Array(n);
    for (let k = 0; k < n; k++) b[k] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const r1 = decodeVllmZmqBatch(b, o);
    const r2 = decodeDynamoEvents(b);
    const r3 = decodeNatsEnvelope(b);
    assert.equal(typeof r1.ok, 'boolean');
    assert.equal(typeof r2.ok, 'boolean');
    assert.equal(typeof r3.ok, 'boolean');
  }
});

test('medium -> tier mapping', () => {
  assert.equal(mediumToTier(null), 'device');
  assert.equal(mediumToTier('GPU'), 'device');
  assert.equal(mediumToTier('cpu_pinned'), 'host_pinned');
  assert.equal(mediumToTier('CPU_TIER1'), 'host_pinned');
  assert.equal(mediumToTier('NVME'), 'disk');
  assert.equal(mediumToTier('CPU_TIER2'), 'disk');
  assert.equal(mediumToTier('SHARED'), 'external');
  assert.equal(mediumToTier('FLOPPY'), undefined);
  assert.equal(mediumToTier(3), undefined);
});

test('decoded vLLM events drive the router; non-device tiers go to their own tier, not the device tree', async () => {
  const { KvRouter } = await import('../../src/router/index.js');
  const r = new KvRouter({ blockSize: BS });
  r.addWorker('w');
  r.addWorker('x');
  const batch = ok(
    decodeVllmZmqBatch(
      enc([
        0,
        [
          ['BlockStored', [NEG, 2], null, toks8, BS, null, 'GPU', null, null],
          ['BlockStored', [99], null, [50, 51, 52, 53], BS, null, 'CPU', null, null],
        ],
        0,
      ]),
      { workerId: 'w', blockSize: BS },
    ),
  );
  assert.deepEqual(
    batch.events.map((e) => r.applyEvent(e).status),
    ['ok', 'ok'],
  );
  assert.equal(r.route({ requestId: 'a', tokens: [...toks8, 9], nowMs: 0 }).overlap_blocks, 2);
  const b = r.route({ requestId: 'b', tokens: [50, 51, 52, 53], nowMs: 0 });
  assert.equal(b.overlap_blocks, 0);
  // The CPU block is a host-tier root entry of w: credited as a host block, not a device one.
  assert.equal(b.workers.find((w) => w.id === 'w')!.host_overlap_blocks, 1);
});
