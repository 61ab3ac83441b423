/**
 * Dynamo 1.6 router features and kv-ttft over HTTP, against real simulated workers: router
 * queueing instead of 529, the policy-config file and approximate-mode flags from the command
 * line, and kv-ttft's predictions in /debug/decisions, fed by the TTFTs the router observes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { SimWorker } from '../../src/sim/index.js';
import { RouterServer } from '../../src/server/router-server.js';
import { withBackendInstanceId } from '../../src/server/request-body.js';
import { routerCommand } from '../../src/cli/commands/router.js';
import type { ParsedValues } from '../../src/cli/command.js';
import { UserError, UsageError } from '../../src/base/errors.js';
import { ctxWith, optionDefaults } from '../helpers/command-context.js';
import { startSims, SYSTEM_PROMPT, waitFor } from './helpers.js';

const inproc = (sims: SimWorker[]) =>
  sims.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l: Parameters<SimWorker['onKvEvent']>[0]) => w.onKvEvent(l) }));

async function metric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

test('--router-queue-threshold: requests wait in the router while every worker is over it, bounded, depth in /metrics', async () => {
  // Slow prefill (speedup 0.02): each long prompt keeps its worker in prefill for about a second.
  const sims = await startSims(2, { speedup: 0.02 });
  const router = await RouterServer.start({
    workers: inproc(sims),
    blockSize: 16,
    port: 0,
    mode: 'round-robin',
    queue: { threshold: 0, maxQueued: 1 },
  });
  const abort = new AbortController();
  try {
    const send = (q: string) =>
      fetch(`${router.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: `${q} ${SYSTEM_PROMPT}`, max_tokens: 2 }),
        signal: abort.signal,
      });
    const a = send('a');
    const b = send('b');
    await waitFor(() => router.workersView().workers.every((w) => w.active_prefill_tokens > 0), 'both workers in prefill');
    assert.equal(await metric(router.url, 'dynamo_frontend_router_queue_pending_requests'), 0);
    const c = send('c'); // waits instead of 529
    await waitFor(async () => (await metric(router.url, 'dynamo_frontend_router_queue_pending_requests')) === 1, 'one request queued');
    const d = await send('d'); // the queue (1) is full
    assert.equal(d.status, 529);
    const e = ((await d.json()) as { error: { code: string; message: string } }).error;
    assert.equal(e.code, 'router_queue_full');
    assert.match(e.message, /router queue is full \(1 waiting\)/);
    const rc = await c;
    assert.equal(rc.status, 200, 'the queued request ran once a worker finished its prefill');
    await rc.arrayBuffer();
    for (const r of await Promise.all([a, b])) {
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
    assert.equal(await metric(router.url, 'dynamo_frontend_router_queue_pending_requests'), 0);
    assert.equal(await metric(router.url, 'dynamo_lab_router_queue_requests_queued'), 1);
    assert.equal(await metric(router.url, 'dynamo_lab_router_queue_rejected'), 1);
  } finally {
    abort.abort();
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('kv-ttft over HTTP: /debug/decisions shows predicted queue / prefill time and coefficients, fitted from observed TTFTs', async () => {
  const sims = await startSims(2, { speedup: 1 });
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, mode: 'kv-ttft' });
  try {
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${router.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'Qwen/Qwen2.5-1.5B-Instruct',
          messages: [
            { role: 'system', content: SYSTEM_PROMPT },
            { role: 'user', content: `question ${i}` },
          ],
          max_tokens: 3,
          stream: true,
        }),
      });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-dynamo-lab-mode'), 'kv-ttft');
      await r.text();
    }
    const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=10`)).json()) as {
      decisions: Array<Record<string, any>>;
    };
    assert.equal(decisions.length, 6);
    const last = decisions[0]!;
    assert.equal(last.mode, 'kv-ttft');
    for (const w of last.workers) {
      for (const k of [
        'overlap_blocks',
        'active_prefill_tokens',
        'active_blocks',
        'potential_prefill_blocks',
        'potential_decode_blocks',
        'cost',
        'predicted_queue_ms',
        'predicted_prefill_ms',
        'predicted_ttft_ms',
      ])
        assert.equal(typeof w[k], 'number', k);
      assert.ok(w.predicted_ttft_ms >= w.predicted_queue_ms);
      assert.deepEqual(Object.keys(w.ttft_model.coefficients), [
        'pass_ms',
        'prefill_ms_per_batch',
        'prefill_quadratic_ms_per_batch',
        'decode_usage_ms',
        'decode_usage2_ms',
        'kv_overcommit_ms',
        'busy_wait_ms',
      ]);
    }
    // The later requests share the system prompt: kv-ttft stays on the worker holding it.
    const chosen = decisions.slice(0, 5).map((d) => d.chosen);
    assert.equal(new Set(chosen).size, 1, chosen.join(','));
    const w = last.workers.find((x: any) => x.id === last.chosen);
    assert.equal(w.ttft_model.observations, 5, 'the router fed back the TTFT of each earlier streamed request');
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

/** The command's defaults, on any free port. */
const defaults: ParsedValues = { ...optionDefaults(routerCommand.options), port: '0' };

