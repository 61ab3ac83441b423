/**
 * With 4 simulated workers and each KV event source (in-process, ZMQ with real sockets, NATS
 * with a real nats-server), a shared-prefix request series lands on the worker holding the
 * prefix, and /debug/decisions shows why. The openai client streams through the router.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { SimWorker } from '../../src/sim/index.js';
import { RouterServer, type WorkerEndpoint } from '../../src/server/router-server.js';
import { NatsKvPublisher, encodeKvEnvelope } from '../../src/server/nats-events.js';
import { cachedBlocks, natsSkipReason, sleep, SYSTEM_PROMPT, startNatsServer, startSims, waitFor } from './helpers.js';

interface Decision {
  request_id: string;
  chosen: string;
  mode: string;
  isl_tokens: number;
  config: { overlap_score_credit: number; prefill_load_scale: number };
  workers: Array<{ id: string; overlap_blocks: number; potential_prefill_blocks: number; potential_decode_blocks: number; cost: number }>;
}

/**
 * Send the shared-prefix series with the openai client (streaming). The first request warms a
 * worker; once the router has seen that worker's KV events, three follow-ups must land there.
 */
async function sharedPrefixSeries(router: RouterServer): Promise<{ holder: string; served: string[] }> {
  const client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const ask = async (q: string) => {
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'Qwen/Qwen2.5-1.5B-Instruct',
        messages: [
          { role: 'system', content: SYSTEM_PROMPT },
          { role: 'user', content: q },
        ],
        max_tokens: 6,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(text.length > 0, 'streamed text');
    return { worker: response.headers.get('x-dynamo-lab-worker')!, usage };
  };
  const first = await ask('What is the fare to the coast?');
  const holder = first.worker;
  assert.match(holder, /^worker-\d$/);
  // The router learns the holder's blocks from its KV events (asynchronously for ZMQ / NATS).
  await waitFor(() => cachedBlocks(router, holder) >= 30, `the router to index ${holder}'s blocks`);
  const served: string[] = [];
  for (const q of ['When does the last train leave?', 'Are dogs allowed?', 'Summarise the safety rules.']) {
    const r = await ask(q);
    served.push(r.worker);
    assert.ok((r.usage as any)?.prompt_tokens_details?.cached_tokens > 300, `cached tokens ${JSON.stringify(r.usage)}`);
  }
  assert.deepEqual(served, [holder, holder, holder], `follow-ups served by ${served.join(', ')}, prefix on ${holder}`);
  return { holder, served };
}

