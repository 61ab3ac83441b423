/**
 * Router replica sync over a real nats-server: two router replicas in front of the same
 * simulated workers share their active-sequence bookings (Dynamo's ActiveSequenceEvent on
 * active_sequences_events) and session bindings. Requests alternate between the replicas and
 * stream long enough to overlap; /debug/workers of both must agree per worker within one
 * request. A replica started late catches up from its peers' snapshots, and the bookings of a
 * replica that dies (no goodbye) are freed by its peers once its heartbeats stop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode } from '@msgpack/msgpack';
import { connect } from 'nats';
import { RouterServer } from '../../src/server/router-server.js';
import type { WorkersView } from '../../src/server/types.js';
import { natsSkipReason, startNatsServer, startSims, waitFor } from './helpers.js';

async function view(url: string): Promise<WorkersView> {
  const r = await fetch(`${url}/debug/workers`);
  assert.equal(r.status, 200);
  return (await r.json()) as WorkersView;
}

function load(v: WorkersView): Map<string, number> {
  return new Map(v.workers.map((w) => [w.id, w.active_requests]));
}

function drift(a: WorkersView, b: WorkersView): number {
  const la = load(a);
  const lb = load(b);
  let d = 0;
  for (const [id, n] of la) d = Math.max(d, Math.abs(n - (lb.get(id) ?? 0)));
  return d;
}

const total = (v: WorkersView) => v.workers.reduce((s, w) => s + w.active_requests, 0);

/** Start a streamed request and resolve once its headers came (it is routed and booked). */
const stopAll = new AbortController();
async function startStream(url: string, i: number, headers: Record<string, string> = {}): Promise<{ worker: string; done: Promise<void> }> {
  const ctl = stopAll;
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      model: 'Qwen/Qwen2.5-1.5B-Instruct',
      messages: [{ role: 'user', content: `request ${i}: ${'tell me a long story about routers and caches. '.repeat(8 + (i % 5))}` }],
      max_tokens: 3000, // ~18 s at speedup 1: the streams outlive the test's checks; aborted at the end
      stream: true,
    }),
    signal: ctl.signal,
  });
  assert.equal(res.status, 200);
  const worker = res.headers.get('x-dynamo-lab-worker')!;
  const done = (async () => {
    try {
      for await (const _ of res.body!) void _;
    } catch {
      // aborted by a router that went away
    }
  })();
  return { worker, done };
}

