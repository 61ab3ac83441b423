/**
 * ChunkedWriter (src/server/chunked-writer.ts) frames a streamed body itself, one buffer per write,
 * on a real node:http server read through a raw socket: every chunk on the wire is one write's
 * bytes, the body ends with the terminating chunk, and the kept-alive connection serves the next
 * request. A response ended by plain `res.end()` after the writer's writes (an error path) still
 * ends with Node's terminator; an HTTP/1.0 client gets the bytes unframed until the connection closes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { ChunkedWriter } from '../../src/server/chunked-writer.js';

let server: Server;
let port: number;

const EVENTS = ['data: {"n":1}\n\n', 'data: {"n":2,"text":"snow ☃"}\n\n', 'data: [DONE]\n\n'];

before(async () => {
  server = createServer((req, res) => {
    const w = new ChunkedWriter(res.writeHead(200, { 'content-type': 'text/event-stream' }));
    w.write(Buffer.from(EVENTS[0]!));
    w.write(''); // nothing: no empty chunk (it would end the body)
    w.write(EVENTS[1]!);
    if (req.url === '/plain-end')
      res.end(EVENTS[2]); // not through the writer
    else w.end(EVENTS[2]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** Reads a socket's bytes as they come; `until` waits for a condition on all bytes so far. */
function reader(sock: Socket) {
  let buf = Buffer.alloc(0);
  let closed = false;
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    wake();
  });
  sock.on('close', () => {
    closed = true;
    wake();
  });
  return {
    get bytes() {
      return buf;
    },
    get closed() {
      return closed;
    },
    take(n: number): Buffer {
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    },
    async until(ok: () => boolean, what: string): Promise<void> {
      const deadline = performance.now() + 20_000;
      while (!ok()) {
        if (closed) throw new Error(`the connection closed before ${what}`);
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
    },
  };
}

/** One chunked response from `r`: its head and its chunks (without the terminating one). */
async function readChunked(r: ReturnType<typeof reader>): Promise<{ head: string; chunks: string[] }> {
  await r.until(() => r.bytes.includes('\r\n\r\n'), 'the response head');
  const head = r.take(r.bytes.indexOf('\r\n\r\n') + 4).toString('latin1');
  const chunks: string[] = [];
  for (;;) {
    await r.until(() => r.bytes.includes('\r\n'), 'a chunk size line');
    const line = r.bytes.subarray(0, r.bytes.indexOf('\r\n')).toString('latin1');
    assert.match(line, /^[0-9a-f]+$/, `a chunk size in hex, got ${JSON.stringify(line)}`);
    const size = Number.parseInt(line, 16);
    await r.until(() => r.bytes.length >= line.length + 2 + size + 2, `a chunk of ${size} bytes`);
    r.take(line.length + 2);
    const data = r.take(size).toString('utf8');
    assert.equal(r.take(2).toString('latin1'), '\r\n', 'CRLF after the chunk data');
    if (size === 0) return { head, chunks };
    chunks.push(data);
  }
}

const request = (path: string, version = '1.1') => `GET ${path} HTTP/${version}\r\nHost: 127.0.0.1\r\n\r\n`;

test('one chunk per write, the terminating chunk at the end, and the kept-alive connection serves the next request', async () => {
  const sock = connect(port, '127.0.0.1');
  const r = reader(sock);
  try {
    for (const path of ['/', '/plain-end', '/']) {
      sock.write(request(path));
      const { head, chunks } = await readChunked(r);
      assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(head, /\r\ntransfer-encoding: chunked\r\n/i);
      assert.doesNotMatch(head, /\r\nconnection: close\r\n/i);
      // Through the writer the last event and the terminator share a write; through plain
      // res.end() Node frames the last event. Either way: the events, one chunk each.
      assert.deepEqual(chunks, EVENTS, path);
    }
    assert.equal(r.bytes.length, 0, 'nothing after the last response');
  } finally {
    sock.destroy();
  }
});

test('an HTTP/1.0 client gets the events unframed, ended by the connection closing', async () => {
  const sock = connect(port, '127.0.0.1');
  const r = reader(sock);
  sock.write(request('/', '1.0'));
  await r.until(() => r.closed, 'the connection to close');
  const text = r.bytes.toString('utf8');
  const head = text.slice(0, text.indexOf('\r\n\r\n') + 4);
  assert.doesNotMatch(head, /transfer-encoding/i);
  assert.equal(text.slice(head.length), EVENTS.join(''));
});
