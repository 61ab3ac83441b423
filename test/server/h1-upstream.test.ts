/**
 * The router's own HTTP/1.1 client (h1-upstream.ts) against real servers on loopback: node:http
 * for keep-alive, and raw TCP servers that send exactly the bytes a test needs (a head or chunk
 * size split across writes, chunk extensions and trailers, 1xx answers, a body that ends with the
 * connection, broken framing, a worker that closes a kept-alive connection as a request arrives).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { WorkerConnections } from '../../src/server/h1-upstream.js';

async function listen(server: net.Server): Promise<{ origin: string; close: () => Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A TCP server that reads one request head (and its content-length body) at a time and answers with `answer(n)` written piece by piece. */
function rawServer(answer: (n: number, socket: net.Socket) => Array<string | Buffer> | undefined): net.Server {
  let n = 0;
  return net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/content-length: (\d+)/i.exec(buf.toString('latin1', 0, end))?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        buf = buf.subarray(end + 4 + len);
        const pieces = answer(n++, socket);
        if (!pieces) continue;
        // One write per piece, each in its own turn, so the client reads them apart.
        const next = (i: number) => {
          if (i >= pieces.length || socket.destroyed) return;
          socket.write(pieces[i]!);
          setImmediate(() => next(i + 1));
        };
        next(0);
      }
    });
  });
}

async function body(up: Awaited<ReturnType<WorkerConnections['dispatch']>>): Promise<string> {
  const got: Buffer[] = [];
  await up.consume((c) => got.push(c));
  return Buffer.concat(got).toString();
}

test('chunked framing split anywhere, with extensions, trailers and a 100 Continue first, comes out as the data alone', async () => {
  const head =
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nset-cookie: a=1\r\nset-cookie: b=2\r\ntransfer-encoding: chunked\r\n\r\n';
  const frames = '5;ext=1\r\nhello\r\n1\r\n \r\n0b\r\ndata: x\n\nyz\r\n0\r\nx-trailer: 1\r\n\r\n';
  // Split the whole answer into 1-, 2- and 3-byte writes: every state sees a partial line.
  const all = head + frames;
  const pieces: string[] = [];
  for (let i = 0, k = 1; i < all.length; i += k, k = (k % 3) + 1) pieces.push(all.slice(i, i + k));
  const srv = await listen(rawServer(() => pieces));
  const conns = new WorkerConnections();
  try {
    const up = await conns.dispatch({ origin: srv.origin, path: '/x', method: 'POST', body: '{}' });
    assert.equal(up.statusCode, 200);
    assert.equal(up.headers['content-type'], 'text/event-stream');
    assert.deepEqual(up.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(await body(up), 'hello data: x\n\nyz');
  } finally {
    conns.close();
    await srv.close();
  }
});

test('keep-alive: answers framed by content-length and by chunks reuse one connection; a body that ends with the connection does not', async () => {
  let connections = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/len') res.end('0123456789');
    else {
      res.write('a');
      res.end('b');
    }
  });
  server.on('connection', () => connections++);
  const srv = await listen(server);
  const conns = new WorkerConnections();
  try {
    for (const path of ['/len', '/chunks', '/len', '/chunks']) {
      const up = await conns.dispatch({ origin: srv.origin, path, method: 'POST', body: Buffer.from('{"a":1}') });
      assert.equal(await body(up), path === '/len' ? '0123456789' : 'ab');
    }
    assert.equal(connections, 1);
  } finally {
    conns.close();
    await srv.close();
  }
  // HTTP/1.0-style: no length, no chunks; the body is what comes until the worker closes.
  let raw = 0;
  const closing = await listen(
    rawServer((_n, socket) => {
      raw++;
      socket.write('HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{"ok":');
      setImmediate(() => socket.end('true}'));
      return undefined;
    }),
  );
  const c2 = new WorkerConnections();
  try {
    for (let i = 0; i < 2; i++) {
      const up = await c2.dispatch({ origin: closing.origin, path: '/', method: 'POST', body: '{}' });
      assert.equal(await body(up), '{"ok":true}');
    }
    assert.equal(raw, 2); // not reused: each on its own connection
  } finally {
    c2.close();
    await closing.close();
  }
});

