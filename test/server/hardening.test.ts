/**
 * The router under hostile input and failing workers (the fast, CI-sized parts of the chaos
 * run): every bad request gets an OpenAI-shaped 4xx, 2,000 fuzzed bodies give no 5xx, a worker
 * that dies mid-stream ends the client's stream with an SSE error and [DONE], slow clients are
 * cut off, /debug/* needs the API key, aborted streams leak nothing, the usage chunk is there
 * exactly when asked for, and a restarted worker's stale index entries are dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import OpenAI from 'openai';
import { SimWorker } from '../../src/sim/index.js';
import { RouterServer } from '../../src/server/router-server.js';
import { cachedBlocks, SYSTEM_PROMPT, startSims, waitFor } from './helpers.js';

const MODEL = 'Qwen/Qwen2.5-1.5B-Instruct';
const inproc = (sims: SimWorker[]) =>
  sims.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l: Parameters<SimWorker['onKvEvent']>[0]) => w.onKvEvent(l) }));

/** Send raw bytes and read the whole answer (the connection is closed by the server). */
function raw(port: number, bytes: string, waitMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(out);
    }, waitMs);
    s.on('data', (d) => {
      out += d.toString('latin1');
      // one full response is enough
      const m = /content-length: (\d+)\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/i.exec(out);
      if (m && Buffer.byteLength(m[2]!, 'latin1') >= Number(m[1])) {
        clearTimeout(timer);
        s.destroy();
        resolve(out);
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      if (out) resolve(out);
      else reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.write(bytes);
  });
}

function statusAndError(resp: string): { status: number; code?: string; allow?: string } {
  const status = Number(/^HTTP\/1\.1 (\d+)/.exec(resp)?.[1]);
  const body = resp.slice(resp.indexOf('\r\n\r\n') + 4);
  let code: string | undefined;
  try {
    code = (JSON.parse(body) as { error: { code: string } }).error.code;
  } catch {
    code = undefined;
  }
  return { status, code, allow: /\r\nallow: ([^\r]+)/i.exec(resp)?.[1] };
}

