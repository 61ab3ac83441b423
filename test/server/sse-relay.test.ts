/**
 * The byte-level SSE relay against a plain text reference (the relay as it was before it moved to
 * Buffers: decode every chunk, split on /\r?\n\r?\n/, read the data lines): for any stream of
 * events and any way of cutting it into chunks (inside multi-byte characters too), the bytes sent
 * on, the token events and their times, [DONE] and the usage are the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StringDecoder } from 'node:string_decoder';
import fc from 'fast-check';
import { SseRelay } from '../../src/server/sse-relay.js';
import type { Usage } from '../../src/server/usage.js';

const TOKEN_EVENT = /"(?:content|text|reasoning_content|reasoning)":"[^"]|"tool_calls":\[\{/;
const FINISH_EVENT = /"finish_reason":"/;

class TextRelay {
  private pending = '';
  private readonly decoder = new StringDecoder('utf8');
  sawDone = false;
  tokenEvents = 0;
  firstTokenAt = 0;
  lastTokenAt = 0;
  usage: Usage = {};
  constructor(private readonly passUsage: boolean) {}
  push(chunk: Buffer, now: number): string {
    this.pending += this.decoder.write(chunk);
    let out = '';
    for (;;) {
      const m = /\r?\n\r?\n/.exec(this.pending);
      if (!m) break;
      const ev = this.pending.slice(0, m.index + m[0].length);
      this.pending = this.pending.slice(m.index + m[0].length);
      out += this.event(ev, now);
    }
    return out;
  }
  finish(now: number, failed = false): string {
    this.pending += this.decoder.end();
    const rest = this.pending;
    this.pending = '';
    if (failed || rest.trim() === '') return '';
    return this.event(`${rest}\n\n`, now);
  }
  private event(ev: string, now: number): string {
    let data = '';
    for (const line of ev.split(/\r?\n/)) if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(line[5] === ' ' ? 6 : 5);
    if (data === '') return ev;
    if (data === '[DONE]') {
      this.sawDone = true;
      return ev;
    }
    if (data.includes('"usage"')) {
      try {
        const obj = JSON.parse(data);
        if (obj.usage)
          this.usage = {
            prompt: obj.usage.prompt_tokens,
            completion: obj.usage.completion_tokens,
            cached: obj.usage.prompt_tokens_details?.cached_tokens,
          };
        if (Array.isArray(obj.choices) && obj.choices.length === 0) return this.passUsage ? ev : '';
      } catch {
        // not JSON
      }
    }
    if (TOKEN_EVENT.test(data)) {
      if (this.firstTokenAt === 0) this.firstTokenAt = now;
      this.tokenEvents++;
      this.lastTokenAt = now;
    } else if (this.firstTokenAt === 0 && FINISH_EVENT.test(data)) this.firstTokenAt = now;
    return ev;
  }
}

const TEXTS = ['Hello', ' wörld', '日本語', ' 🙂', '\\"quoted\\"', '', ' a\\nb', 'é'];
const event = fc.oneof(
  fc.constant('data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'),
  fc.constantFrom(...TEXTS).map((t) => `data: {"id":"c","choices":[{"index":0,"delta":{"content":"${t}"}}]}`),
  fc.constantFrom(...TEXTS).map((t) => `data:{"choices":[{"text":"${t}","finish_reason":null}]}`),
  fc.constant('data: {"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}'),
  fc.constant('data: {"choices":[{"index":0,"delta":{"tool_calls":[{"id":"t"}]}}]}'),
  fc.constant('data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'),
  fc.constant(
    'data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}',
  ),
  fc.constant('data: {"choices":[{"text":"x","finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":1}}'),
  fc.constant('data: {"usage": broken'),
  fc.constant('data: [DONE]'),
  fc.constant('data:[DONE]'),
  fc.constant('data:'),
  fc.constant(': keep-alive'),
  fc.constant('event: message\ndata: {"choices":[{"delta":{"content":"ev"}}]}'),
  fc.constant('data: {"choices":[{"delta":\ndata: {"content":"multi"}}]}'),
  fc.constant('id: 7\r\ndata: {"choices":[{"delta":{"content":"crlf"}}]}'),
);
const separator = fc.constantFrom('\n\n', '\r\n\r\n', '\n\r\n', '\r\n\n');

test('the byte relay sends the same bytes and counts the same events as the text reference, however the stream is cut', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(event, separator), { minLength: 0, maxLength: 12 }),
      fc.oneof(fc.constant(''), fc.constant('data: {"choices":[{"delta":{"content":"tail"}}]}'), fc.constant('  \n')),
      fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 8 }),
      fc.boolean(),
      fc.boolean(),
      (events, tail, cutsRaw, passUsage, failed) => {
        const bytes = Buffer.from(events.map(([e, s]) => e + s).join('') + tail, 'utf8');
        const cuts = [...new Set(cutsRaw.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let at = 0;
        for (const c of [...cuts, bytes.length]) {
          if (c > at) chunks.push(bytes.subarray(at, c));
          at = Math.max(at, c);
        }
        const ref = new TextRelay(passUsage);
        const relay = new SseRelay(passUsage);
        let refOut = '';
        const out: Buffer[] = [];
        chunks.forEach((c, i) => {
          refOut += ref.push(c, i + 1);
          out.push(relay.push(c, i + 1));
        });
        // finish() stamps a token in the tail with performance.now(); the reference gets the same clock.
        const before = performance.now();
        refOut += ref.finish(before, failed);
        out.push(relay.finish(failed));
        assert.equal(Buffer.concat(out).toString('utf8'), refOut);
        assert.deepEqual(Buffer.concat(out), Buffer.from(refOut, 'utf8'));
        assert.equal(relay.sawDone, ref.sawDone);
        assert.equal(relay.tokenEvents, ref.tokenEvents);
        assert.deepEqual(relay.usage, ref.usage);
        const t = (x: number) => (x > chunks.length ? 'finish' : x); // finish-time stamps differ by the clock only
        assert.equal(t(relay.firstTokenAt), t(ref.firstTokenAt));
        assert.equal(t(relay.lastTokenAt), t(ref.lastTokenAt));
      },
    ),
    { numRuns: 3000 },
  );
});

test('whole events in one chunk pass on as the very same Buffer (nothing decoded or copied)', () => {
  const relay = new SseRelay(false);
  const chunk = Buffer.from('data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"delta":{"content":"b"}}]}\n\n');
  assert.equal(relay.push(chunk, 1), chunk);
  assert.equal(relay.tokenEvents, 2);
  const usage = Buffer.from('data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\ndata: [DONE]\n\n');
  assert.equal(relay.push(usage, 2).toString(), 'data: [DONE]\n\n', 'the usage chunk the client did not ask for is left out');
  assert.deepEqual(relay.usage, { prompt: 3, completion: 2, cached: undefined });
  assert.ok(relay.sawDone);
});
