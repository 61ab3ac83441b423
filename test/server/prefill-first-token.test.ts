/**
 * The router books a request's prefill as done at the first generated token, not at the first
 * chunk: a worker that sends an empty role chunk before prefill (not every engine waits like
 * vLLM) keeps its prefill load booked until content arrives, and TTFT times that content.
 * The worker here is a minimal OpenAI SSE server whose pace the test controls.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RouterServer } from '../../src/server/router-server.js';
import { routerBeforeScriptedWorker, waitFor } from './helpers.js';

let router: RouterServer;
let stop: () => Promise<void> = async () => {};
let release: () => void = () => {};
let roleSent = false;

before(async () => {
  ({ router, close: stop } = await routerBeforeScriptedWorker((req, res) => {
    req.resume();
    if (req.url === '/health') return void res.end('{"status":"ok"}');
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const ev = (o: unknown) => res.write(`data: ${JSON.stringify(o)}\n\n`);
    ev({
      id: 'x',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
    });
    roleSent = true;
    release = () => {
      for (const t of ['Hello', ' world'])
        ev({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: t }, finish_reason: null }] });
      ev({
        id: 'x',
        object: 'chat.completion.chunk',
        choices: [{ index: 0, delta: {}, finish_reason: 'length' }],
        usage: { prompt_tokens: 40, completion_tokens: 2, total_tokens: 42 },
      });
      res.end('data: [DONE]\n\n');
    };
  }));
});

after(() => stop());

const prefillTokens = () => router.workersView().workers[0]!.active_prefill_tokens;
const ttftCount = async () =>
  Number(
    /^dynamo_component_router_time_to_first_token_seconds_count (\d+)/m.exec(await (await fetch(`${router.url}/metrics`)).text())?.[1] ?? 0,
  );

test('prefill stays booked after an empty role chunk and is released at the first content token', async () => {
  const ttftBefore = await ttftCount();
  const res = fetch(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'm',
      messages: [{ role: 'user', content: 'count the prefill tokens of this prompt please' }],
      stream: true,
    }),
  });
  await waitFor(() => roleSent, 'the role chunk');
  const r = await res;
  const reader = r.body!.getReader();
  const firstChunk = new TextDecoder().decode((await reader.read()).value);
  assert.match(firstChunk, /"role":"assistant"/);
  // The role chunk went through the router, yet the prefill is still booked.
  assert.ok(prefillTokens() > 0, `prefill booked after the role chunk (got ${prefillTokens()})`);
  assert.equal(await ttftCount(), ttftBefore, 'no TTFT observed for an empty role chunk');
  release();
  let rest = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += new TextDecoder().decode(value);
  }
  assert.match(rest, /Hello/);
  await waitFor(() => prefillTokens() === 0, 'prefill released');
  await waitFor(async () => (await ttftCount()) === ttftBefore + 1, 'one TTFT observation');
});
