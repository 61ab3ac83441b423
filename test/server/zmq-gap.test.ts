/**
 * ZMQ event source against a hand-driven vLLM-format publisher (real sockets): a batch the PUB
 * socket never delivers is noticed from the next sequence number, replayed from the ROUTER
 * socket, and the router's state is whole again; a restarted publisher resets the worker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, XPublisher } from 'zeromq';
import { encodeVllmBatch, seqFrame, type VllmWireEvent } from '../../src/sim/index.js';
import { ZmqEventSource } from '../../src/server/zmq-events.js';
import { RouterServer } from '../../src/server/router-server.js';
import type { RouterEvent } from '../../src/router/index.js';
import { startSims, waitFor } from './helpers.js';

const BS = 16;
const tokens = Array.from({ length: 3 * BS }, (_, i) => 1000 + i);
const stored = (i: number, parent: bigint | null): VllmWireEvent => ({
  type: 'BlockStored',
  block_hashes: [BigInt(100 + i)],
  parent_block_hash: parent,
  token_ids: tokens.slice(i * BS, (i + 1) * BS),
  block_size: BS,
  lora_id: null,
  medium: 'GPU',
  lora_name: null,
});

/** A vLLM-like publisher whose PUB side we can make drop a batch. */
class FakeVllmPublisher {
  readonly ring: Array<{ seq: bigint; payload: Buffer }> = [];
  replayRequests: bigint[] = [];
  private loop: Promise<void>;
  private subscribed!: Promise<void>;
  private constructor(
    readonly pub: XPublisher,
    readonly router: Router,
  ) {
    this.loop = this.serve();
    this.subscribed = (async () => {
      for await (const [msg] of this.pub) if (msg![0] === 1) return; // a subscription arrived
    })();
  }
  static async start(): Promise<FakeVllmPublisher> {
    const pub = new XPublisher({ linger: 0 });
    const router = new Router({ linger: 0 });
    await pub.bind('tcp://127.0.0.1:*');
    await router.bind('tcp://127.0.0.1:*');
    return new FakeVllmPublisher(pub, router);
  }
  get endpoint() {
    return this.pub.lastEndpoint!;
  }
  get replayEndpoint() {
    return this.router.lastEndpoint!;
  }
  waitSubscribed() {
    return this.subscribed;
  }
  /** Record a batch (replayable); send it on PUB unless `drop`. */
  async publish(seq: bigint, events: VllmWireEvent[], drop = false) {
    const payload = Buffer.from(encodeVllmBatch(events, 0));
    this.ring.push({ seq, payload });
    if (!drop) await this.pub.send([Buffer.alloc(0), seqFrame(seq), payload]);
  }
  private async serve() {
    try {
      for await (const [id, , start] of this.router) {
        const from = start!.readBigInt64BE(0);
        this.replayRequests.push(from);
        for (const e of this.ring) if (e.seq >= from) await this.router.send([id!, Buffer.alloc(0), seqFrame(e.seq), e.payload]);
        await this.router.send([id!, Buffer.alloc(0), seqFrame(-1n), Buffer.alloc(0)]);
      }
    } catch {
      // closed
    }
  }
  async close() {
    this.pub.close();
    this.router.close();
    await this.loop;
  }
}

