import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseTokenScanner } from '../../src/server/sse-tokens.js';

const ev = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const role = ev({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
const tok = (t: string) => ev({ choices: [{ index: 0, delta: { content: t }, finish_reason: null }] });
const fin = ev({ choices: [{ index: 0, delta: {}, finish_reason: 'length' }] });
const usage = ev({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 3 } });

test('an empty role chunk is not the first token; the first content chunk is', () => {
  const s = new SseTokenScanner();
  assert.equal(s.push(role, 1), false);
  assert.equal(s.firstAt, 0);
  assert.equal(s.push(tok('Hi'), 2), true);
  assert.equal(s.firstAt, 2);
  assert.equal(s.push(tok(' there') + tok('!'), 3), false);
  s.push(fin + usage + 'data: [DONE]\n\n', 4);
  assert.equal(s.tokenEvents, 3);
  assert.equal(s.lastAt, 3);
});

test('role and first token in one chunk (vLLM style) and events split across chunks', () => {
  const s = new SseTokenScanner();
  const all = role + tok('a"b') + tok('\\n') + ev({ choices: [{ index: 0, text: ' x', finish_reason: null }] });
  // Feed it byte by byte: the first token is seen exactly once, at the byte that completes it.
  let firstCalls = 0;
  for (let i = 0; i < all.length; i++) if (s.push(all[i]!, i)) firstCalls++;
  assert.equal(firstCalls, 1);
  assert.equal(s.firstAt, role.length + tok('a"b').length - 1);
  assert.equal(s.tokenEvents, 3);
});

test('a stream that finishes without output still ends prefill at the finish chunk', () => {
  const s = new SseTokenScanner();
  assert.equal(s.push(role, 1), false);
  assert.equal(s.push(fin, 2), true);
  assert.equal(s.tokenEvents, 0);
});
