/**
 * The embedded router over real HTTP in front of real simulated workers, driven by the
 * official openai npm client.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { SimWorker } from '../../src/sim/index.js';
import { RouterServer } from '../../src/server/router-server.js';

let workers: SimWorker[] = [];
let router: RouterServer;

before(async () => {
  workers = await Promise.all([0, 1, 2].map((i) => SimWorker.start({ id: `worker-${i}`, blockSize: 16, port: 0, speedup: 0 })));
  router = await RouterServer.start({
    workers: workers.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) })),
    blockSize: 16,
    port: 0,
    mode: 'kv',
    seed: 1,
  });
});

after(async () => {
  await router?.close();
  await Promise.all(workers.map((w) => w.close()));
});

const longContext = 'The history of computing spans centuries of ideas. '.repeat(40);

test('the openai client streams through the router, and a shared prefix sticks to one worker', async () => {
  const client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'unused' });
  const served: string[] = [];
  for (const q of ['Summarise it.', 'List three dates.', 'Who is mentioned first?']) {
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'Qwen/Qwen2.5-1.5B-Instruct',
        messages: [
          { role: 'system', content: longContext },
          { role: 'user', content: q },
        ],
        max_tokens: 8,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    served.push(response.headers.get('x-dynamo-lab-worker') ?? '');
    assert.equal(response.headers.get('x-dynamo-lab-mode'), 'kv');
    assert.ok(Number(response.headers.get('x-dynamo-lab-overlap-blocks')) >= 0);
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(text.length > 0, 'streamed some text');
    assert.ok(usage && usage.prompt_tokens > 300, `usage ${JSON.stringify(usage)}`);
  }
  assert.ok(
    served.every((w) => w === served[0] && w.startsWith('worker-')),
    `served by ${served.join(', ')}`,
  );

  // /debug/decisions shows why: the chosen worker had the overlap, and the cost formula holds.
  const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=3`)).json()) as { decisions: Array<Record<string, any>> };
  assert.equal(decisions.length, 3);
  const newest = decisions[0]!;
  assert.equal(newest.chosen, served[2]);
  assert.equal(newest.mode, 'kv');
  assert.equal(newest.block_size, 16);
  const chosen = newest.workers.find((w: any) => w.id === newest.chosen);
  assert.ok(chosen.overlap_blocks > 20, `overlap ${chosen.overlap_blocks}`);
  for (const w of newest.workers) {
    const { prefill_load_scale: s, overlap_score_credit: c } = newest.config;
    const expected = s * Math.max(0, w.potential_prefill_blocks - c * w.overlap_blocks) + w.potential_decode_blocks;
    assert.ok(Math.abs(w.cost - expected) < 1e-6, `cost of ${w.id}: ${w.cost} vs ${expected}`);
  }
  assert.ok(newest.workers.every((w: any) => chosen.cost <= w.cost));
});

test('non-streaming completions report cached tokens; the router records them', async () => {
  const client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'unused' });
  const body = { model: 'Qwen/Qwen2.5-1.5B-Instruct', prompt: `${longContext} Question one.`, max_tokens: 4 };
  await client.completions.create(body);
  const second = await client.completions.create({ ...body, prompt: `${longContext} Question two.` });
  assert.ok((second.usage as any)?.prompt_tokens_details?.cached_tokens > 0);
  const decisions = (await (await fetch(`${router.url}/debug/decisions?limit=1`)).json()) as {
    decisions: Array<{ achieved_cached_tokens?: number; cached_tokens: number }>;
  };
  assert.equal(decisions.decisions[0]!.achieved_cached_tokens, (second.usage as any).prompt_tokens_details.cached_tokens);
});

test('round-robin alternates; /v1/models, /health and /metrics answer', async () => {
  router.setMode('round-robin');
  try {
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${router.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'Qwen/Qwen2.5-1.5B-Instruct', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
      });
      assert.equal(r.status, 200);
      seen.push(r.headers.get('x-dynamo-lab-worker')!);
      await r.arrayBuffer();
    }
    assert.equal(new Set(seen).size, 3, seen.join(','));
  } finally {
    router.setMode('kv');
  }
  const models = (await (await fetch(`${router.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
  assert.deepEqual(
    models.data.map((m) => m.id),
    ['Qwen/Qwen2.5-1.5B-Instruct'],
  );
  assert.equal((await fetch(`${router.url}/health`)).status, 200);
  const metrics = await (await fetch(`${router.url}/metrics`)).text();
  assert.match(metrics, /dynamo_component_router_requests_total\{mode="kv"\} \d+/);
  assert.match(metrics, /dynamo_component_router_kv_hit_rate_bucket/);
  assert.match(metrics, /dynamo_component_kv_cache_events_applied\{.*status="ok"/);
  assert.match(metrics, /dynamo_frontend_worker_active_decode_blocks\{/);
  // Per-worker gauges carry Dynamo's frontend labels or worker_id alone; router-wide ones none.
  assert.match(
    metrics,
    /dynamo_frontend_worker_last_time_to_first_token_seconds\{dp_rank="0",worker_id="[^"]+",worker_type="decode"\} [\d.e-]+/,
  );
  assert.match(metrics, /dynamo_lab_router_worker_achieved_hit_rate\{worker_id="[^"]+"\} [\d.]+/);
  assert.match(metrics, /dynamo_lab_router_worker_circuit_open\{worker_id="[^"]+"\} 0/);
  assert.match(metrics, /dynamo_lab_router_predicted_hit_rate [\d.]+/);
  assert.match(metrics, /dynamo_lab_router_indexed_blocks \d+/);
  // No --router-queue-threshold: no queue gauges.
  assert.doesNotMatch(metrics, /dynamo_frontend_router_queue_pending_requests/);
});

test('bad requests get OpenAI-shaped errors', async () => {
  const post = (path: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${router.url}${path}`, { method: 'POST', headers, body });
  const bad = await post('/v1/chat/completions', '{nope');
  assert.equal(bad.status, 400);
  const err = (await bad.json()) as { error: { message: string; type: string; code: unknown } };
  assert.match(err.error.message, /not valid JSON/);
  assert.equal(err.error.type, 'invalid_request_error');
  const noMsgs = await post('/v1/chat/completions', JSON.stringify({ model: 'm' }));
  assert.equal(noMsgs.status, 400);
  assert.match(((await noMsgs.json()) as any).error.message, /messages/);
  const missing = await fetch(`${router.url}/v1/nothing`);
  assert.equal(missing.status, 404);
  assert.ok(((await missing.json()) as any).error.message);
  const huge = await post('/v1/completions', JSON.stringify({ prompt: 'x'.repeat(9 * 1024 * 1024) }));
  assert.equal(huge.status, 413);
});

test('a worker that is down before the first byte is skipped, not surfaced to the client', async () => {
  const extra = await SimWorker.start({ id: 'doomed', blockSize: 16, port: 0, speedup: 0 });
  router.addWorker({ id: extra.id, url: extra.url });
  await extra.close();
  router.setMode('round-robin');
  try {
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${router.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: `q${i}` }], max_tokens: 2 }),
      });
      assert.equal(r.status, 200, await r.clone().text());
      assert.notEqual(r.headers.get('x-dynamo-lab-worker'), 'doomed');
      await r.arrayBuffer();
    }
  } finally {
    router.setMode('kv');
    router.removeWorker('doomed');
  }
});
