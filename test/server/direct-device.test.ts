/**
 * `--mode direct` and `--mode device-aware-weighted` over HTTP against real simulated workers
 * (and the official openai client for the nvext field).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { SimWorker } from '../../src/sim/index.js';
import { RouterServer } from '../../src/server/router-server.js';
import { routerCommand } from '../../src/cli/commands/router.js';
import { UsageError } from '../../src/base/errors.js';
import { ctxWith } from '../helpers/command-context.js';
import { startSims, SYSTEM_PROMPT, waitFor } from './helpers.js';

const inproc = (sims: SimWorker[], extra: Array<Record<string, unknown>> = []) =>
  sims.map((w, i) => ({ id: w.id, url: w.url, onKvEvent: (l: Parameters<SimWorker['onKvEvent']>[0]) => w.onKvEvent(l), ...extra[i] }));

async function complete(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ prompt: SYSTEM_PROMPT, max_tokens: 2, ...body }),
  });
  const json = (await r.json()) as { error?: { message: string; type: string; code: string } };
  return { status: r.status, worker: r.headers.get('x-dynamo-lab-worker'), mode: r.headers.get('x-dynamo-lab-mode'), json };
}

test('direct over HTTP: nvext.backend_instance_id / header / Dynamo worker_id pick the worker; clear 400 / 404 otherwise', async () => {
  const sims = await startSims(3);
  const router = await RouterServer.start({
    workers: inproc(sims, [{ dynamoWorkerId: '7587889123' }]),
    blockSize: 16,
    port: 0,
    mode: 'direct',
    health: false,
  });
  try {
    const missing = await complete(router.url, {});
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error!.code, 'missing_backend_instance_id');
    assert.match(missing.json.error!.message, /nvext\.backend_instance_id .*valid: worker-0 \(worker_id 7587889123\), worker-1, worker-2/);

    const byBody = await complete(router.url, { nvext: { backend_instance_id: 'worker-2' } });
    assert.deepEqual([byBody.status, byBody.worker, byBody.mode], [200, 'worker-2', 'direct']);
    const byHeader = await complete(router.url, {}, { 'x-dynamo-lab-target-worker': 'worker-1' });
    assert.deepEqual([byHeader.status, byHeader.worker], [200, 'worker-1']);
    const byDynamoId = await complete(router.url, { nvext: { backend_instance_id: 7587889123 } });
    assert.deepEqual([byDynamoId.status, byDynamoId.worker], [200, 'worker-0']);
    // Dynamo prefers decode_worker_id over backend_instance_id.
    const byDecode = await complete(router.url, { nvext: { backend_instance_id: 'worker-0', decode_worker_id: 'worker-1' } });
    assert.equal(byDecode.worker, 'worker-1');

    const unknown = await complete(router.url, { nvext: { backend_instance_id: 'worker-9' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error!.code, 'worker_not_found');
    assert.match(unknown.json.error!.message, /no worker "worker-9" .*valid: worker-0 .*worker-1, worker-2/);
    const conflict = await complete(
      router.url,
      { nvext: { backend_instance_id: 'worker-0' } },
      { 'x-dynamo-lab-target-worker': 'worker-1' },
    );
    assert.equal(conflict.status, 400);
    assert.equal(conflict.json.error!.code, 'conflicting_target');
    const huge = await complete(router.url, { nvext: { backend_instance_id: 2 ** 60 } });
    assert.equal(huge.status, 400);
    assert.match(huge.json.error!.message, /as a string/);
    const badRank = await complete(router.url, { nvext: { backend_instance_id: 'worker-0', dp_rank: 3 } });
    assert.equal(badRank.status, 404);
    assert.match(badRank.json.error!.message, /worker-0 dp_rank 3 is not among the candidates/);

    // The official client: nvext as an extra body field.
    const client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'none', maxRetries: 0 });
    const { data, response } = await client.completions
      .create({
        model: 'Qwen/Qwen2.5-1.5B-Instruct',
        prompt: 'hello there',
        max_tokens: 2,
        nvext: { backend_instance_id: 'worker-2' },
      } as never)
      .withResponse();
    assert.equal(response.headers.get('x-dynamo-lab-worker'), 'worker-2');
    assert.ok((data as { choices: unknown[] }).choices.length > 0);

    // Every direct request is booked and recorded like any other decision (all workers' costs shown).
    const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=20`)).json()) as {
      decisions: Array<{ mode: string; chosen: string; workers: unknown[]; status?: string }>;
    };
    // Newest first: the client's, decode_worker_id, worker_id, header, body (rejected requests made none).
    assert.deepEqual(
      decisions.map((d) => d.chosen),
      ['worker-2', 'worker-1', 'worker-0', 'worker-1', 'worker-2'],
    );
    for (const d of decisions) {
      assert.equal(d.mode, 'direct');
      assert.equal(d.workers.length, 3);
    }
    await waitFor(() => router.workersView().workers.every((w) => w.active_requests === 0), 'bookings freed');

    // A named worker that fails is not replaced by another one.
    const before = router.workersView().workers.map((w) => [w.id, w.requests]);
    await sims[2]!.close();
    const down = await complete(router.url, { nvext: { backend_instance_id: 'worker-2' } });
    assert.equal(down.status, 502);
    assert.equal(down.json.error!.code, 'upstream_failed');
    assert.match(down.json.error!.message, /worker worker-2 failed before the first byte .*not sent elsewhere/);
    const after = router.workersView().workers.map((w) => [w.id, w.requests]);
    assert.deepEqual(after.slice(0, 2), before.slice(0, 2), 'no other worker got the request');
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close().catch(() => {})));
  }
});

test('device-aware-weighted over HTTP: the CPU worker gets requests within its budget (ratio 1: every other one in flight)', async () => {
  // Slow decode keeps every request in flight while the next ones are routed.
  const sims = await startSims(2, { speedup: 0.05 });
  const router = await RouterServer.start({
    workers: inproc(sims, [{}, { device: 'cpu' }]),
    blockSize: 16,
    port: 0,
    mode: 'device-aware-weighted',
    nonCpuToCpuRatio: 1,
    health: false,
  });
  const abort = new AbortController();
  try {
    const workers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${router.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: `request ${i}`, max_tokens: 400, stream: true }),
        signal: abort.signal,
      });
      assert.equal(r.status, 200);
      workers.push(r.headers.get('x-dynamo-lab-worker')!);
    }
    // gpu (0 in flight: CPU budget 0), cpu (budget 1), gpu (cpu at budget), cpu (budget 2).
    assert.deepEqual(workers, ['worker-0', 'worker-1', 'worker-0', 'worker-1']);
    const d = (await (await fetch(`${router.url}/debug/decisions?limit=1`)).json()) as { decisions: Array<{ mode: string }> };
    assert.equal(d.decisions[0]!.mode, 'device-aware-weighted');
  } finally {
    abort.abort();
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('router command: --mode direct / device-aware-weighted are accepted; bad device= and ratio are usage errors', async () => {
  const defaults = {
    host: '127.0.0.1',
    port: '0',
    'block-size': '16',
    'nats-namespace': 'dynamo',
    'nats-component': 'backend',
    'router-session-affinity-ttl-secs': '600',
    'health-interval': '0',
    'router-queue-max': '1024',
    'decision-history': '256',
    'max-sessions': '100000',
    'max-body-bytes': '8388608',
    'discover-ports': '8000,5557',
  };
  const { ctx } = ctxWith(new AbortController().signal, true);
  await assert.rejects(
    routerCommand.run({ ...defaults, mode: 'device-aware-weighted', worker: ['id=a,url=http://127.0.0.1:9,device=tpu'] }, [], ctx),
    (e: unknown) => e instanceof UsageError && /device must be cpu or cuda, got "tpu"/.test(e.message),
  );
  const old = process.env.DYN_ENCODER_CUDA_TO_CPU_RATIO;
  process.env.DYN_ENCODER_CUDA_TO_CPU_RATIO = '0';
  try {
    await assert.rejects(
      routerCommand.run({ ...defaults, mode: 'device-aware-weighted', worker: ['id=a,url=http://127.0.0.1:9,device=cpu'] }, [], ctx),
      (e: unknown) => e instanceof UsageError && /DYN_ENCODER_CUDA_TO_CPU_RATIO must be a whole number >= 1/.test(e.message),
    );
  } finally {
    if (old === undefined) delete process.env.DYN_ENCODER_CUDA_TO_CPU_RATIO;
    else process.env.DYN_ENCODER_CUDA_TO_CPU_RATIO = old;
  }
  await assert.rejects(
    routerCommand.run({ ...defaults, mode: 'directly', sim: '1' }, [], ctx),
    (e: unknown) => e instanceof UsageError && /direct, device-aware-weighted/.test(e.message),
  );
  await assert.rejects(
    routerCommand.run({ ...defaults, mode: 'kv', sim: '1', 'router-host-cache-hit-weight': '1.5' }, [], ctx),
    (e: unknown) => e instanceof UsageError && /router-host-cache-hit-weight/.test(e.message),
  );
});
