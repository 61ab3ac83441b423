import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sseData } from '../../src/base/sse.js';

async function collect(chunks: Array<Uint8Array | string>): Promise<string[]> {
  async function* body() {
    for (const c of chunks) yield c;
  }
  const out: string[] = [];
  for await (const d of sseData(body())) out.push(d);
  return out;
}

test('a multi-byte UTF-8 character split across chunks stays whole', async () => {
  const payload = JSON.stringify({ choices: [{ delta: { content: 'héllo 世界 🙂' } }] });
  const bytes = new TextEncoder().encode(`data: ${payload}\n\ndata: [DONE]\n\n`);
  // Cut inside 'é' (2 bytes), inside '世' (3 bytes) and inside '🙂' (4 bytes).
  const cuts = [bytes.indexOf(0xc3) + 1, bytes.indexOf(0xe4) + 2, bytes.indexOf(0xf0) + 3];
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const c of cuts) {
    chunks.push(bytes.subarray(from, c));
    from = c;
  }
  chunks.push(bytes.subarray(from));
  const got = await collect(chunks);
  assert.deepEqual(got, [payload]);
  assert.equal(JSON.parse(got[0]!).choices[0].delta.content, 'héllo 世界 🙂');
});

test('framing: CRLF, comments, multi-line data, a last event without its blank line', async () => {
  const got = await collect([
    ': keep-alive\r\n\r\ndata: {"a":',
    '1}\r\n\r\n',
    'data: line1\ndata: line2\n\n',
    'data: [DONE]\n\n',
    'data: tail',
  ]);
  assert.deepEqual(got, ['{"a":1}', 'line1\nline2', 'tail']);
});

test('every byte in its own chunk', async () => {
  const bytes = new TextEncoder().encode('data: ü€\n\n');
  const got = await collect([...bytes].map((b) => Uint8Array.of(b)));
  assert.deepEqual(got, ['ü€']);
});