test('every bad input gets an OpenAI-shaped 4xx, including what the HTTP parser rejects', async () => {
  const sims = await startSims(1);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, bodyLimitBytes: 64 * 1024 });
  try {
    const post = (body: unknown, extra: Record<string, string> = {}) =>
      fetch(`${router.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...extra },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    const cases: Array<[string, Promise<Response>, number, string?]> = [
      ['content object', post({ model: MODEL, messages: [{ role: 'user', content: { a: 1 } }] }), 400, 'invalid_messages'],
      ['content number', post({ model: MODEL, messages: [{ role: 'user', content: 42 }] }), 400, 'invalid_messages'],
      ['content boolean', post({ model: MODEL, messages: [{ role: 'user', content: true }] }), 400, 'invalid_messages'],
      ['content parts with a number', post({ model: MODEL, messages: [{ role: 'user', content: [1] }] }), 400, 'invalid_messages'],
      ['stream not a boolean', post({ model: MODEL, messages: [{ role: 'user', content: 'x' }], stream: 'yes' }), 400, 'invalid_stream'],
      ['unknown model', post({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }), 404, 'model_not_found'],
      ['n = 2', post({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 1, n: 2 }), 400, 'invalid_n'],
      ['max_tokens -1', post({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: -1 }), 400],
      ['body too large', post({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(100_000) }] }), 413, 'body_too_large'],
      ['not JSON', post('{nope'), 400, 'invalid_json'],
      ['multipart', post('--x--', { 'content-type': 'multipart/form-data; boundary=x' }), 415, 'unsupported_media_type'],
      ['wrong method', fetch(`${router.url}/v1/chat/completions`), 405, 'method_not_allowed'],
      ['unknown path', fetch(`${router.url}/v2/nothing`), 404, 'not_found'],
      ['malformed escape', fetch(`${router.url}/admin/workers/%E0%A4%A`, { method: 'DELETE' }), 400, 'invalid_path'],
    ];
    for (const [what, p, status, code] of cases) {
      const r = await p;
      const body = (await r.json()) as { error: { message: string; type: string; code: string } };
      assert.equal(r.status, status, `${what}: ${JSON.stringify(body)}`);
      assert.equal(typeof body.error.message, 'string', what);
      if (code) assert.equal(body.error.code, code, what);
      if (status === 405) assert.equal(r.headers.get('allow'), 'POST');
    }
    const clientErrors = router.workersView();
    assert.equal(clientErrors.workers[0]!.errors, 0, 'client 4xx are not worker errors');
    // What Node's parser rejects or a plain URL parser chokes on, over a raw socket.
    const port = router.port;
    const rawCases: Array<[string, string, number]> = [
      ['GET //', 'GET // HTTP/1.1\r\nHost: x\r\n\r\n', 404],
      ['absolute-form', 'GET http://x/health HTTP/1.1\r\nHost: x\r\n\r\n', 200],
      ['bad request line', 'HELLO\r\n\r\n', 400],
      ['bad method', 'FOO@ / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
      ['huge header', `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      [
        'bad chunked body',
        'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\ncontent-type: application/json\r\n\r\nZZ\r\n',
        400,
      ],
      [
        'content-length and chunked',
        'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        400,
      ],
    ];
    for (const [what, bytes, status] of rawCases) {
      const resp = await raw(port, bytes);
      const got = statusAndError(resp);
      assert.equal(got.status, status, `${what}: ${resp.slice(0, 300)}`);
      if (status >= 400) assert.ok(got.code, `${what}: the answer is OpenAI-shaped JSON: ${resp.slice(0, 300)}`);
    }
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('2,000 fuzzed request bodies: never a 5xx, always JSON errors', async () => {
  const sims = await startSims(2);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, health: false });
  const any = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer()), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
  );
  const content = fc.oneof(
    fc.string({ maxLength: 40 }),
    any,
    fc.array(fc.record({ type: fc.constantFrom('text', 'image_url', 7), text: any }, { requiredKeys: [] }), { maxLength: 2 }),
  );
  const message = fc.oneof(
    fc.record({ role: fc.oneof(fc.constantFrom('user', 'system', 'assistant'), any), content }, { requiredKeys: [] }),
    any,
  );
  const body = fc.record(
    {
      model: fc.oneof(fc.constant(MODEL), any),
      messages: fc.oneof(fc.array(message, { maxLength: 3 }), any),
      prompt: fc.oneof(fc.string({ maxLength: 30 }), fc.array(fc.integer({ min: -2, max: 200_000 }), { maxLength: 6 }), any),
      max_tokens: fc.oneof(fc.integer({ min: -3, max: 6 }), any),
      stream: fc.oneof(fc.boolean(), any),
      stream_options: fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), any) }), any),
      stop: fc.oneof(fc.string({ maxLength: 3 }), fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }), any),
      stop_token_ids: fc.oneof(fc.array(fc.integer({ min: -1, max: 3000 }), { maxLength: 3 }), any),
      n: fc.oneof(fc.integer({ min: -1, max: 3 }), any),
      nvext: fc.oneof(fc.record({ router_config_override: fc.dictionary(fc.string({ maxLength: 20 }), any, { maxKeys: 2 }) }), any),
    },
    { requiredKeys: [] },
  );
  // Mostly-valid bodies with one field fuzzed reach the workers; fully random ones test the checks.
  const valid = fc.record({
    model: fc.constant(MODEL),
    messages: fc.constant([{ role: 'user', content: 'hello there' }]),
    prompt: fc.string({ minLength: 1, maxLength: 30 }),
    max_tokens: fc.integer({ min: 1, max: 4 }),
    stream: fc.boolean(),
  });
  const oneFuzzed = fc
    .tuple(
      valid,
      fc.constantFrom(
        'none',
        'model',
        'messages',
        'prompt',
        'max_tokens',
        'stream',
        'stream_options',
        'stop',
        'stop_token_ids',
        'n',
        'nvext',
        'content',
      ),
      fc.oneof(any, content),
    )
    .map(([b, k, v]) => {
      const o: Record<string, unknown> = { ...b };
      if (k === 'content') o.messages = [{ role: 'user', content: v }];
      else if (k === 'stream_options') o.stream_options = v;
      else if (k !== 'none') o[k] = v;
      return JSON.stringify(o);
    });
  const top = fc.oneof(
    { weight: 8, arbitrary: oneFuzzed },
    { weight: 4, arbitrary: body.map((b) => JSON.stringify(b)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 50 }) },
    { weight: 1, arbitrary: any.map((v) => JSON.stringify(v)) },
  );
  const bodies = fc.sample(fc.tuple(fc.constantFrom('/v1/chat/completions', '/v1/completions'), top), { numRuns: 2000, seed: 1313 });
  const statuses = new Map<number, number>();
  const bad: string[] = [];
  try {
    let next = 0;
    const workerLoop = async () => {
      while (next < bodies.length) {
        const [path, text] = bodies[next++]!;
        // No max_tokens means the rest of the context (32k tokens): keep the fuzz quick.
        let sent = text;
        try {
          const o = JSON.parse(text) as Record<string, unknown>;
          if (o && typeof o === 'object' && !Array.isArray(o) && (o.max_tokens === undefined || o.max_tokens === null))
            sent = JSON.stringify({ ...o, max_tokens: 2 });
        } catch {
          // not JSON: send as is
        }
        const r = await fetch(`${router.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: sent });
        const answer = await r.text();
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status >= 500) bad.push(`${r.status} ${path} ${sent.slice(0, 200)} -> ${answer.slice(0, 200)}`);
        else if (r.status >= 400 && !/^\{"error":\{"message":/.test(answer)) bad.push(`not OpenAI-shaped: ${answer.slice(0, 200)}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, workerLoop));
    assert.deepEqual(bad.slice(0, 10), [], `statuses ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get(200) ?? 0) > 50, `some fuzzed bodies are valid: ${JSON.stringify([...statuses])}`);
    assert.ok([...statuses.keys()].some((s) => s >= 400 && s < 500));
    assert.equal(router.workersView().totals.errors, 0, 'client errors are not worker errors');
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

/**
 * A stand-in for a worker process that dies mid-answer: it sends the headers and part of the
 * body, then the connection is destroyed (what a SIGKILL does to the socket). The chaos run
 * kills real worker processes.
 */
async function dyingWorker(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    req.resume();
    req.on('end', () => {
      const stream = req.headers.accept === 'text/event-stream';
      res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json' });
      // one event split across two writes, then death
      res.write(
        stream ? 'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel' : '{"id":"x","choices":[',
      );
      setTimeout(() => {
        res.write(stream ? 'lo"},"finish_reason":null}]}\n\ndata: {"id":"x","choi' : '{"index":0');
        setTimeout(() => res.socket?.destroy(), 20);
      }, 20);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

test('a worker that dies mid-stream: the client gets an SSE error event and [DONE]; non-stream: an OpenAI-shaped 502', async () => {
  const w = await dyingWorker();
  const router = await RouterServer.start({ workers: [{ id: 'dying', url: w.url }], blockSize: 16, port: 0, health: false });
  try {
    const r = await fetch(`${router.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true }),
    });
    assert.equal(r.status, 200);
    const events = (await r.text()).split('\n\n').filter(Boolean);
    assert.equal(events.at(-1), 'data: [DONE]');
    const err = JSON.parse(events.at(-2)!.slice(6)) as { error: { code: string; message: string } };
    assert.equal(err.error.code, 'upstream_failed');
    assert.match(err.error.message, /dying failed mid-stream/);
    assert.match(events[0]!, /"content":"Hello"/, 'the whole first event, never half of one');
    assert.equal(events.length, 3, events.join(' | '));
    // The official client surfaces it as an error, not a silently short answer.
    const client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
      stream: true,
    });
    await assert.rejects(async () => {
      for await (const _ of stream) void _;
    }, /failed mid-stream/);
    const nonStream = await fetch(`${router.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
    });
    assert.equal(nonStream.status, 502);
    assert.equal(((await nonStream.json()) as { error: { code: string } }).error.code, 'upstream_failed');
    assert.match(await (await fetch(`${router.url}/metrics`)).text(), /dynamo_lab_router_streams_failed_total\{worker_id="dying"\} [1-9]/);
  } finally {
    await router.close();
    await w.close();
  }
});

test('slow clients are cut off: unfinished headers and a stalled body', async () => {
  const sims = await startSims(1);
  const router = await RouterServer.start({
    workers: inproc(sims),
    blockSize: 16,
    port: 0,
    timeouts: { headersTimeoutMs: 300, requestTimeoutMs: 600 },
  });
  try {
    const closed = (bytes: string) =>
      new Promise<string>((resolve) => {
        const s = net.connect(router.port, '127.0.0.1', () => bytes && s.write(bytes));
        let out = '';
        s.on('data', (d) => (out += d.toString()));
        s.on('close', () => resolve(out));
        s.on('error', () => {});
      });
    const [nothing, headers, body] = await Promise.all([
      closed(''),
      closed('GET /health HTTP/1.1\r\nHost: x\r\n'),
      closed('POST /v1/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"prompt":'),
    ]);
    assert.match(nothing, /^(HTTP\/1\.1 408|)/, 'a connection that sends nothing is closed');
    assert.match(headers, /^HTTP\/1\.1 408 [\s\S]*"code":"request_timeout"/);
    assert.match(body, /^HTTP\/1\.1 408/);
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('idle client connections are kept 65 s, longer than client pools keep them (no reset of a request sent as the server closes)', async () => {
  // aiohttp (aiperf) keeps an idle connection 15 s and httpx (the openai client) 5 s, and neither
  // reads this header: a router that closed at Node's 5 s reset a request now and then.
  const sims = await startSims(1);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0 });
  try {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const agent = new http.Agent({ keepAlive: true });
      http.get({ host: '127.0.0.1', port: router.port, path: '/health', agent }, resolve).on('error', reject);
    });
    res.resume();
    assert.equal(res.headers['keep-alive'], 'timeout=65');
    // An explicit setting still wins.
    const short = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, timeouts: { keepAliveTimeoutMs: 2000 } });
    try {
      const r2 = await new Promise<http.IncomingMessage>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: short.port, path: '/health', agent: new http.Agent({ keepAlive: true }) }, resolve)
          .on('error', reject);
      });
      r2.resume();
      assert.equal(r2.headers['keep-alive'], 'timeout=2');
    } finally {
      await short.close();
    }
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('a burst of 1,000 connections while the router is busy: the kernel holds them all until it accepts (listen backlog)', async (t) => {
  // Node's default backlog (511) drops the handshakes beyond it while the event loop is busy:
  // clients then see connect timeouts and resets (2,000 concurrent streams lost ~150 that way).
  let somaxconn = 0;
  try {
    somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  } catch {
    // not Linux
  }
  if (somaxconn < 1024) return t.skip(`needs Linux with net.core.somaxconn >= 1024 (it is ${somaxconn || 'unknown'})`);
  const sims = await startSims(1);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0 });
  try {
    // spawnSync blocks this process, router included, while another process opens the
    // connections: none can be accepted, so only the kernel's queue decides how many connect.
    const N = 1000;
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `const net = require('node:net'); let ok = 0; const socks = [];
         const done = () => { process.stdout.write(String(ok)); process.exit(0); };
         for (let i = 0; i < ${N}; i++) {
           const s = net.connect(${router.port}, '127.0.0.1', () => { if (++ok === ${N}) done(); });
           s.on('error', () => {}); socks.push(s);
         }
         setTimeout(done, 4000);`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(child.status, 0, child.stderr);
    assert.equal(Number(child.stdout), N, 'every connection completed its handshake while the router was busy');
    const r = await fetch(`${router.url}/health`);
    assert.equal(r.status, 200);
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('the per-request tables stay bounded and /metrics shows their sizes: sessions, decisions, token cache, index', async () => {
  const sims = await startSims(2);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, maxSessions: 20, decisionHistory: 8 });
  const gauges = async () => {
    const text = await (await fetch(`${router.url}/metrics`)).text();
    return (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  };
  try {
    // The tokenizer and its cache are shared by the routers of one process (earlier tests).
    const before = await gauges();
    for (let i = 0; i < 60; i++) {
      const r = await fetch(`${router.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-dynamo-session-id': `s-${i}` },
        body: JSON.stringify({ model: MODEL, prompt: `prompt ${i}: ${SYSTEM_PROMPT.slice(0, 400)}`, max_tokens: 1 }),
      });
      assert.equal(r.status, 200);
      await r.text();
    }
    const g = await gauges();
    assert.ok(g('dynamo_lab_router_sessions') <= 20, `sessions ${g('dynamo_lab_router_sessions')} <= --max-sessions 20`);
    assert.equal(g('dynamo_lab_router_decisions_held'), 8, '--decision-history 8');
    const entries = 'dynamo_lab_router_token_cache_entries';
    assert.equal(g(entries) - before(entries), 60, 'one piece per distinct prompt');
    const bytes = 'dynamo_lab_router_token_cache_bytes';
    assert.ok(g(bytes) - before(bytes) > 60 * 400, 'the cache counts the bytes it holds');
    assert.ok(g('dynamo_lab_router_radix_nodes') >= g('dynamo_lab_router_indexed_blocks') / 2);
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('API key: /debug/* and /admin/* need it, /health and /metrics stay open', async () => {
  const sims = await startSims(1);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0, apiKey: 'k3y' });
  try {
    for (const p of ['/debug/decisions', '/debug/workers', '/admin/workers', '/v1/models']) {
      assert.equal((await fetch(`${router.url}${p}`)).status, 401, p);
      assert.equal((await fetch(`${router.url}${p}`, { headers: { authorization: 'Bearer wrong' } })).status, 401, p);
      assert.equal((await fetch(`${router.url}${p}`, { headers: { authorization: 'Bearer k3y' } })).status, 200, p);
    }
    for (const p of ['/health', '/metrics']) assert.equal((await fetch(`${router.url}${p}`)).status, 200, p);
    assert.ok(!(await (await fetch(`${router.url}/metrics`)).text()).includes('k3y'));
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('usage chunk only when asked, ids chatcmpl-<uuid> match x-request-id and /debug/decisions, usage booked either way', async () => {
  const sims = await startSims(1);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0 });
  try {
    const run = async (includeUsage: boolean) => {
      const r = await fetch(`${router.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: MODEL,
          messages: [
            { role: 'system', content: SYSTEM_PROMPT },
            { role: 'user', content: 'q' },
          ],
          max_tokens: 4,
          stream: true,
          ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        }),
      });
      const chunks = (await r.text())
        .split('\n\n')
        .filter((e) => e.startsWith('data: {'))
        .map((e) => JSON.parse(e.slice(6)) as { id: string; usage?: unknown; choices: unknown[] });
      const rid = r.headers.get('x-request-id')!;
      assert.match(rid, /^chatcmpl-[0-9a-f]{32}$/);
      assert.ok(
        chunks.every((c) => c.id === rid),
        `${rid} vs ${chunks[0]?.id}`,
      );
      const { decisions } = (await (await fetch(`${router.url}/debug/decisions?limit=1`)).json()) as {
        decisions: Array<{ request_id: string; achieved_cached_tokens?: number }>;
      };
      assert.equal(decisions[0]!.request_id, rid);
      return { usage: chunks.filter((c) => c.usage !== undefined), decision: decisions[0]! };
    };
    await run(false);
    const without = await run(false);
    assert.equal(without.usage.length, 0, 'no usage chunk the client did not ask for');
    assert.ok(without.decision.achieved_cached_tokens! > 0, "the router still booked the worker's usage");
    const withUsage = await run(true);
    assert.equal(withUsage.usage.length, 1);
    assert.deepEqual(withUsage.usage[0]!.choices, []);
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('aborted streams leak nothing: no booked load on the router, no running request on the workers', async () => {
  const sims = await startSims(2, { speedup: 1 });
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0 });
  try {
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const ac = new AbortController();
        const r = await fetch(`${router.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: MODEL, prompt: `story ${i} `.repeat(50), stream: true }),
          signal: ac.signal,
        });
        const reader = r.body!.getReader();
        await reader.read();
        ac.abort();
        await reader.read().catch(() => {});
      }),
    );
    await waitFor(
      () => router.workersView().workers.every((w) => w.active_requests === 0 && w.active_blocks === 0),
      'the router to free every booking',
      20_000,
    );
    await waitFor(
      () => sims.every((w) => w.stats().running === 0 && w.stats().waiting === 0),
      'the workers to abort every request',
      20_000,
    );
    assert.ok(sims.reduce((n, w) => n + w.stats().requestsAborted, 0) >= 40);
  } finally {
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('a client that stops reading and then goes away frees its booking (the router is not left waiting for drain)', async () => {
  const sims = await startSims(1);
  const router = await RouterServer.start({ workers: inproc(sims), blockSize: 16, port: 0 });
  // Watch the router's own response objects, to know when it is really held up by the client.
  const responses: http.ServerResponse[] = [];
  (router as unknown as { server: http.Server }).server.on('request', (_req, res: http.ServerResponse) => responses.push(res));
  const s = net.connect(Number(new URL(router.url).port), '127.0.0.1');
  try {
    const body = JSON.stringify({ model: MODEL, prompt: 'a long story '.repeat(20), max_tokens: 30_000, stream: true });
    s.write(
      `POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    s.pause(); // never read: the kernel buffers fill, then the router's writes return false
    await waitFor(() => responses[0]?.writableNeedDrain === true, 'the router to be waiting for the client to read', 30_000);
    assert.equal(router.workersView().workers[0]!.active_requests, 1);
    s.destroy();
    await waitFor(
      () => router.workersView().workers.every((w) => w.active_requests === 0 && w.active_blocks === 0),
      'the router to free the booking of the client that left',
      20_000,
    );
    await waitFor(() => sims[0]!.stats().running === 0, 'the worker to abort the request', 20_000);
  } finally {
    s.destroy();
    await router.close();
    await Promise.all(sims.map((w) => w.close()));
  }
});

test('a restarted worker is re-admitted quickly and its stale index entries are dropped', async () => {
  const sims = await startSims(2);
  const lines: string[] = [];
  const router = await RouterServer.start({
    workers: inproc(sims),
    blockSize: 16,
    port: 0,
    mode: 'round-robin',
    health: { intervalMs: 2000 },
    log: (l) => lines.push(l),
  });
  let revived: SimWorker | undefined;
  try {
    for (let i = 0; i < 2; i++)
      await (
        await fetch(`${router.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: MODEL, prompt: SYSTEM_PROMPT, max_tokens: 1 }),
        })
      ).arrayBuffer();
    await waitFor(() => cachedBlocks(router, 'worker-1') > 0, 'worker-1 to hold blocks');
    const port = sims[1]!.port;
    await sims[1]!.close();
    await router.checkAll();
    assert.equal(router.workersView().workers.find((w) => w.id === 'worker-1')!.healthy, false);
    revived = await SimWorker.start({ id: 'worker-1', blockSize: 16, port, speedup: 0 });
    await waitFor(
      () => router.workersView().workers.find((w) => w.id === 'worker-1')!.healthy,
      'worker-1 to be re-admitted (down workers are checked every 500 ms)',
      10_000,
    );
    assert.equal(cachedBlocks(router, 'worker-1'), 0, "the old process's blocks are forgotten");
    assert.ok(
      lines.some((l) => /worker worker-1 restarted/.test(l)),
      lines.join('\n'),
    );
  } finally {
    await router.close();
    await Promise.all([...sims, revived].map((w) => w?.close()));
  }
});

test('a slow /health is not a dead worker: it stays in routing while it answers requests', async () => {
  // A stand-in for a worker saturated by load: requests are answered, /health is late.
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/health') {
        setTimeout(() => {
          res.writeHead(200);
          res.end('{}');
        }, 400);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        '{"id":"x","object":"text_completion","choices":[{"index":0,"text":"ok","finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}',
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const router = await RouterServer.start({
    workers: [{ id: 'slow', url }],
    blockSize: 16,
    port: 0,
    health: { intervalMs: 100, timeoutMs: 100, failuresToDown: 1 },
  });
  try {
    let checksSeen = 0;
    await waitFor(
      async () => {
        const r = await fetch(`${router.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: 1 }),
        });
        assert.equal(r.status, 200, 'never a 503 while the worker answers');
        await r.arrayBuffer();
        const w = router.workersView().workers[0]!;
        assert.equal(w.healthy, true, w.health_error);
        if (w.health_error) checksSeen++;
        return checksSeen >= 3;
      },
      'three slow health checks',
      20_000,
    );
  } finally {
    await router.close();
    server.closeAllConnections();
    server.close();
  }
});
