/** Unit tests: circuit breaker, worker specs, --events zmq:// parsing, usage extraction, the usage option spliced into bodies. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker } from '../../src/server/breaker.js';
import { parseWorkerSpec, parseZmqEventsFlag, WorkerSpecError } from '../../src/server/worker-spec.js';
import { extractUsage } from '../../src/server/router-server.js';
import { bodyForms, usageOn, withBackendInstanceId, withIdsForPrompt, withUsageOption } from '../../src/server/request-body.js';
import { idsFromBase64 } from '../../src/tokenizer/index.js';
import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from '../../src/base/http.js';

/** A full GC once the current job has ended (a WeakRef holds its target until the end of the job that made it). */
async function collectGarbage(): Promise<void> {
  setFlagsFromString('--expose-gc');
  await new Promise((r) => setImmediate(r));
  (runInNewContext('gc') as () => void)();
}

test('circuit breaker: opens after N failures, lets one trial through after the cool-down', () => {
  const b = new CircuitBreaker({ failureThreshold: 2, cooldownMs: 100 });
  assert.equal(b.state(0), 'closed');
  b.onFailure(0);
  assert.ok(b.allows(0), 'one failure is not enough');
  b.onFailure(10);
  assert.equal(b.state(10), 'open');
  assert.equal(b.allows(50), false);
  assert.equal(b.retryInMs(50), 60);
  assert.equal(b.state(110), 'half-open');
  assert.ok(b.allows(110));
  b.onAttempt(110);
  assert.equal(b.allows(111), false, 'only one trial at a time');
  b.onFailure(120);
  assert.equal(b.state(150), 'open', 'a failed trial reopens');
  b.onAttempt(230);
  b.onSuccess();
  assert.equal(b.state(231), 'closed');
  assert.equal(b.opens, 2);
  b.onFailure(300);
  b.reset();
  b.onFailure(301);
  assert.equal(b.state(301), 'closed', 'reset clears the failure count');
});

test('worker specs: bare URL or key=value list; errors name the problem', () => {
  assert.deepEqual(parseWorkerSpec('http://10.0.0.5:8000/'), { url: 'http://10.0.0.5:8000' });
  assert.deepEqual(
    parseWorkerSpec('id=a,url=http://h:1,zmq=tcp://h:5557,replay=h:5558,worker_id=0x10,kv_blocks=100,max_num_batched_tokens=2048'),
    {
      id: 'a',
      url: 'http://h:1',
      zmq: 'tcp://h:5557',
      replay: 'tcp://h:5558',
      dynamoWorkerId: '16',
      totalKvBlocks: 100,
      maxNumBatchedTokens: 2048,
    },
  );
  assert.equal(parseWorkerSpec('url=http://h:1,worker_id=18446744073709551615').dynamoWorkerId, '18446744073709551615');
  assert.throws(() => parseWorkerSpec('url=http://h:1,worker_id=18446744073709551616'), /out of the u64 range/);
  assert.throws(() => parseWorkerSpec('nope'), WorkerSpecError);
  assert.throws(() => parseWorkerSpec('url=ftp://h'), /must be http/);
  assert.throws(() => parseWorkerSpec('url=http://h:1,colour=red'), /unknown key "colour"/);
  assert.throws(() => parseWorkerSpec('url=http://h:1,replay=tcp://h:2'), /replay= needs zmq=/);
  assert.throws(() => parseWorkerSpec('url=http://h:1,zmq=h'), /not a ZMQ endpoint/);
});

test('--events zmq://host:port[+replay],...', () => {
  assert.deepEqual(parseZmqEventsFlag('zmq://10.0.0.5:5557+5558,10.0.0.6:5557'), [
    { zmq: 'tcp://10.0.0.5:5557', replay: 'tcp://10.0.0.5:5558' },
    { zmq: 'tcp://10.0.0.6:5557' },
  ]);
  assert.deepEqual(parseZmqEventsFlag('zmq://'), []);
  assert.throws(() => parseZmqEventsFlag('zmq://nohost'), /not host:port/);
});

test('usage is read from the tail of an SSE stream or a JSON body', () => {
  const sse =
    'data: {"choices":[]}\n\ndata: {"usage":{"prompt_tokens":320,"completion_tokens":6,"total_tokens":326,"prompt_tokens_details":{"cached_tokens":304}}}\n\ndata: [DONE]\n\n';
  assert.deepEqual(extractUsage(sse), { prompt: 320, completion: 6, cached: 304 });
  assert.deepEqual(extractUsage('{"choices":[]}'), { prompt: undefined, completion: undefined, cached: undefined });
});

