/** `dynamo-lab traffic`: the lab's traffic generator as a command, against a real router and simulated workers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxWith } from '../helpers/command-context.js';
import { trafficCommand } from '../../src/cli/commands/traffic.js';
import { UsageError, UserError } from '../../src/base/errors.js';
import { RouterServer } from '../../src/server/router-server.js';
import { startSims } from './helpers.js';

const defaults = {
  url: 'http://127.0.0.1:1',
  requests: '30',
  concurrency: '3',
  prompt: 'Request {i}',
  'max-tokens': '4',
  model: 'Qwen/Qwen2.5-1.5B-Instruct',
};

test('sends N requests C at a time and reports the spread (JSON)', async () => {
  const workers = await startSims(2);
  const router = await RouterServer.start({
    workers: workers.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) })),
    blockSize: 16,
    port: 0,
    mode: 'round-robin',
    seed: 1,
  });
  try {
    const { ctx, out } = ctxWith(new AbortController().signal, true);
    assert.equal(
      await trafficCommand.run({ ...defaults, url: router.url, requests: '6', concurrency: '2', prompt: 'Request {i}: é 世界' }, [], ctx),
      0,
    );
    const doc = JSON.parse(out());
    assert.equal(doc.ok, 6);
    assert.equal(doc.failed, 0);
    assert.deepEqual(doc.per_worker, { 'worker-0': 3, 'worker-1': 3 });
    const served = workers.map((w) => w.engine.stats().requestsFinished);
    assert.deepEqual(served, [3, 3]);
  } finally {
    await router.close();
    await Promise.all(workers.map((w) => w.close()));
  }
});

test('bad flags are usage errors; an unreachable endpoint is a user error', async () => {
  const { ctx } = ctxWith(new AbortController().signal, false);
  await assert.rejects(trafficCommand.run({ ...defaults, url: 'not a url' }, [], ctx), UsageError);
  await assert.rejects(trafficCommand.run({ ...defaults, requests: '0' }, [], ctx), UsageError);
  await assert.rejects(
    trafficCommand.run({ ...defaults, requests: '2' }, [], ctx),
    (e: unknown) => e instanceof UserError && /2 of 2 requests failed/.test((e as Error).message),
  );
});
