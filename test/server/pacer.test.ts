/**
 * Requests take turns on the router's thread (src/server/pacer.ts): when a burst of requests
 * arrives together, other sockets are served between any two of them. Here the burst and a
 * /debug/decisions request reach the router in the same poll phase (one process, loopback
 * sockets written back to back); the debug request is answered before any of the burst is routed,
 * where without turns every request ahead of it would have been routed first. Order-based, not
 * timed: it holds on a loaded machine too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { RouterServer } from '../../src/server/router-server.js';
import type { SimWorker } from '../../src/sim/index.js';
import { startSims } from './helpers.js';

const BURST = 24;
let sims: SimWorker[] = [];
let router: RouterServer;

before(async () => {
  sims = await startSims(2);
  router = await RouterServer.start({
    workers: sims.map((w) => ({ id: w.id, url: w.url })),
    blockSize: 16,
    port: 0,
    events: 'none',
    health: { intervalMs: 0 },
    // No requests inline in a burst: every one takes its turn. (The default lets 4 ms of them
    // through first, which is timing and so not what an order-based test can check.)
    turnBudgetMs: 0,
  });
});

after(async () => {
  await router?.close();
  await Promise.all(sims.map((w) => w.close()));
});

/** A keep-alive HTTP/1.1 connection that sends raw requests and reads one response at a time. */
class Conn {
  private buf = Buffer.alloc(0);
  private wake?: () => void;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new Conn(s)));
      s.once('error', reject);
    });
  }

  send(method: string, path: string, body?: string): void {
    const head = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', 'connection: keep-alive'];
    if (body !== undefined) head.push('content-type: application/json', `content-length: ${Buffer.byteLength(body)}`);
    this.socket.write(`${head.join('\r\n')}\r\n\r\n${body ?? ''}`);
  }

  /** The next complete response (content-length framed, as the router answers these). */
  async response(): Promise<{ status: number; body: string }> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.buf.subarray(0, end).toString();
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
        assert.ok(Number.isFinite(len), `a content-length framed response, got: ${head}`);
        const start = end + 4;
        if (this.buf.length - start >= len) {
          const body = this.buf.subarray(start, start + len).toString();
          this.buf = this.buf.subarray(start + len);
          return { status: Number(head.split(' ')[1]), body };
        }
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

test('a burst of requests takes turns: a request that arrives with it is answered before the burst is routed', async () => {
  const port = Number(new URL(router.url).port);
  const chatBody = JSON.stringify({
    messages: [{ role: 'user', content: 'Which platform does the 7:42 to Leeds leave from, and is it on time today?' }],
    max_tokens: 2,
  });
  // One request first: the prompt's tokens are cached, so each request of the burst has all of
  // its work ready at once (no wait for the tokenizer's thread between reading and routing).
  const warm = await Conn.open(port);
  warm.send('POST', '/v1/chat/completions', chatBody);
  assert.equal((await warm.response()).status, 200);
  warm.socket.destroy();

  // Connections the router has accepted and served once: their next bytes are read in one poll.
  const conns = await Promise.all(Array.from({ length: BURST + 1 }, () => Conn.open(port)));
  for (const c of conns) c.send('GET', '/health');
  for (const c of conns) assert.equal((await c.response()).status, 200);
  const decisions = async () =>
    ((await (await fetch(`${router.url}/debug/decisions?limit=256`)).json()) as { decisions: Array<{ request_id: string }> }).decisions;
  const before = (await decisions()).length;

  const probe = conns[BURST]!;
  for (const c of conns.slice(0, BURST)) c.send('POST', '/v1/chat/completions', chatBody);
  probe.send('GET', '/debug/decisions?limit=256');

  const seen = JSON.parse((await probe.response()).body) as { decisions: Array<{ request_id: string }> };
  const answers = await Promise.all(conns.slice(0, BURST).map((c) => c.response()));
  for (const a of answers) assert.equal(a.status, 200, a.body);
  const routedWhenProbed = seen.decisions.length - before;
  assert.ok(routedWhenProbed <= 1, `the debug request waited for ${routedWhenProbed} of the ${BURST} requests sent before it to be routed`);
  // Turns are taken in arrival order: the burst was routed in the order it was sent.
  const ids = answers.map((a) => (JSON.parse(a.body) as { id: string }).id);
  assert.deepEqual(
    (await decisions())
      .slice(0, BURST)
      .map((d) => d.request_id)
      .reverse(),
    ids,
  );
  for (const c of conns) c.socket.destroy();
});

test('the pacer: inline within the budget, then turns in arrival order; a new pass of the loop is inline again', async () => {
  const { TurnPacer } = await import('../../src/server/pacer.js');
  const open = new TurnPacer(Number.POSITIVE_INFINITY);
  assert.equal(open.turn(), undefined);
  assert.equal(open.turn(), undefined, 'within the budget nobody waits');

  const strict = new TurnPacer(0);
  assert.equal(strict.turn(), undefined, 'the first request of a pass goes on at once');
  const order: number[] = [];
  const waits = [1, 2, 3].map((i) => {
    const t = strict.turn();
    assert.ok(t, `request ${i} is over the budget and waits`);
    return t.then(() => order.push(i));
  });
  assert.equal(strict.depth, 3);
  // Each turn is its own setImmediate: after one pass of the loop, exactly one has gone on.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [1]);
  await Promise.all(waits);
  assert.deepEqual(order, [1, 2, 3]);
  assert.equal(strict.depth, 0);
  await new Promise((r) => setImmediate(r));
  assert.equal(strict.turn(), undefined, 'a new pass of the loop: inline again');
});

test('a client that leaves while its request waits for a turn is not routed', async () => {
  const port = Number(new URL(router.url).port);
  const body = (i: number) =>
    JSON.stringify({ messages: [{ role: 'user', content: `Is the 8:15 to York running today? (${i})` }], max_tokens: 2 });
  const conns = await Promise.all(Array.from({ length: 4 }, () => Conn.open(port)));
  for (const c of conns) c.send('GET', '/health');
  for (const c of conns) assert.equal((await c.response()).status, 200);
  const routed = async () =>
    ((await (await fetch(`${router.url}/debug/decisions?limit=256`)).json()) as { decisions: unknown[] }).decisions.length;
  const before = await routed();
  // Budget 0: the first request goes on, the others wait; the last one's client leaves at once.
  for (const [i, c] of conns.entries()) c.send('POST', '/v1/chat/completions', body(i));
  conns[3]!.socket.destroy();
  for (const c of conns.slice(0, 3)) assert.equal((await c.response()).status, 200);
  // The three answered requests were routed; the fourth, queued behind them, was not.
  assert.equal((await routed()) - before, 3);
  for (const c of conns) c.socket.destroy();
});