test('the upstream body asks for the usage chunk: spliced in when there is no stream_options, else re-serialised', () => {
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.string().filter((k) => k !== 'stream_options' && k !== '__proto__'),
        fc.jsonValue(),
        { minKeys: 1 },
      ),
      fc.option(fc.oneof(fc.constant(null), fc.record({ include_usage: fc.boolean() }), fc.record({ other: fc.integer() })), {
        nil: undefined,
      }),
      fc.constantFrom(undefined, 0, 2, '\t'),
      (fields, streamOptions, indent) => {
        const body: Record<string, unknown> = { ...fields };
        if (streamOptions !== undefined) body.stream_options = streamOptions;
        const raw = Buffer.from(` \n${JSON.stringify(body, null, indent)}`);
        const out = withUsageOption(raw, JSON.parse(raw.toString()));
        const parsed = JSON.parse(out.toString());
        const expected = { ...body, stream_options: { ...(streamOptions ?? {}), include_usage: true } };
        assert.deepEqual(parsed, JSON.parse(JSON.stringify(expected))); // as JSON (-0 is 0)
        if (streamOptions === undefined) assert.ok(Buffer.isBuffer(out), 'spliced, not re-serialised');
      },
    ),
    { numRuns: 500 },
  );
  assert.deepEqual(JSON.parse(withUsageOption(Buffer.from('{}'), {}).toString()), { stream_options: { include_usage: true } });
});

test("a body with the router's token ids in place of the prompt: no messages or prompt, the client's other fields, the ids as nvext.token_data or token_data_b64", () => {
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.string().filter((k) => k !== 'nvext' && k !== 'stream_options' && k !== '__proto__'),
        fc.jsonValue(),
      ),
      fc.option(fc.oneof(fc.constant([{ role: 'user', content: 'a long prompt ☃' }]), fc.string()), { nil: undefined }),
      fc.option(
        fc.oneof(
          fc.constant(null),
          fc.record({ agent_hints: fc.record({ osl: fc.nat() }) }),
          fc.record({ token_data: fc.constant([9]), other: fc.string() }),
          fc.record({ token_data_b64: fc.constant('CQAAAA==') }),
        ),
        { nil: undefined },
      ),
      fc.option(fc.record({ include_usage: fc.boolean(), other: fc.integer() }), { nil: undefined }),
      fc.boolean(),
      fc.uint32Array({ minLength: 1, maxLength: 300 }),
      fc.constantFrom('json' as const, 'base64' as const, 'in-process' as const),
      (fields, prompt, nvext, streamOptions, usage, ids, encoding) => {
        const body: Record<string, unknown> = { ...fields };
        if (prompt !== undefined) body[typeof prompt === 'string' ? 'prompt' : 'messages'] = prompt;
        if (nvext !== undefined) body.nvext = nvext;
        if (streamOptions !== undefined) body.stream_options = streamOptions;
        const out = withIdsForPrompt(body, usage, encoding === 'in-process' ? undefined : { tokens: ids, encoding });
        const parsed = JSON.parse(out.toString());
        if (encoding === 'base64') {
          // The ids' little-endian bytes, read back by hand and the way the sim reads them.
          const bytes = Buffer.from(parsed.nvext.token_data_b64 as string, 'base64');
          assert.deepEqual(
            Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readUInt32LE(4 * i)),
            [...ids],
          );
          assert.deepEqual([...(idsFromBase64(parsed.nvext.token_data_b64) as Uint32Array)], [...ids]);
          parsed.nvext.token_data_b64 = [...ids];
        }
        const { messages: _m, prompt: _p, ...rest } = body;
        const expected: Record<string, unknown> = { ...rest };
        if (usage) expected.stream_options = { ...streamOptions, include_usage: true };
        // The client's own ids (either field) are never sent on; the router's are, unless handed over in process.
        const {
          token_data: _a,
          token_data_b64: _b,
          ...clientNvext
        } = (nvext && typeof nvext === 'object' ? nvext : {}) as Record<string, unknown>;
        if (encoding !== 'in-process')
          expected.nvext = { ...clientNvext, [encoding === 'json' ? 'token_data' : 'token_data_b64']: [...ids] };
        else if (nvext && typeof nvext === 'object') expected.nvext = clientNvext;
        assert.deepEqual(parsed, JSON.parse(JSON.stringify(expected)));
      },
    ),
    { numRuns: 300 },
  );
});