async function runJson(values: ParsedValues, body: (url: string) => Promise<void>): Promise<void> {
  const ac = new AbortController();
  const { ctx, out, err } = ctxWith(ac.signal, true);
  const running = routerCommand.run({ ...defaults, ...values }, [], ctx);
  let failed: unknown;
  try {
    await Promise.race([
      waitFor(() => out().includes('\n'), 'the start JSON', 15_000),
      running.then(() => Promise.reject(new Error(`router exited early: ${err()}`))),
    ]);
    await body(JSON.parse(out()).url);
  } catch (e) {
    failed = e;
  }
  ac.abort();
  assert.equal(await running, 0);
  if (failed) throw failed;
}

test('router --router-policy-config: Dynamo parameter names reach the cost; bad files are clear errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-policy-'));
  try {
    const good = join(dir, 'policy.yaml');
    writeFileSync(good, 'overlap_score_credit: 2\nprefill_load_scale: 0.5\nrouter_temperature: 0\n');
    await runJson({ sim: '2', speedup: '0', 'router-policy-config': good }, async (url) => {
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: SYSTEM_PROMPT, max_tokens: 2 }),
      });
      assert.equal(r.status, 200);
      await r.text();
      const { decisions } = (await (await fetch(`${url}/debug/decisions`)).json()) as {
        decisions: Array<{ config: Record<string, number> }>;
      };
      assert.deepEqual(decisions[0]!.config, { overlap_score_credit: 2, prefill_load_scale: 0.5, temperature: 0 });
    });
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'overlap_score_credit: 1\nkv_overlap_score_weight: 2\n');
    const { ctx } = ctxWith(new AbortController().signal, true);
    await assert.rejects(
      routerCommand.run({ ...defaults, sim: '1', 'router-policy-config': bad }, [], ctx),
      (e: unknown) => e instanceof UserError && /unknown key "kv_overlap_score_weight"/.test(e.message),
    );
    await assert.rejects(
      routerCommand.run({ ...defaults, sim: '1', 'router-policy-config': join(dir, 'missing.yaml') }, [], ctx),
      (e: unknown) => e instanceof UserError && /cannot read --router-policy-config .*ENOENT/.test(e.message),
    );
    await assert.rejects(
      routerCommand.run({ ...defaults, sim: '1', 'router-approximate-cache-policy': 'lru' }, [], ctx),
      (e: unknown) => e instanceof UsageError && /apply to approximate mode/.test(e.message),
    );
    await assert.rejects(
      routerCommand.run({ ...defaults, sim: '1', events: 'none', 'router-approximate-cache-policy': 'fifo' }, [], ctx),
      (e: unknown) => e instanceof UsageError && /ttl or lru/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Route `prompt` as a 2-token completion; the overlap (blocks) the router saw on the worker it chose. */
async function overlapOf(url: string, prompt: string): Promise<number> {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: 2 }),
  });
  await r.text();
  return Number(r.headers.get('x-dynamo-lab-overlap-blocks'));
}

test('router --events none --router-ttl-secs: the router forgets routed prompts after the TTL', async () => {
  await runJson({ sim: '2', speedup: '0', events: 'none', 'router-ttl-secs': '1' }, async (url) => {
    const send = () => overlapOf(url, SYSTEM_PROMPT);
    assert.equal(await send(), 0);
    assert.ok((await send()) > 0, 'the first routing decision was remembered');
    // Expiry also runs without traffic (the server's periodic expire): poll the indexed blocks.
    await waitFor(async () => (await metric(url, 'dynamo_lab_router_indexed_blocks')) === 0, 'TTL expiry of the routed blocks', 10_000);
    assert.equal(await send(), 0);
  });
});

test('a step of the wall clock (NTP, a resumed VM) does not expire what the router remembers: it counts elapsed time', async () => {
  await runJson({ sim: '2', speedup: '0', events: 'none', 'router-ttl-secs': '600' }, async (url) => {
    const send = () => overlapOf(url, `clock step ${SYSTEM_PROMPT}`);
    assert.equal(await send(), 0);
    const remembered = await send();
    assert.ok(remembered > 0, 'the first routing decision was remembered');
    // The wall clock jumps an hour ahead, past the 600 s TTL; routing expires TTL blocks as it goes.
    const wall = Date.now;
    Date.now = () => wall() + 3_600_000;
    try {
      assert.equal(await send(), remembered);
    } finally {
      Date.now = wall;
    }
  });
});