test('router replicas share bookings over NATS: loads agree, a late replica catches up, a dead one is expired', async (t) => {
  const skip = natsSkipReason();
  if (skip) return t.skip(skip);
  const nats = await startNatsServer();
  const sims = await startSims(4, { speedup: 1 });
  const routers: RouterServer[] = [];
  const streams: Array<Promise<void>> = [];
  const sync = { servers: [nats.url], heartbeatMs: 100, deadAfterMs: 800 };
  const start = async () => {
    const r = await RouterServer.start({
      workers: sims.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) })),
      blockSize: 16,
      port: 0,
      seed: 3,
      health: false,
      replicaSync: sync,
    });
    routers.push(r);
    return r;
  };
  // Watch the wire: the bookings travel as Dynamo ActiveSequenceEvents in event-plane envelopes.
  const watcher = await connect({ servers: nats.url.replace('nats://', '') });
  const seen: Array<Record<string, unknown>> = [];
  watcher.subscribe('namespace.dynamo.component.backend.active_sequences_events', {
    callback: (_e, m) => {
      const env = decode(m.data, { useBigInt64: true }) as Record<string, unknown>;
      if (seen.length < 200)
        seen.push({ topic: env.topic, ...(decode(env.payload as Uint8Array, { useBigInt64: true }) as Record<string, unknown>) });
    },
  });
  try {
    const a = await start();
    const b = await start();
    const replicas = [a, b];

    // 16 long streams, alternating between the replicas.
    const samples: number[] = [];
    for (let i = 0; i < 16; i++) {
      const s = await startStream(replicas[i % 2]!.url, i);
      streams.push(s.done);
      const [va, vb] = await Promise.all([view(a.url), view(b.url)]);
      samples.push(drift(va, vb));
    }
    // Both replicas see all 16 bookings, spread the same way.
    const settled = await waitFor(
      async () => {
        const [va, vb] = await Promise.all([view(a.url), view(b.url)]);
        return total(va) === 16 && total(vb) === 16 && drift(va, vb) <= 1 ? ([va, vb] as const) : undefined;
      },
      'both replicas to count the 16 in-flight requests per worker alike',
      15_000,
    );
    const [va, vb] = settled;
    t.diagnostic(
      `per-worker active requests A=${JSON.stringify([...load(va)])} B=${JSON.stringify([...load(vb)])}; drift right after each routing: ${JSON.stringify(samples)} (max ${Math.max(...samples)})`,
    );
    assert.ok(drift(va, vb) <= 1);
    // Every worker got some of the load, so agreement is not just "all zero but one".
    assert.ok([...load(va).values()].filter((n) => n > 0).length >= 2, 'the load spans several workers');
    assert.ok(
      va.replica_sync && va.replica_sync.peers.length === 1 && va.replica_sync.applied >= 8,
      `A applied B's bookings: ${JSON.stringify(va.replica_sync)}`,
    );
    // The prefill-token bookings agree too (MarkPrefillCompleted is synced).
    const pa = va.workers.map((w) => w.active_prefill_tokens).join();
    const pb = vb.workers.map((w) => w.active_prefill_tokens).join();
    await waitFor(async () => {
      const [x, y] = await Promise.all([view(a.url), view(b.url)]);
      return x.workers.map((w) => w.active_prefill_tokens).join() === y.workers.map((w) => w.active_prefill_tokens).join();
    }, `prefill tokens to agree (A ${pa} / B ${pb})`);

    // The wire format: Dynamo's ActiveSequenceEvent.
    const add = seen.find((e) => e.data && typeof e.data === 'object' && 'AddRequest' in (e.data as object))!;
    assert.ok(add, 'an AddRequest went over NATS');
    assert.equal(add.topic, 'active_sequences_events');
    assert.equal(typeof add.request_id, 'string');
    const w = add.worker as Record<string, unknown>;
    assert.ok(typeof w.worker_id === 'bigint' || typeof w.worker_id === 'number');
    assert.equal(w.dp_rank, 0);
    const ar = (add.data as Record<string, Record<string, unknown>>).AddRequest!;
    assert.ok(Array.isArray(ar.token_sequence) && ar.token_sequence.length > 0, 'token_sequence holds the sequence hashes');
    assert.ok('prefill_load_hint' in ar && 'track_prefill_tokens' in ar && 'expected_output_tokens' in ar);

    // A replica started late catches up from its peers' snapshots before it serves.
    const c = await start();
    const vc = await view(c.url);
    const vaNow = await view(a.url);
    t.diagnostic(
      `late replica C: ${JSON.stringify([...load(vc)])} vs A ${JSON.stringify([...load(vaNow)])}; snapshot replies ${vc.replica_sync?.snapshot_replies}, bookings ${vc.replica_sync?.snapshot_bookings}`,
    );
    assert.equal(vc.replica_sync?.snapshot_replies, 2, 'both peers answered the snapshot request');
    assert.ok(total(vc) >= 12, `C counts the in-flight requests at once (${total(vc)})`);
    await waitFor(
      async () => drift(await view(a.url), await view(c.url)) <= 1 && total(await view(c.url)) === total(await view(a.url)),
      'C to agree with A',
    );

    // Session affinity bindings are shared: a session bound through A sticks through B.
    const s1 = await startStream(a.url, 100, { 'x-dynamo-session-id': 'conv-1' });
    streams.push(s1.done);
    await waitFor(() => b.replicaSyncStats()!.received > 0 && b.decisions(1).length > 0, 'B to hear from A');
    const viaB = await waitFor(
      async () => {
        const s = await startStream(b.url, 101, { 'x-dynamo-session-id': 'conv-1' });
        streams.push(s.done);
        return b.decisions(1)[0]!.pinned ? s : undefined;
      },
      'B to pin the session A bound',
      5000,
    );
    assert.equal(viaB.worker, s1.worker, 'the session stays on its worker across replicas');

    // B dies without a word: A and C free its bookings once its heartbeats stop.
    const bBooked = total(await view(b.url)) - (await view(b.url)).replica_sync!.peers.reduce((s, p) => s + p.bookings, 0);
    assert.ok(bBooked > 0, 'B holds bookings of its own');
    await b.crashForTest();
    routers.splice(routers.indexOf(b), 1);
    await waitFor(
      async () => {
        const x = await view(a.url);
        return x.replica_sync!.peers.length === 1 && x.replica_sync!.peer_bookings_dropped >= bBooked ? x : undefined;
      },
      "A to drop dead B's bookings",
      10_000,
    );
    await waitFor(async () => drift(await view(a.url), await view(c.url)) <= 1, 'A and C to agree after B died');

    // When every client goes away, every replica is back to zero.
    stopAll.abort();
    await Promise.all(streams);
    await waitFor(async () => total(await view(a.url)) === 0 && total(await view(c.url)) === 0, 'the loads to return to zero', 20_000);
  } finally {
    await Promise.allSettled(routers.map((r) => r.close()));
    await watcher.close();
    await Promise.allSettled(sims.map((w) => w.close()));
    await nats.close();
  }
});