async function assertDecisionsExplain(router: RouterServer, holder: string): Promise<void> {
  const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=3`)).json()) as { decisions: Decision[] };
  assert.equal(decisions.length, 3);
  for (const d of decisions) {
    assert.equal(d.chosen, holder);
    assert.equal(d.workers.length, 4);
    const chosen = d.workers.find((w) => w.id === holder)!;
    assert.ok(chosen.overlap_blocks >= 30, `holder overlap ${chosen.overlap_blocks}`);
    for (const w of d.workers) {
      if (w.id !== holder) assert.equal(w.overlap_blocks, 0, `${w.id} holds no prefix`);
      const expected =
        d.config.prefill_load_scale * Math.max(0, w.potential_prefill_blocks - d.config.overlap_score_credit * w.overlap_blocks) +
        w.potential_decode_blocks;
      assert.ok(Math.abs(w.cost - expected) < 1e-6, `cost of ${w.id}`);
      assert.ok(chosen.cost < w.cost || w.id === holder, `holder is cheapest: ${chosen.cost} vs ${w.id} ${w.cost}`);
    }
  }
}

test('in-process events: the shared-prefix series sticks to the prefix holder', async () => {
  const sims = await startSims(4);
  const router = await RouterServer.start({
    workers: sims.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) })),
    blockSize: 16,
    port: 0,
    seed: 3,
    events: 'inproc',
  });
  try {
    const { holder } = await sharedPrefixSeries(router);
    await assertDecisionsExplain(router, holder);
    const metrics = await (await fetch(`${router.url}/metrics`)).text();
    assert.match(metrics, /dynamo_component_kv_cache_events_applied\{event_type="stored",status="ok"\} \d+/);
    assert.match(metrics, /dynamo_component_router_time_to_first_token_seconds_count \d+/);
    assert.match(metrics, /dynamo_component_router_inter_token_latency_seconds_count \d+/);
    assert.match(metrics, /dynamo_router_overhead_indexer_find_matches_ms_count \d+/);
    assert.match(metrics, /dynamo_lab_router_achieved_hit_rate \d/);
    assert.match(metrics, /dynamo_lab_router_predicted_hit_rate \d/);
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('ZMQ events (vLLM PUB + replay sockets): state published before the router started is replayed, and the series sticks', async () => {
  const sims = await startSims(4, { zmq: { pubPort: 0, replayPort: 0 } });
  let router: RouterServer | undefined;
  try {
    // worker-2 caches a prefix before any router exists: only the replay on connect can tell.
    const other = 'A different long context about weather stations and rainfall records. '.repeat(40);
    const warm = await fetch(`${sims[2]!.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        messages: [
          { role: 'system', content: other },
          { role: 'user', content: 'hi' },
        ],
        max_tokens: 2,
      }),
    });
    assert.equal(warm.status, 200);
    await warm.arrayBuffer();
    const workers: WorkerEndpoint[] = sims.map((w) => ({ id: w.id, url: w.url, zmq: w.zmqEndpoint!, replay: w.zmqReplayEndpoint! }));
    router = await RouterServer.start({ workers, blockSize: 16, port: 0, seed: 5, events: 'zmq', zmqResyncIdleMs: 200 });
    await waitFor(() => cachedBlocks(router!, 'worker-2') >= 20, 'the replayed blocks of worker-2');
    const view = router.workersView();
    assert.ok(view.workers[2]!.events!.replayed_batches >= 1, JSON.stringify(view.workers[2]!.events));
    const r = await fetch(`${router.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        messages: [
          { role: 'system', content: other },
          { role: 'user', content: 'and now?' },
        ],
        max_tokens: 2,
      }),
    });
    assert.equal(r.headers.get('x-dynamo-lab-worker'), 'worker-2');
    assert.ok(Number(r.headers.get('x-dynamo-lab-overlap-blocks')) >= 20);
    await r.arrayBuffer();

    const { holder } = await sharedPrefixSeries(router);
    await assertDecisionsExplain(router, holder);
  } finally {
    await router?.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('NATS events (Dynamo RouterEvent envelopes on a real nats-server): the series sticks; worker_id maps to workers', async (t) => {
  const skip = natsSkipReason();
  if (skip) return t.skip(skip);
  const nats = await startNatsServer();
  const sims = await startSims(4);
  let bridge: NatsKvPublisher | undefined;
  let router: RouterServer | undefined;
  try {
    // Each sim worker publishes like a Dynamo worker would: envelopes on
    // namespace.dynamo.component.backend.kv-events with its u64 worker_id.
    bridge = await NatsKvPublisher.start({ servers: [nats.url] });
    const dynamoIds = sims.map((_, i) => 7_000_000_000_000_000_000n + BigInt(i));
    router = await RouterServer.start({
      workers: sims.map((w, i) => ({ id: w.id, url: w.url, dynamoWorkerId: dynamoIds[i]!.toString() })),
      blockSize: 16,
      port: 0,
      seed: 9,
      events: 'nats',
      nats: { servers: [nats.url] },
    });
    for (const [i, w] of sims.entries()) bridge!.attach(w, dynamoIds[i]!);
    const { holder } = await sharedPrefixSeries(router);
    await assertDecisionsExplain(router, holder);

    // Events from a worker the router does not know are counted and dropped, not applied.
    bridge.publishRaw(
      encodeKvEnvelope([{ worker_id: 42n, storage_tier: 'device', event: { event_id: 0n, data: 'cleared', dp_rank: 0 } }], {
        publisherId: 99n,
        sequence: 0n,
      }),
    );
    await bridge.flush();
    await waitFor(() => (router!.natsStats()?.unknown_worker_events ?? 0) > 0, 'the unknown worker event to be counted');
    assert.deepEqual(router.natsStats()!.unknown_workers, ['42']);
    assert.ok(cachedBlocks(router, holder) >= 30, 'the holder keeps its blocks');
  } finally {
    await router?.close();
    await bridge?.close();
    await Promise.all(sims.map((w) => w.close()));
    await nats.close();
  }
});

test('NATS: a router without the nats server gives a clear error', async () => {
  await assert.rejects(
    RouterServer.start({ workers: [], blockSize: 16, port: 0, events: 'nats', nats: { servers: ['nats://127.0.0.1:1'] } }),
    /cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/,
  );
  void sleep;
  void SimWorker;
});
