import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate } from 'node:timers/promises';
import { decode } from '@msgpack/msgpack';
import { Dealer, Subscriber } from 'zeromq';
import type { RouterEvent } from '../../src/router/types.js';
import { decodeVllmZmqBatch, RadixIndexer } from '../../src/router/index.js';
import { computeBlockHashes } from '../../src/router/hashing.js';
import { SimEngine } from '../../src/sim/engine.js';
import { VirtualClock } from '../../src/sim/clock.js';
import { ZmqKvPublisher } from '../../src/sim/zmq.js';
import { plainData } from '../helpers/events.js';

const BS = 4;

/** An engine on a virtual clock whose KV events go to a real ZMQ publisher. */
async function setup(opts: { bufferBatches?: number } = {}) {
  const pub = await ZmqKvPublisher.start({
    host: '127.0.0.1',
    pubPort: 0,
    replayPort: 0,
    blockSize: BS,
    bufferBatches: opts.bufferBatches,
  });
  const clock = new VirtualClock();
  const engine = new SimEngine({ id: 'w0', blockSize: BS, numGpuBlocks: 12 }, clock);
  const inproc: RouterEvent[] = [];
  engine.onKvEvent((ev, tokenIds) => {
    inproc.push(ev);
    pub.publish(ev, tokenIds);
  });
  const sub = new Subscriber({ receiveTimeout: 5000, linger: 0 });
  sub.connect(pub.endpoint);
  sub.subscribe();
  const first = await joined(pub, sub);
  return { pub, clock, engine, inproc, sub, first };
}

/**
 * ZeroMQ's slow joiner: a PUB socket drops what it sends before a new subscription has reached
 * it. Publish probe batches (AllBlocksCleared; nothing here reads them as cache state) until the
 * subscriber receives one, then read the probes still on their way. Returns the seq of the first
 * batch after the probes: the stream the tests read starts there.
 */
async function joined(pub: ZmqKvPublisher, sub: Subscriber, ms = 30_000): Promise<bigint> {
  const probe: RouterEvent = { workerId: 'w0', dpRank: 0, eventId: 0, data: { type: 'cleared' } };
  const timeout = sub.receiveTimeout;
  const end = performance.now() + ms;
  let seq = -1n;
  sub.receiveTimeout = 100;
  try {
    while (seq < 0n) {
      if (performance.now() > end) throw new Error(`no probe reached the subscriber in ${ms} ms`);
      pub.publish(probe);
      pub.flush();
      try {
        seq = (await sub.receive())[1]!.readBigUInt64BE(0);
      } catch (err) {
        if ((err as { code?: string }).code !== 'EAGAIN') throw err;
      }
    }
  } finally {
    sub.receiveTimeout = timeout;
  }
  // Connected now: every later probe arrives, in order.
  const lastProbe = BigInt(pub.batchesPublished - 1);
  while (seq < lastProbe) seq = (await sub.receive())[1]!.readBigUInt64BE(0);
  return lastProbe + 1n;
}

/** Run one request per pass burst; each burst becomes one batch. */
async function drive(engine: SimEngine, clock: VirtualClock, prompts: number[][]) {
  let i = 0;
  for (const p of prompts) {
    engine.submit({ requestId: `r${i++}`, tokens: p, maxTokens: 3 });
    clock.runUntilIdle();
    await setImmediate(); // one turn of the event loop: the burst's microtask flush makes it one batch
  }
}

const prompts = [
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15],
  [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35],
  [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60],
];

