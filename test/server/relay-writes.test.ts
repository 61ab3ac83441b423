/**
 * How the router passes a worker's stream on, byte for byte and in time: the response headers go
 * to the client as soon as the worker's come, before any token (as vLLM and Dynamo send them);
 * what the worker sends with its headers, or with the end of its body, goes on with them; the
 * client's body is exactly the worker's events, in order, whichever way the worker split them.
 * The worker here is a minimal OpenAI SSE server whose pace the test controls.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RouterServer } from '../../src/server/router-server.js';
import { routerBeforeScriptedWorker, waitFor } from './helpers.js';

const MODEL = 'Qwen/Qwen2.5-1.5B-Instruct';
const ev = (o: object) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', model: MODEL, ...o })}\n\n`;
const EVENTS = [
  ev({ choices: [{ index: 0, delta: { role: 'assistant', content: 'Hello' }, finish_reason: null }] }),
  ev({ choices: [{ index: 0, delta: { content: ' world' }, finish_reason: null }] }),
  ev({ choices: [{ index: 0, delta: {}, finish_reason: 'length' }] }),
  'data: [DONE]\n\n',
];

/** How the worker sends a stream: headers alone and the events when released, or everything at once. */
let mode: 'held' | 'at-once' | 'split' = 'held';
let release: () => void = () => {};
let router: RouterServer;
let stop: () => Promise<void> = async () => {};

before(async () => {
  ({ router, close: stop } = await routerBeforeScriptedWorker((req, res) => {
    req.resume();
    if (req.url === '/health') return void res.end('{"status":"ok"}');
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (mode === 'at-once') {
        // Headers, every event and the end of the body in one write.
        res.end(EVENTS.join(''));
      } else if (mode === 'split') {
        // Events cut at odd places, the last piece with the end of the body.
        const all = EVENTS.join('');
        res.flushHeaders();
        res.write(all.slice(0, 7));
        res.write(all.slice(7, 150));
        setImmediate(() => res.end(all.slice(150)));
      } else {
        res.flushHeaders();
        release = () => {
          for (const e of EVENTS.slice(0, -1)) res.write(e);
          res.end(EVENTS.at(-1));
        };
      }
    });
  }));
});

after(() => stop());

const ask = () =>
  fetch(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true }),
  });

test('the headers reach the client while the worker has not sent a token yet', async () => {
  mode = 'held';
  release = () => {};
  // fetch() resolves on the response headers; the worker holds every event until release().
  let bound: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    ask(),
    new Promise<never>((_, reject) => {
      bound = setTimeout(() => reject(new Error('no response headers while the worker held its first token')), 20_000);
    }),
  ]).finally(() => clearTimeout(bound));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-dynamo-lab-worker'), 'w');
  assert.match(r.headers.get('content-type') ?? '', /text\/event-stream/);
  release();
  assert.equal(await r.text(), EVENTS.join(''));
});

test('a worker that sends headers, events and end in one write: the client gets every event once, in order', async () => {
  mode = 'at-once';
  for (let i = 0; i < 5; i++) {
    const r = await ask();
    assert.equal(await r.text(), EVENTS.join(''));
  }
  const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=5`)).json()) as {
    decisions: Array<{ status?: string; ttft_ms?: number }>;
  };
  assert.deepEqual(
    decisions.map((d) => d.status),
    ['ok', 'ok', 'ok', 'ok', 'ok'],
  );
  assert.ok(decisions.every((d) => typeof d.ttft_ms === 'number'));
});

test('events split at odd places, the last piece with the end of the body: the same bytes, and nothing stays booked', async () => {
  mode = 'split';
  for (let i = 0; i < 5; i++) {
    const r = await ask();
    assert.equal(await r.text(), EVENTS.join(''));
  }
  await waitFor(() => router.workersView().workers[0]!.active_requests === 0 || undefined, 'the bookings freed');
});
