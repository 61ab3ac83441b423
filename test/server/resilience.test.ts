/**
 * Resilience of the router in front of real simulated workers: retries before the first byte
 * when a worker is killed mid-run, active health checks taking a worker out and back in,
 * 503 / 529 when every worker is down / busy, the admin API and session affinity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimWorker } from '../../src/sim/index.js';
import { RouterServer } from '../../src/server/router-server.js';
import { chat, sleep, startSims, SYSTEM_PROMPT, waitFor } from './helpers.js';

const inproc = (sims: SimWorker[]) =>
  sims.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l: Parameters<SimWorker['onKvEvent']>[0]) => w.onKvEvent(l) }));

test('killing a worker mid-run: requests that had not started streaming all succeed elsewhere', async () => {
  const sims = await startSims(4, { speedup: 1 });
  const router = await RouterServer.start({
    workers: inproc(sims),
    blockSize: 16,
    port: 0,
    mode: 'round-robin',
    health: { intervalMs: 100 },
  });
  try {
    // Non-streaming: nothing reaches the client before the worker finishes, so every request
    // on the killed worker is still retryable.
    const pending = Array.from({ length: 16 }, (_, i) =>
      chat(router.url, `question ${i}: ${'tell me about trains. '.repeat(10)}`, { maxTokens: 64 }),
    );
    // Kill worker-1 once requests are on it (routing waits for the prompts to be tokenized).
    await waitFor(async () => {
      const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=64`)).json()) as {
        decisions: Array<{ chosen: string }>;
      };
      return decisions.some((d) => d.chosen === 'worker-1');
    }, 'a request routed to worker-1');
    await sims[1]!.close();
    const responses = await Promise.all(pending);
    const statuses = await Promise.all(
      responses.map(async (r) => `${r.status} ${r.headers.get('x-dynamo-lab-worker')} ${r.status === 200 ? '' : await r.text()}`),
    );
    assert.ok(
      responses.every((r) => r.status === 200),
      statuses.join('\n'),
    );
    assert.ok(
      responses.every((r) => r.headers.get('x-dynamo-lab-worker') !== 'worker-1'),
      statuses.join('\n'),
    );
    for (const r of responses) assert.ok(((await r.json()) as any).choices[0].message.content.length > 0);
    const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=64`)).json()) as {
      decisions: Array<{ chosen: string; attempt: number; status: string }>;
    };
    const retried = decisions.filter((d) => d.chosen === 'worker-1' && d.status === 'retried');
    assert.ok(
      retried.length >= 1,
      `some requests were on worker-1 when it died: ${JSON.stringify(decisions.map((d) => [d.chosen, d.attempt, d.status]))}`,
    );
    assert.ok(decisions.some((d) => d.attempt === 2));
    const metrics = await (await fetch(`${router.url}/metrics`)).text();
    assert.match(metrics, /dynamo_lab_router_retries_total\{worker_id="worker-1"\} \d+/);
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('health checks take a dead worker out of routing and bring it back when it answers again', async () => {
  const sims = await startSims(3);
  const lines: string[] = [];
  const router = await RouterServer.start({
    workers: inproc(sims),
    blockSize: 16,
    port: 0,
    mode: 'round-robin',
    health: { intervalMs: 50, timeoutMs: 500, failuresToDown: 2 },
    log: (l) => lines.push(l),
  });
  let revived: SimWorker | undefined;
  try {
    const port = sims[2]!.port;
    await sims[2]!.close();
    await waitFor(() => router.workersView().workers.find((w) => w.id === 'worker-2')!.healthy === false, 'worker-2 to be marked down');
    // A refused connection is a gone process: one failed check takes it out.
    assert.ok(
      lines.some((l) => /worker worker-2 failed 1 health check\(s\) \(.*ECONNREFUSED.*taken out of routing/.test(l)),
      lines.join('\n'),
    );
    for (let i = 0; i < 6; i++) {
      const r = await chat(router.url, `q${i}`);
      assert.equal(r.status, 200);
      assert.notEqual(r.headers.get('x-dynamo-lab-worker'), 'worker-2');
      await r.arrayBuffer();
    }
    const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=1`)).json()) as {
      decisions: Array<{ attempt: number; excluded: Array<{ id: string; reason: string }> }>;
    };
    assert.equal(decisions[0]!.attempt, 1, 'no retry needed: the dead worker is not even tried');
    assert.match(decisions[0]!.excluded.find((e) => e.id === 'worker-2')!.reason, /^down/);
    const h = (await (await fetch(`${router.url}/health`)).json()) as { healthy_workers: number };
    assert.equal(h.healthy_workers, 2);

    revived = await SimWorker.start({ id: 'worker-2', blockSize: 16, port, speedup: 0 });
    await waitFor(() => router.workersView().workers.find((w) => w.id === 'worker-2')!.healthy, 'worker-2 to come back');
    assert.ok(lines.some((l) => /worker worker-2 is healthy again/.test(l)));
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const r = await chat(router.url, `again ${i}`);
      seen.add(r.headers.get('x-dynamo-lab-worker')!);
      await r.arrayBuffer();
    }
    assert.ok(seen.has('worker-2'), [...seen].join(','));
    const metrics = await (await fetch(`${router.url}/metrics`)).text();
    assert.match(metrics, /dynamo_lab_router_worker_health_transitions_total\{to="down",worker_id="worker-2"\} 1/);
    assert.match(metrics, /dynamo_lab_router_worker_healthy\{worker_id="worker-2"\} 1/);
  } finally {
    await router.close();
    await revived?.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('503 with a clear message when every worker is down', async () => {
  const sims = await startSims(2);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, health: { intervalMs: 50, failuresToDown: 1 } });
  try {
    await Promise.all(sims.map((w) => w.close()));
    // Before the health checks notice, the router tries both and gives up with 503.
    const first = await chat(router.url, 'anyone?');
    assert.equal(first.status, 503);
    const e1 = ((await first.json()) as any).error;
    assert.match(e1.code, /all_workers_failed|no_healthy_workers/);
    await waitFor(() => router.workersView().workers.every((w) => !w.healthy), 'both workers down');
    const r = await chat(router.url, 'anyone now?');
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    const e = ((await r.json()) as any).error;
    assert.equal(e.code, 'no_healthy_workers');
    assert.equal(e.type, 'server_error');
    assert.match(e.message, /no healthy workers \(worker-0: down .*; worker-1: down/);
    assert.equal((await fetch(`${router.url}/health`)).status, 503);
  } finally {
    await router.close();
  }
});

test('529 (Dynamo overload) when every worker is over the busy threshold', async () => {
  // Slow prefill (speedup 0.02): requests stay in prefill long enough to count as busy.
  const sims = await startSims(2, { speedup: 0.02 });
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, busy: { activePrefillTokensThreshold: 100 } });
  const abort = new AbortController();
  try {
    const long = (q: string) =>
      fetch(`${router.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: `${SYSTEM_PROMPT} ${q}`, max_tokens: 2 }),
        signal: abort.signal,
      }).catch(() => undefined);
    const a = long('a');
    await waitFor(() => router.workersView().workers.filter((w) => w.busy).length === 1, 'one busy worker');
    const b = long('b');
    await waitFor(() => router.workersView().workers.every((w) => w.busy), 'both workers busy');
    const r = await chat(router.url, 'one more');
    assert.equal(r.status, 529);
    const e = ((await r.json()) as any).error;
    assert.equal(e.code, 'all_workers_busy');
    assert.match(e.message, /all workers are busy; retry later \(worker-0: busy: active prefill tokens \d+ > 100/);
    const metrics = await (await fetch(`${router.url}/metrics`)).text();
    assert.match(metrics, /dynamo_lab_router_rejected_total\{reason="busy"\} 1/);
    abort.abort();
    await Promise.all([a, b]);
  } finally {
    abort.abort();
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('admin API: add and remove workers at runtime, protected by the API key', async () => {
  const sims = await startSims(2);
  const router = await RouterServer.start({
    workers: inproc(sims.slice(0, 1)),
    blockSize: 16,
    port: 0,
    mode: 'round-robin',
    apiKey: 'sekret',
  });
  const auth = { authorization: 'Bearer sekret', 'content-type': 'application/json' };
  try {
    const noKey = await fetch(`${router.url}/admin/workers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: sims[1]!.url }),
    });
    assert.equal(noKey.status, 401);
    const bad = await fetch(`${router.url}/admin/workers`, { method: 'POST', headers: auth, body: JSON.stringify({ url: 'not a url' }) });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as any).error.message, /not a URL/);
    const added = await fetch(`${router.url}/admin/workers`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ id: 'extra', url: sims[1]!.url, worker_id: '12345' }),
    });
    assert.equal(added.status, 201, await added.clone().text());
    assert.equal(((await added.json()) as any).worker.id, 'extra');
    const dup = await fetch(`${router.url}/admin/workers`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ id: 'extra', url: sims[1]!.url }),
    });
    assert.equal(dup.status, 409);
    assert.equal((await fetch(`${router.url}/debug/workers`)).status, 401, '/debug/* needs the key too');
    const view = (await (await fetch(`${router.url}/debug/workers`, { headers: { authorization: 'Bearer sekret' } })).json()) as {
      workers: Array<{ id: string; dynamo_worker_id?: string }>;
    };
    assert.deepEqual(
      view.workers.map((w) => w.id),
      ['worker-0', 'extra'],
    );
    assert.equal(view.workers[1]!.dynamo_worker_id, '12345');
    const seen = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const r = await chat(router.url, `q${i}`, { headers: { authorization: 'Bearer sekret' } });
      assert.equal(r.status, 200);
      seen.add(r.headers.get('x-dynamo-lab-worker')!);
      await r.arrayBuffer();
    }
    assert.deepEqual([...seen].sort(), ['extra', 'worker-0']);
    const del = await fetch(`${router.url}/admin/workers/extra`, { method: 'DELETE', headers: auth });
    assert.equal(del.status, 200);
    assert.deepEqual(((await del.json()) as any).workers, ['worker-0']);
    assert.equal((await fetch(`${router.url}/admin/workers/extra`, { method: 'DELETE', headers: auth })).status, 404);
    assert.equal((await fetch(`${router.url}/admin/workers/worker-0`, { method: 'DELETE' })).status, 401);
    const r = await chat(router.url, 'after', { headers: { authorization: 'Bearer sekret' } });
    assert.equal(r.headers.get('x-dynamo-lab-worker'), 'worker-0');
    await r.arrayBuffer();
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('session affinity: X-Dynamo-Session-ID pins a session to its worker until the TTL runs out', async () => {
  const sims = await startSims(3);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, seed: 11, sessionAffinityTtlMs: 400 });
  try {
    const first = await chat(router.url, 'hello, I am a new session', { headers: { 'x-dynamo-session-id': 's1' } });
    const pinned = first.headers.get('x-dynamo-lab-worker')!;
    await first.arrayBuffer();
    // Another worker caches a long prefix (sent to it directly; the router sees its KV events).
    const holder = sims.find((w) => w.id !== pinned)!;
    const warm = await chat(holder.url, 'warm', { system: SYSTEM_PROMPT });
    await warm.arrayBuffer();
    // Without a session, the prefix wins; with s1 the request stays on the pinned worker.
    const free = await chat(router.url, 'free request', { system: SYSTEM_PROMPT });
    assert.equal(
      free.headers.get('x-dynamo-lab-worker'),
      holder.id,
      JSON.stringify(await (await fetch(`${router.url}/debug/decisions?limit=1`)).json()),
    );
    await free.arrayBuffer();
    for (const header of ['x-dynamo-session-id', 'x-dynamo-lab-session']) {
      const r = await chat(router.url, `session request via ${header}`, { system: SYSTEM_PROMPT, headers: { [header]: 's1' } });
      assert.equal(r.headers.get('x-dynamo-lab-worker'), pinned, header);
      await r.arrayBuffer();
    }
    const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=1`)).json()) as {
      decisions: Array<{ pinned?: boolean; session?: string }>;
    };
    assert.equal(decisions[0]!.pinned, true);
    assert.equal(decisions[0]!.session, 's1');
    // After the TTL the session is free again: a prefix only the holder has cached wins.
    const other = 'Another long context, about harbour tides and ferry crossings. '.repeat(30);
    await (await chat(holder.url, 'warm', { system: other })).arrayBuffer();
    // The one wait on time itself: the session's 400 ms TTL (since its last use above) must run
    // out. There is no state to poll (entries expire when next looked up), and a loaded machine
    // only makes the wait longer, never too short.
    await sleep(450);
    const after = await chat(router.url, 'session request after the TTL', { system: other, headers: { 'x-dynamo-session-id': 's1' } });
    assert.equal(after.headers.get('x-dynamo-lab-worker'), holder.id, 'the expired session follows the cache again');
    await after.arrayBuffer();
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});