test('POST /debug/overlap: what the index holds of a prompt per worker, before and after a request (nothing booked)', async () => {
  const sims = await startSims(2, { speedup: 0 });
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, mode: 'kv' });
  try {
    const messages = [
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'user', content: 'What does the router index?' },
    ];
    const overlap = async () => {
      const r = await fetch(`${router.url}/debug/overlap`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages }),
      });
      assert.equal(r.status, 200);
      return (await r.json()) as { isl_tokens: number; block_size: number; prompt_blocks: number; workers: Record<string, number> };
    };
    const before = await overlap();
    assert.deepEqual(before.workers, { 'worker-0': 0, 'worker-1': 0 });
    assert.equal(before.prompt_blocks, Math.floor(before.isl_tokens / 16));
    assert.ok(before.prompt_blocks >= 4);
    const r = await fetch(`${router.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages, max_tokens: 2 }),
    });
    const served = r.headers.get('x-dynamo-lab-worker')!;
    await r.arrayBuffer();
    const after = await overlap();
    assert.equal(after.workers[served], after.prompt_blocks, 'the serving worker holds every full block of the prompt');
    assert.equal(after.workers[served === 'worker-0' ? 'worker-1' : 'worker-0'], 0);
    assert.equal(router.decisions().length, 1, 'the queries routed nothing');
    assert.equal((await router.overlapOf({ prompt: 'unrelated words' })).workers[served], 0);
    const bad = await fetch(`${router.url}/debug/overlap`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"prompt": 3}',
    });
    assert.equal(bad.status, 400);
    assert.match(
      ((await bad.json()) as { error: { message: string } }).error.message,
      /"prompt" is a number: a completion request needs a string or a non-empty array of token ids/,
    );
  } finally {
    await router.close();
    await Promise.all(sims.map((s) => s.close()));
  }
});

test('dynamoDirect: the chosen worker is named in nvext.backend_instance_id digit for digit; every worker needs its Dynamo id', async () => {
  const id = '17233061588424748156'; // > 2^53: a JS number would round it
  const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }], nvext: { extra_fields: ['worker_id'], backend_instance_id: 1 } };
  const text = withBackendInstanceId(body, id);
  assert.match(text, /"backend_instance_id":17233061588424748156[,}]/);
  assert.deepEqual(JSON.parse(text).nvext.extra_fields, ['worker_id'], 'other nvext fields stay');
  assert.equal(JSON.parse(text).messages[0].content, 'hi');
  assert.match(withBackendInstanceId({ prompt: 'x', nvext: 'junk' }, '5'), /"nvext":\{"backend_instance_id":5\}/);
  assert.throws(() => withBackendInstanceId({}, '12a'), /decimal integer/);
  await assert.rejects(
    RouterServer.start({ workers: [{ id: 'a', url: 'http://127.0.0.1:1' }], blockSize: 16, port: 0, dynamoDirect: true, health: false }),
    /worker a has no Dynamo worker_id: in front of a Dynamo frontend in --router-mode direct every worker needs worker_id=<instance id>/,
  );
});

test('/metrics: the router event-loop delay since the previous scrape (p50, p99, max; ms beyond the sampling interval)', async () => {
  const router = await RouterServer.start({ workers: [], blockSize: 16, port: 0 });
  // A second monitor on this loop ticks in the same timers phase as the router's: its sample count
  // tells when the router's has sampled (a scrape resets the router's, whose next tick only re-arms it).
  const own = monitorEventLoopDelay({ resolution: 10 });
  own.enable();
  const ticks = async (n: number) => {
    const c = own.count;
    await waitFor(() => own.count >= c + n, `${n} monitor ticks`);
  };
  try {
    await waitFor(async () => (await metric(router.url, 'dynamo_lab_router_event_loop_delay_max_seconds')) !== undefined, 'a first period');
    await ticks(2);
    const until = performance.now() + 150;
    while (performance.now() < until);
    await ticks(1);
    const text = await (await fetch(`${router.url}/metrics`)).text(); // one scrape: one period
    const gauge = (q: string) => Number(new RegExp(`^dynamo_lab_router_event_loop_delay_${q}_seconds (\\S+)$`, 'm').exec(text)?.[1]);
    const [p50, p99, max] = [gauge('p50'), gauge('p99'), gauge('max')];
    assert.ok(max >= 0.12 && max < 5, `max delay ${max} s covers the 150 ms block`);
    assert.ok(p50 >= 0 && p50 <= p99 && p99 <= max, `p50 ${p50} <= p99 ${p99} <= max ${max}`);
    // The scrape started a new period: a quiet loop shows no 150 ms delay any more.
    await waitFor(async () => {
      await ticks(3);
      return (await metric(router.url, 'dynamo_lab_router_event_loop_delay_max_seconds'))! < 0.12;
    }, 'a new period');
  } finally {
    own.disable();
    await router.close();
  }
});