test('a kept-alive connection the worker closes as the next request arrives: the request goes once more on a new connection', async () => {
  const seen: number[] = [];
  const server = rawServer((n, socket) => {
    seen.push(n);
    if (n === 1) {
      socket.destroy(); // the second request on the first connection: closed, no answer
      return undefined;
    }
    return ['HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n', 'ok'];
  });
  let connections = 0;
  server.on('connection', () => connections++);
  const srv = await listen(server);
  const conns = new WorkerConnections();
  try {
    assert.equal(await body(await conns.dispatch({ origin: srv.origin, path: '/', method: 'POST', body: '{}' })), 'ok');
    assert.equal(await body(await conns.dispatch({ origin: srv.origin, path: '/', method: 'POST', body: '{}' })), 'ok');
    assert.equal(connections, 2);
    assert.deepEqual(seen, [0, 1, 2]);
  } finally {
    conns.close();
    await srv.close();
  }
  // On a new connection the same close is an error: nothing is sent twice.
  const never = await listen(
    rawServer((_n, socket) => {
      socket.destroy();
      return undefined;
    }),
  );
  const c2 = new WorkerConnections();
  try {
    await assert.rejects(
      c2.dispatch({ origin: never.origin, path: '/', method: 'POST', body: '{}' }),
      /closed the connection before the answer was complete/,
    );
  } finally {
    c2.close();
    await never.close();
  }
});

test('broken answers fail with what was wrong; a silent worker times out; a header with a line break is refused', async () => {
  const answers: Record<string, string[]> = {
    '/status': ['HTTP/2 200\r\n\r\n'],
    '/size': ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', 'zz\r\nhello\r\n'],
    '/long': ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', '2\r\nhello\r\n'],
    '/cut': [],
    '/silent': [],
  };
  const paths = Object.keys(answers);
  const srv = await listen(
    rawServer((n, socket) => {
      if (paths[n] === '/cut') {
        // 9 bytes of the 100 promised, then the connection ends.
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this', () => socket.destroy());
        return undefined;
      }
      return answers[paths[n]!]!;
    }),
  );
  const conns = new WorkerConnections();
  const send = (path: string, extra: Partial<Parameters<WorkerConnections['dispatch']>[0]> = {}) =>
    conns.dispatch({ origin: srv.origin, path, method: 'POST', body: '{}', ...extra });
  try {
    // One at a time, in order (the raw server numbers requests as they come).
    await assert.rejects(send('/status'), /does not start with an HTTP\/1\.x status line: "HTTP\/2 200"/);
    const size = await send('/size');
    await assert.rejects(body(size), /bad chunk size "zz"/);
    const long = await send('/long');
    await assert.rejects(body(long), /chunk longer than its size/);
    const cut = await send('/cut');
    await assert.rejects(body(cut), /closed the connection before the answer was complete/);
    await assert.rejects(send('/silent', { headersTimeout: 100 }), /no answer within 100 ms/);
    await assert.rejects(send('/x', { headers: { 'x-id': 'a\r\nx-evil: 1' } }), /has a line break/);
  } finally {
    conns.close();
    await srv.close();
  }
});

const CHUNKS = 400;
const piece = (i: number) => `data: {"i":${i},"pad":"${'x'.repeat(200)}"}\n\n`;

test('the body arrives whole and in order while the reader pauses and resumes; an abort stops it; a refused connection rejects', {
  timeout: 30_000,
}, async () => {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (req.url === '/forever') return void res.write(piece(0));
    let i = 0;
    const next = () => {
      while (i < CHUNKS) if (!res.write(piece(i++))) return void res.once('drain', next);
      res.end();
    };
    next();
  });
  const srv = await listen(server);
  const conns = new WorkerConnections();
  try {
    const up = await conns.dispatch({ origin: srv.origin, path: '/', method: 'GET' });
    const got: Buffer[] = [];
    let pauses = 0;
    await up.consume((chunk) => {
      // Every read is one chunk here (framing removed), so pause at each.
      got.push(chunk);
      pauses++;
      up.pause();
      setImmediate(() => up.resume()); // a slow client: reading stops until it catches up
    });
    assert.ok(pauses > 0);
    assert.equal(Buffer.concat(got).toString(), Array.from({ length: CHUNKS }, (_, i) => piece(i)).join(''));

    const ac = new AbortController();
    const forever = await conns.dispatch({ origin: srv.origin, path: '/forever', method: 'GET' }, ac.signal);
    await assert.rejects(
      forever.consume(() => ac.abort(new Error('the client went away'))),
      /the client went away/,
    );
    const { port } = new URL(srv.origin);
    await srv.close();
    await assert.rejects(conns.dispatch({ origin: `http://127.0.0.1:${port}`, path: '/', method: 'GET' }), /ECONNREFUSED/);
  } finally {
    conns.close();
    await srv.close();
  }
});