test('a sequence gap triggers a replay from the first missing batch; every block is applied once', async () => {
  const pub = await FakeVllmPublisher.start();
  const applied: RouterEvent[] = [];
  const resets: string[] = [];
  await pub.publish(0n, [stored(0, null)], true); // before the subscriber exists: only replay can deliver it
  const src = new ZmqEventSource({
    workerId: 'w',
    endpoint: pub.endpoint,
    replayEndpoint: pub.replayEndpoint,
    blockSize: BS,
    onEvents: (e) => applied.push(...e),
    onReset: (r) => resets.push(r),
    resyncIdleMs: 0,
  }).start();
  try {
    await pub.waitSubscribed();
    await src.idle();
    await waitFor(() => applied.length === 1, 'the connect replay');
    assert.deepEqual(pub.replayRequests, [0n]);
    await pub.publish(1n, [stored(1, 100n)], true); // the PUB socket loses batch 1
    await pub.publish(2n, [stored(2, 101n)]);
    await waitFor(() => applied.length === 3, 'the gap replay');
    await src.idle();
    assert.deepEqual(pub.replayRequests, [0n, 1n], 'replay asked from the first missing seq');
    assert.deepEqual(
      applied.map((e) => e.data.type === 'stored' && e.data.blocks[0]!.blockHash),
      [100n, 101n, 102n],
    );
    assert.deepEqual(
      applied.map((e) => e.eventId),
      [0, 1, 2],
      'event ids are consecutive',
    );
    assert.equal(src.stats.gaps, 1);
    assert.equal(src.stats.unrecovered_gaps, 0);
    // A publisher that starts over at 0 is a restarted worker: its old blocks are dropped.
    await pub.publish(0n, [{ type: 'AllBlocksCleared' }]);
    await waitFor(() => resets.length === 1, 'the restart reset');
    assert.equal(src.stats.restarts, 1);
  } finally {
    await src.close();
    await pub.close();
  }
});

test("through the router server: after a lost batch the worker's whole prefix is indexed and routed to", async () => {
  const [sim] = await startSims(1);
  const pub = await FakeVllmPublisher.start();
  const router = await RouterServer.start({
    workers: [
      { id: 'fake', url: sim!.url, zmq: pub.endpoint, replay: pub.replayEndpoint },
      { id: 'other', url: sim!.url },
    ],
    blockSize: BS,
    port: 0,
    events: 'zmq',
    zmqResyncIdleMs: 0,
    health: false,
  });
  try {
    await pub.waitSubscribed();
    await router.eventsIdle();
    await pub.publish(0n, [stored(0, null)]);
    await pub.publish(1n, [stored(1, 100n)], true);
    await pub.publish(2n, [stored(2, 101n)]);
    await waitFor(() => router.workersView().workers[0]!.cached_blocks === 3, 'three indexed blocks');
    const r = await fetch(`${router.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: [...tokens, 7, 8, 9], max_tokens: 1 }),
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-dynamo-lab-worker'), 'fake');
    assert.equal(r.headers.get('x-dynamo-lab-overlap-blocks'), '3');
    await r.arrayBuffer();
    assert.equal(router.workersView().workers[0]!.events!.gaps, 1);
    const metrics = await (await fetch(`${router.url}/metrics`)).text();
    assert.match(metrics, /dynamo_component_kv_cache_events_applied\{event_type="stored",status="ok"\} 3/);
  } finally {
    await router.close();
    await pub.close();
    await sim!.close();
  }
});

test('sequence poisoning: one frame with sequence 2^62 does not make the source drop the real batches after it', async () => {
  for (const withReplay of [false, true]) {
    const pub = await FakeVllmPublisher.start();
    const applied: RouterEvent[] = [];
    const src = new ZmqEventSource({
      workerId: 'w',
      endpoint: pub.endpoint,
      replayEndpoint: withReplay ? pub.replayEndpoint : undefined,
      blockSize: BS,
      onEvents: (e) => applied.push(...e),
      onReset: () => {},
      resyncIdleMs: 0,
    }).start();
    try {
      await pub.waitSubscribed();
      await src.idle();
      await pub.publish(0n, [stored(0, null)]);
      await waitFor(() => applied.length === 1, 'batch 0');
      // A bogus frame far ahead (not put in the replay ring: a real publisher never sent it).
      await pub.pub.send([Buffer.alloc(0), seqFrame(2n ** 62n), Buffer.from(encodeVllmBatch([{ type: 'AllBlocksCleared' }], 0))]);
      await pub.publish(1n, [stored(1, 100n)]);
      await pub.publish(2n, [stored(2, 101n)]);
      await waitFor(
        () => applied.filter((e) => e.data.type === 'stored').length === 3,
        `batches 1 and 2 after the bogus frame (replay ${withReplay})`,
      );
      await src.idle();
      assert.equal(src.stats.next_seq, '3', 'the expected sequence follows the real batches');
    } finally {
      await src.close();
      await pub.close();
    }
  }
});
