/**
 * The approximate mode's expiry records (ttl-records.ts) against a plain model (an array of
 * records per bucket): random pushes across buckets and chunk boundaries, compactions with random
 * predicates, and expiries give the same records in the same order, and the same count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TtlRecords } from '../../src/router/ttl-records.js';

type Rec = [number, number, number, number];

const op = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('push' as const),
      time: fc.integer({ min: 0, max: 6 }),
      count: fc.integer({ min: 1, max: 5000 }),
      slot: fc.integer({ min: 0, max: 7 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('compact' as const),
      mod: fc.integer({ min: 1, max: 5 }),
      rem: fc.integer({ min: 0, max: 4 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('expire' as const), now: fc.integer({ min: -1, max: 6 }) }) },
);

test('TtlRecords keeps, compacts and expires records as a per-bucket array would', () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
      const store = new TtlRecords();
      const model = new Map<number, Rec[]>();
      let stamp = 2 ** 32 - 10; // stamps past u32 stay exact
      for (const o of ops) {
        if (o.kind === 'push') {
          for (let i = 0; i < o.count; i++) {
            const r: Rec = [o.slot, (stamp * 7) % 2 ** 32, (stamp * 13) % 2 ** 32, stamp++];
            store.push(o.time * 100, ...r);
            let m = model.get(o.time * 100);
            if (!m) model.set(o.time * 100, (m = []));
            m.push(r);
          }
        } else if (o.kind === 'compact') {
          const keep = (s: number) => s % o.mod === o.rem % o.mod;
          store.compact((_slot, _lo, _hi, st) => keep(st));
          for (const [t, m] of model) {
            const k = m.filter((r) => keep(r[3]));
            if (k.length) model.set(t, k);
            else model.delete(t);
          }
        } else {
          const got: Rec[] = [];
          store.expire(o.now * 100, (...r) => got.push(r));
          const want: Rec[] = [];
          for (const t of [...model.keys()].sort((a, b) => a - b))
            if (t <= o.now * 100) {
              want.push(...model.get(t)!);
              model.delete(t);
            }
          assert.deepEqual(got, want);
        }
        const n = [...model.values()].reduce((a, m) => a + m.length, 0);
        assert.equal(store.size, n);
        assert.equal(store.bucketCount, model.size);
      }
      // Whatever is left comes out, in order, at the end.
      const rest: Rec[] = [];
      store.expire(Infinity, (...r) => rest.push(r));
      assert.deepEqual(
        rest,
        [...model.keys()].sort((a, b) => a - b).flatMap((t) => model.get(t)!),
      );
      assert.equal(store.size, 0);
    }),
    { numRuns: 200 },
  );
});
