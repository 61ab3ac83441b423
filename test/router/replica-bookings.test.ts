/** Replica sync in the core: own booking changes are reported; remote bookings count in the load and are not reported back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvRouter, type BookingChange } from '../../src/router/index.js';

const tokens = (n: number, base = 0) => Array.from({ length: n }, (_, i) => base + i);

test('own bookings are reported (add / prefill done / free); a peer applying them sees the same load', () => {
  const a = new KvRouter({ blockSize: 4, seed: 1 });
  const b = new KvRouter({ blockSize: 4, seed: 1 });
  for (const r of [a, b]) for (const w of ['w0', 'w1']) r.addWorker(w);
  const changes: BookingChange[] = [];
  a.onBookingChange = (c) => changes.push(c);
  // b applies what a reports, as the replica sync does over NATS.
  const apply = (c: BookingChange) => {
    if (c.type === 'add')
      assert.ok(
        b.bookRemote({
          requestId: c.requestId,
          workerId: c.workerId,
          dpRank: c.dpRank,
          seqPairs: c.seqPairs,
          blocks: c.blocks,
          prefillTokens: c.prefillTokens,
          nowMs: 0,
        }),
      );
    else if (c.type === 'prefill_done') assert.ok(b.markPrefillCompletedRemote(c.requestId, 0));
    else assert.ok(b.freeRemote(c.requestId, 0));
  };
  const d1 = a.route({ requestId: 'r1', tokens: tokens(16), nowMs: 0 });
  const d2 = a.route({ requestId: 'r2', tokens: tokens(16, 100), nowMs: 0 });
  changes.splice(0).forEach(apply);
  assert.deepEqual(b.snapshot(), a.snapshot());
  assert.equal(b.remoteBookings, 2);
  a.markPrefillCompleted('r1', 1);
  changes.splice(0).forEach(apply);
  assert.deepEqual(b.snapshot(), a.snapshot());
  assert.equal(b.snapshot().workers.find((w) => w.id === d1.chosen)!.active_requests, d1.chosen === d2.chosen ? 2 : 1);
  a.free('r1', 2);
  a.free('r2', 2);
  assert.deepEqual(
    changes.map((c) => c.type),
    ['free', 'free'],
  );
  changes.splice(0).forEach(apply);
  assert.deepEqual(b.snapshot(), a.snapshot());
  assert.equal(b.remoteBookings, 0);
});

test('remote bookings steer the local choice and are not reported back; unknown workers are refused', () => {
  const r = new KvRouter({ blockSize: 4, seed: 1 });
  r.addWorker('w0');
  r.addWorker('w1');
  const changes: BookingChange[] = [];
  r.onBookingChange = (c) => changes.push(c);
  // A peer has 3 long requests on w0: a new request goes to w1.
  for (let i = 0; i < 3; i++)
    assert.ok(r.bookRemote({ requestId: `p${i}`, workerId: 'w0', dpRank: 0, seqPairs: null, blocks: 50, prefillTokens: 200, nowMs: 0 }));
  assert.equal(r.route({ requestId: 'mine', tokens: tokens(16), nowMs: 0 }).chosen, 'w1');
  assert.deepEqual(
    changes.map((c) => c.type),
    ['add'],
  );
  r.freeRemote('p0', 1);
  r.markPrefillCompletedRemote('p1', 1);
  assert.equal(changes.length, 1, 'remote changes are not reported');
  assert.equal(r.freeRemote('mine', 1), false, 'a local booking cannot be freed as remote');
  assert.equal(r.bookRemote({ requestId: 'x', workerId: 'nope', dpRank: 0, seqPairs: null, blocks: 1, prefillTokens: 1, nowMs: 0 }), false);
  assert.deepEqual(
    r.localBookings().map((b) => b.requestId),
    ['mine'],
  );
});
