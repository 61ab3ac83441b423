import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toNumberArray } from '../../src/base/arrays.js';

test('toNumberArray: a new plain array with the same ids, from a typed array or an array', () => {
  const u = Uint32Array.from([0, 7, 151_643, 2 ** 32 - 1]);
  const a = toNumberArray(u);
  assert.ok(Array.isArray(a));
  assert.deepEqual(a, [0, 7, 151_643, 2 ** 32 - 1]);
  a[0] = 9;
  assert.equal(u[0], 0, 'a copy');
  const src = [1, 2, 3];
  const b = toNumberArray(src);
  assert.deepEqual(b, src);
  assert.notEqual(b, src, 'a copy of an array too');
  assert.deepEqual(toNumberArray(new Uint32Array(0)), []);
});