test('KV events go out on a real ZMQ PUB socket in vLLM wire format', async () => {
  const { pub, clock, engine, inproc, sub, first } = await setup();
  try {
    await drive(engine, clock, prompts);
    const published = pub.batchesPublished - Number(first);
    assert.ok(published >= 4);
    assert.equal(pub.bufferedSeqs()[0], 0n, 'seq from 0 (the probes came first)');
    const frames: Buffer[][] = [];
    while (frames.length < published) frames.push(await sub.receive());

    const wireEvents: Record<string, unknown>[] = [];
    frames.forEach((f, i) => {
      assert.equal(f.length, 3, 'multipart [topic, seq, payload]');
      assert.equal(f[0]!.length, 0, 'empty topic');
      assert.equal(f[1]!.length, 8);
      assert.equal(f[1]!.readBigUInt64BE(0), first + BigInt(i), 'seq big-endian, consecutive');
      const batch = decode(f[2]!, { useBigInt64: true }) as unknown[];
      assert.ok(Array.isArray(batch) && batch.length === 3, 'positional [ts, events, dp_rank]');
      assert.equal(typeof batch[0], 'number');
      assert.ok(Math.abs((batch[0] as number) - Date.now() / 1000) < 60, 'ts in float seconds');
      assert.equal(batch[2], 0);
      for (const e of batch[1] as Record<string, unknown>[]) wireEvents.push(e);
    });
    // Same events as in-process, same order.
    assert.equal(wireEvents.length, inproc.length);
    const kinds = new Set(wireEvents.map((e) => e.type));
    assert.ok(kinds.has('BlockStored') && kinds.has('BlockRemoved'), `both kinds seen: ${[...kinds]}`);
    wireEvents.forEach((e, i) => {
      const ev = inproc[i]!.data;
      if (ev.type === 'stored') {
        assert.deepEqual(Object.keys(e).sort(), [
          'block_hashes',
          'block_size',
          'lora_id',
          'lora_name',
          'medium',
          'parent_block_hash',
          'token_ids',
          'type',
        ]);
        assert.equal(e.type, 'BlockStored');
        assert.deepEqual(
          e.block_hashes,
          ev.blocks.map((b) => b.blockHash),
        );
        assert.equal(e.parent_block_hash, ev.parentHash);
        assert.equal(e.block_size, BS);
        assert.equal(e.medium, 'GPU');
        assert.equal(e.lora_id, null);
        assert.equal(e.lora_name, null);
        const toks = e.token_ids as number[];
        assert.equal(toks.length, ev.blocks.length * BS);
        // The router recomputes tokens_hash from token_ids: it must be our local hash.
        assert.deepEqual(
          computeBlockHashes(toks, BS),
          ev.blocks.map((b) => b.tokensHash),
        );
      } else if (ev.type === 'removed') {
        assert.deepEqual(e, { type: 'BlockRemoved', block_hashes: ev.blockHashes, medium: 'GPU' });
      }
    });
    // u64 hashes are exact: every hash is encoded as msgpack uint64 (0xcf + 8 bytes).
    const firstStored = inproc.find((e) => e.data.type === 'stored')!.data as Extract<RouterEvent['data'], { type: 'stored' }>;
    const h = firstStored.blocks[0]!.blockHash;
    const hb = Buffer.alloc(9);
    hb[0] = 0xcf;
    hb.writeBigUInt64BE(h, 1);
    assert.ok(
      frames.some((f) => f[2]!.includes(hb)),
      'hash encoded as uint64',
    );
  } finally {
    sub.close();
    engine.close();
    await pub.close();
  }
});

test("the router's decodeVllmZmqBatch turns the wire batches back into the worker's events", async () => {
  const { pub, clock, engine, inproc, sub, first } = await setup();
  try {
    await drive(engine, clock, prompts);
    const decoded: RouterEvent[] = [];
    let next = 0;
    for (let i = Number(first); i < pub.batchesPublished; i++) {
      const [, , payload] = await sub.receive();
      const r = decodeVllmZmqBatch(payload!, { workerId: 'w0', blockSize: BS, eventIdStart: next });
      assert.ok(r.ok, r.ok ? '' : r.reason);
      if (!r.ok) return;
      decoded.push(...r.events);
      next = r.nextEventId ?? next + r.events.length;
    }
    assert.equal(decoded.length, inproc.length);
    const radix = new RadixIndexer();
    decoded.forEach((d, i) => {
      assert.equal(d.workerId, 'w0');
      assert.equal(d.dpRank, 0);
      assert.deepEqual(plainData(d.data), plainData(inproc[i]!.data));
      assert.equal(radix.applyEvent(d, true).status, 'ok');
    });
    // Applied to a fresh index, the decoded wire events reproduce the worker's cache.
    assert.equal(radix.blockCount(radix.slotOf('w0', 0)), engine.cachedBlockCount());
  } finally {
    sub.close();
    engine.close();
    await pub.close();
  }
});

