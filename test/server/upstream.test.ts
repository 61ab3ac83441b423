/**
 * The router's upstream call on undici's dispatcher API, against a real HTTP server on loopback:
 * the body arrives whole and in order through pause / resume, an abort signal stops it mid-body,
 * a refused connection rejects before any answer, and an error status comes with its body.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { dispatchUpstream } from '../../src/server/upstream.js';

async function server(handler: http.RequestListener): Promise<{ origin: string; close: () => Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

const CHUNKS = 400;
const piece = (i: number) => `data: {"i":${i},"pad":"${'x'.repeat(200)}"}\n\n`;

test('the body arrives whole and in order while the reader pauses and resumes', { timeout: 30_000 }, async () => {
  const srv = await server((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const next = () => {
      while (i < CHUNKS) if (!res.write(piece(i++))) return void res.once('drain', next);
      res.end();
    };
    next();
  });
  const agent = new Agent();
  try {
    const up = await dispatchUpstream(agent, { origin: srv.origin, path: '/', method: 'GET' });
    assert.equal(up.statusCode, 200);
    assert.equal(up.headers['content-type'], 'text/event-stream');
    const got: Buffer[] = [];
    let pauses = 0;
    await up.consume((chunk) => {
      got.push(chunk);
      if (got.length % 3 === 0) {
        pauses++;
        up.pause();
        setTimeout(() => up.resume(), 1); // a slow client: reading stops until it catches up
      }
    });
    assert.ok(pauses > 0);
    assert.equal(Buffer.concat(got).toString(), Array.from({ length: CHUNKS }, (_, i) => piece(i)).join(''));
  } finally {
    await agent.close();
    await srv.close();
  }
});

test('an abort signal stops the body mid-stream; a refused connection rejects before any answer', async () => {
  const srv = await server((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(piece(0)); // and never ends
  });
  const agent = new Agent();
  try {
    const ac = new AbortController();
    const up = await dispatchUpstream(agent, { origin: srv.origin, path: '/', method: 'GET' }, ac.signal);
    const done = up.consume(() => ac.abort(new Error('the client went away')));
    await assert.rejects(done, /the client went away/);
    const { port } = new URL(srv.origin);
    await srv.close();
    await assert.rejects(dispatchUpstream(agent, { origin: `http://127.0.0.1:${port}`, path: '/', method: 'GET' }), /ECONNREFUSED/);
  } finally {
    await agent.close();
  }
});

test('an error status comes with its body (dump reads it to the end)', async () => {
  const srv = await server((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '2' });
    res.end('{"error":{"message":"busy"}}');
  });
  const agent = new Agent();
  try {
    const up = await dispatchUpstream(agent, { origin: srv.origin, path: '/x', method: 'POST', body: '{}' });
    assert.equal(up.statusCode, 503);
    assert.equal(up.headers['retry-after'], '2');
    await up.dump();
  } finally {
    await agent.close();
    await srv.close();
  }
});