test('the forms of the body kept while a request streams: the same bytes as from the whole body, for every route', () => {
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.string().filter((k) => !['nvext', 'stream_options', 'messages', 'prompt', '__proto__'].includes(k)),
        fc.jsonValue(),
        { minKeys: 1 },
      ),
      fc.oneof(fc.constant([{ role: 'user', content: 'a long prompt ☃' }]), fc.string()),
      fc.option(fc.oneof(fc.constant(null), fc.record({ include_usage: fc.boolean() }), fc.record({ other: fc.integer() })), {
        nil: undefined,
      }),
      fc.option(fc.record({ agent_hints: fc.record({ osl: fc.nat() }) }), { nil: undefined }),
      fc.boolean(),
      fc.boolean(),
      (fields, prompt, streamOptions, nvext, wantUsage, dynamoDirect) => {
        const body: Record<string, unknown> = { ...fields, [typeof prompt === 'string' ? 'prompt' : 'messages']: prompt };
        if (streamOptions !== undefined) body.stream_options = streamOptions;
        if (nvext !== undefined) body.nvext = nvext;
        const raw = Buffer.from(JSON.stringify(body));
        const forms = bodyForms(raw, JSON.parse(raw.toString()), wantUsage, dynamoDirect);
        const asJson = (b: Buffer | string) => JSON.parse(b.toString());
        assert.deepEqual(asJson(forms.asSent()), asJson(wantUsage ? withUsageOption(raw, body) : raw));
        const ids = { tokens: Uint32Array.of(1, 2, 3), encoding: 'json' as const };
        assert.deepEqual(asJson(withIdsForPrompt(forms.rest, wantUsage, ids)), asJson(withIdsForPrompt(body, wantUsage, ids)));
        if (dynamoDirect)
          assert.equal(
            forms.forInstance('18446744073709551615'),
            withBackendInstanceId(wantUsage ? { ...body, stream_options: usageOn(body) } : body, '18446744073709551615'),
          );
        else assert.throws(() => forms.forInstance('1'), /forDynamoDirect/);
      },
    ),
    { numRuns: 300 },
  );
});

test('the forms of the body do not keep the parsed prompt alive (256 streams in flight would hold 256 prompts through every GC)', async () => {
  const content = 'word '.repeat(20_000);
  for (const streamOptions of [undefined, { include_usage: false }]) {
    const made = (() => {
      const body = JSON.parse(
        JSON.stringify({ model: 'm', messages: [{ role: 'user', content }], stream: true, stream_options: streamOptions }),
      );
      const raw = Buffer.from(JSON.stringify(body));
      return { forms: bodyForms(raw, body, true, false), prompt: new WeakRef(body.messages as object) };
    })();
    await collectGarbage();
    assert.equal(
      made.prompt.deref(),
      undefined,
      `the parsed messages are still reachable (stream_options ${JSON.stringify(streamOptions)})`,
    );
    // The forms still give the whole body.
    assert.equal(JSON.parse(made.forms.asSent().toString()).messages[0].content, content);
  }
});

test('a read request body is not kept alive by the request object (a stream keeps its request until its last event)', async () => {
  const kept: IncomingMessage[] = [];
  const seen: { bytes: Buffer; weak: WeakRef<Buffer> }[] = [];
  const server = createServer((req, res) => {
    void readBody(req, 1 << 20).then((body) => {
      kept.push(req); // the request object lives on, as it does while the router relays a stream
      seen.push({ bytes: Buffer.from(body), weak: new WeakRef(body) });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const send = (parts: string[]) =>
    new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/' }, (res) => res.resume().on('end', resolve));
      req.on('error', reject);
      for (const p of parts) req.write(p);
      req.end();
    });
  try {
    const one = 'a'.repeat(40_000);
    const several = ['b'.repeat(20_000), 'c'.repeat(20_000), 'd'.repeat(5)];
    await send([one]);
    await send(several);
    assert.equal(seen.length, 2);
    assert.equal(seen[0]!.bytes.toString(), one);
    assert.equal(seen[1]!.bytes.toString(), several.join(''));
    await collectGarbage();
    assert.equal(kept.length, 2);
    for (const [i, s] of seen.entries()) assert.equal(s.weak.deref(), undefined, `body ${i} is still reachable from its request`);
  } finally {
    server.close();
  }
});