test('replay: a subscriber that missed batches gets them from the ROUTER socket, then the -1 end marker', async () => {
  const { pub, clock, engine, sub, first } = await setup();
  const dealer = new Dealer({ receiveTimeout: 5000, linger: 0 });
  try {
    await drive(engine, clock, prompts);
    const n = pub.batchesPublished;
    const live = new Map<bigint, Buffer[]>();
    for (let i = Number(first); i < n; i++) {
      const f = await sub.receive();
      live.set(f[1]!.readBigUInt64BE(0), f);
    }
    // Pretend the seqs after the first of the engine's batches were lost: ask for them again.
    assert.ok(pub.replayEndpoint);
    dealer.connect(pub.replayEndpoint!);
    const start = Buffer.alloc(8);
    start.writeBigUInt64BE(first + 1n);
    await dealer.send([Buffer.alloc(0), start]);
    const got: { seq: bigint; payload: Buffer }[] = [];
    for (;;) {
      const f = await dealer.receive();
      assert.equal(f.length, 3, '[empty, seq, payload] after the ROUTER strips the identity');
      assert.equal(f[0]!.length, 0);
      const seq = f[1]!.readBigInt64BE(0);
      if (seq === -1n) {
        assert.equal(f[2]!.length, 0, 'end marker has an empty payload');
        assert.deepEqual([...f[1]!], [255, 255, 255, 255, 255, 255, 255, 255]);
        break;
      }
      got.push({ seq, payload: f[2]! });
    }
    assert.deepEqual(
      got.map((g) => g.seq),
      Array.from({ length: n - Number(first) - 1 }, (_, i) => first + 1n + BigInt(i)),
    );
    for (const g of got) assert.ok(g.payload.equals(live.get(g.seq)![2]!), `replayed seq ${g.seq} is byte-identical`);
  } finally {
    dealer.close();
    sub.close();
    engine.close();
    await pub.close();
  }
});

test('the replay ring buffer keeps only the newest batches', async () => {
  const pub = await ZmqKvPublisher.start({ host: '127.0.0.1', pubPort: 0, replayPort: 0, blockSize: BS, bufferBatches: 3 });
  const dealer = new Dealer({ receiveTimeout: 5000, linger: 0 });
  try {
    for (let i = 0; i < 7; i++) {
      pub.publish({ workerId: 'w', dpRank: 0, eventId: i, data: { type: 'removed', blockHashes: [BigInt(i)] } });
      pub.flush();
    }
    assert.deepEqual(pub.bufferedSeqs(), [4n, 5n, 6n]);
    dealer.connect(pub.replayEndpoint!);
    await dealer.send([Buffer.alloc(0), Buffer.alloc(8)]);
    const seqs: bigint[] = [];
    for (;;) {
      const f = await dealer.receive();
      const s = f[1]!.readBigInt64BE(0);
      if (s === -1n) break;
      seqs.push(s);
      const batch = decode(f[2]!, { useBigInt64: true }) as [number, { type: string; block_hashes: bigint[] }[], number];
      assert.deepEqual(batch[1][0]!.block_hashes, [s]);
    }
    assert.deepEqual(seqs, [4n, 5n, 6n]);
  } finally {
    dealer.close();
    await pub.close();
  }
});
