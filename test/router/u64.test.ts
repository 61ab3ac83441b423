/**
 * U64Table (the open-addressing table under the indexer's lookups, its child table and the active
 * sequences) against a Map over random operations: set / findSlot+insertAt / delete / reserveFor /
 * clear, tags 0..3, keys that collide in their low or high halves, and iteration of the entries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mix, U64Table } from '../../src/router/u64.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 200);

const key = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom(0, 1, 0xffffffff, 0x80000000, 7), fc.integer({ min: 0, max: 10 }));
const op = fc.oneof(
  { weight: 30, arbitrary: fc.tuple(fc.constant('set' as const), key, fc.integer({ min: -5, max: 1000 })) },
  { weight: 15, arbitrary: fc.tuple(fc.constant('insert' as const), key, fc.integer({ min: -5, max: 1000 })) },
  { weight: 15, arbitrary: fc.tuple(fc.constant('delete' as const), key, fc.constant(0)) },
  { weight: 4, arbitrary: fc.tuple(fc.constant('reserve' as const), key, fc.integer({ min: 1, max: 300 })) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('clear' as const), key, fc.constant(0)) },
);

test('U64Table matches a Map: set, find, insertAt, delete, reserveFor, clear and iteration', () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 50, maxLength: 400, size: 'max' }), (ops) => {
      const t = new U64Table(4);
      const ref = new Map<string, number>();
      const k = (tag: number, lo: number, hi: number) => `${tag}:${lo >>> 0}:${hi >>> 0}`;
      for (const [what, [tag, lo, hi], v] of ops) {
        if (what === 'set') {
          t.set(tag, lo, hi, v);
          ref.set(k(tag, lo, hi), v);
        } else if (what === 'insert') {
          t.reserve();
          const i = t.findSlot(tag, lo, hi);
          if (i < 0) t.insertAt(~i, tag, lo, hi, v);
          else t.setValueAt(i, v);
          ref.set(k(tag, lo, hi), v);
        } else if (what === 'delete') assert.equal(t.delete(tag, lo, hi), ref.delete(k(tag, lo, hi)));
        else if (what === 'reserve') {
          const cap = t.capacity;
          t.reserveFor(v);
          assert.ok((t.size + v) * 2 <= t.capacity && t.capacity >= cap, 'room for v more');
        } else {
          t.clear();
          ref.clear();
        }
        assert.equal(t.size, ref.size);
        assert.equal(t.get(tag, lo, hi, -99), ref.get(k(tag, lo, hi)) ?? -99);
        assert.equal(t.find(tag, lo, hi) >= 0, ref.has(k(tag, lo, hi)));
        const seen = new Map<string, number>();
        for (let i = 0; i < t.capacity; i++) if (t.isUsed(i)) seen.set(k(t.tagAt(i), t.loAt(i), t.hiAt(i)), t.valueAt(i));
        assert.deepEqual(seen, ref);
      }
    }),
    { numRuns: RUNS },
  );
});

test('U64Table with auxiliary values: each entry keeps its own through growth, backward-shift deletion and clear', () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 50, maxLength: 400, size: 'max' }), (ops) => {
      const t = new U64Table(4, true);
      const ref = new Map<string, number>();
      const k = (tag: number, lo: number, hi: number) => `${tag}:${lo >>> 0}:${hi >>> 0}`;
      for (const [what, [tag, lo, hi], v] of ops) {
        if (what === 'set' || what === 'insert') {
          const i = t.set(tag, lo, hi, v);
          t.aux![i] = v + 0.5;
          ref.set(k(tag, lo, hi), v + 0.5);
        } else if (what === 'delete') {
          t.delete(tag, lo, hi);
          ref.delete(k(tag, lo, hi));
        } else if (what === 'reserve') t.reserveFor(v);
        else {
          t.clear();
          ref.clear();
        }
        const seen = new Map<string, number>();
        for (let i = 0; i < t.capacity; i++) if (t.isUsed(i)) seen.set(k(t.tagAt(i), t.loAt(i), t.hiAt(i)), t.aux![i]!);
        assert.deepEqual(seen, ref);
      }
    }),
    { numRuns: RUNS },
  );
});

test('U64Table.touchHashed reads without changing anything', () => {
  const t = new U64Table(4);
  for (let i = 0; i < 100; i++) t.set(0, i, i * 7, i);
  const hashes = Int32Array.from({ length: 100 }, (_, i) => mix(0, i, i * 7));
  t.touchHashed(hashes, 100);
  assert.equal(t.size, 100);
  for (let i = 0; i < 100; i++) assert.equal(t.get(0, i, i * 7), i);
});
