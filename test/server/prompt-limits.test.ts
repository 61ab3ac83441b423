/** Prompt limits in the router's tokenizer entry point: OpenAI-shaped 413 / 400 before routing. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RouterServer } from '../../src/server/router-server.js';
import type { SimWorker } from '../../src/sim/index.js';
import { chat, startSims, waitFor } from './helpers.js';

let sims: SimWorker[] = [];
let router: RouterServer;

before(async () => {
  sims = await startSims(1);
  router = await RouterServer.start({
    workers: sims.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) })),
    blockSize: 16,
    port: 0,
    health: false,
    promptLimits: { maxTokens: 200, maxChars: 20_000 },
  });
});

after(async () => {
  await router?.close();
  await Promise.all(sims.map((w) => w.close()));
});

test('a prompt over the token limit is 400 context_length_exceeded, over the character limit 413; neither reaches a worker', async () => {
  // The router's one-time GET /health at registration is an HTTP request too: let it land first.
  await waitFor(() => router.workersView().workers[0]?.prompt_ids === 'nvext.token_data_b64', 'the router identifying its worker');
  const before = sims[0]!.stats().httpRequests;
  const long = await chat(router.url, 'word '.repeat(400));
  assert.equal(long.status, 400);
  const e1 = (await long.json()) as { error: { code: string; message: string; type: string } };
  assert.equal(e1.error.code, 'context_length_exceeded');
  assert.equal(e1.error.type, 'invalid_request_error');
  assert.match(e1.error.message, /maximum context length is 200 tokens.*\d+ tokens/);
  const huge = await chat(router.url, 'x'.repeat(30_000));
  assert.equal(huge.status, 413);
  const e2 = (await huge.json()) as { error: { message: string } };
  assert.match(e2.error.message, /characters long, over this server's limit of 20000/);
  assert.equal(sims[0]!.stats().httpRequests, before, 'rejected before routing');
  const ok = await chat(router.url, 'short question');
  assert.equal(ok.status, 200);
});
