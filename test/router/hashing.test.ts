import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  computeBlockHashes,
  computeSequenceHashes,
  computeBlockHashPairs,
  computeSequenceHashPairs,
  saltedSeed,
  hashTokenBlock,
  fromPairs,
  toPairs,
} from '../../src/router/index.js';

test('Dynamo lib/tokens test vectors (block size 4, seed 1337)', () => {
  const local = computeBlockHashes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], 4);
  assert.deepEqual(local, [14643705804678351452n, 16777012769546811212n, 483935686894639516n]);
  const seq = computeSequenceHashes(local);
  assert.equal(seq[0], 14643705804678351452n);
  assert.equal(seq[1], 4945711292740353085n);
  assert.equal(seq[2], 12583592247330656132n);
});

test('LoRA and cache-salt seed mixing vectors', () => {
  assert.equal(saltedSeed({ loraName: 'alpha-7b' }), 723495307357893745n);
  assert.equal(computeBlockHashes([1, 2, 3, 4], 4, { loraName: 'alpha-7b' })[0], 16548428770143335509n);
  assert.equal(saltedSeed({ cacheSalt: 's1' }), 13745234085381429708n);
  assert.equal(computeBlockHashes([1, 2, 3, 4], 4, { cacheSalt: 's1' })[0], 3402648387515217860n);
  assert.equal(saltedSeed({ loraName: '', cacheSalt: '' }), 1337n);
});

test('only complete blocks are hashed', () => {
  assert.equal(computeBlockHashes([1, 2, 3], 4).length, 0);
  assert.equal(computeBlockHashes(new Array(33).fill(7), 16).length, 2);
  assert.throws(() => computeBlockHashes([1], 0), RangeError);
});

test('pair-based hashing equals the bigint API (random tokens, block sizes, salts)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 400 }),
      fc.constantFrom(1, 2, 3, 4, 8, 16, 31, 32, 60, 61, 64, 100),
      fc.option(fc.string({ maxLength: 6 })),
      fc.option(fc.string({ maxLength: 6 })),
      (tokens, bs, lora, salt) => {
        const s = { loraName: lora, cacheSalt: salt };
        const local = computeBlockHashes(tokens, bs, s);
        const pairs = computeBlockHashPairs(tokens, bs, s);
        assert.deepEqual(fromPairs(pairs), local);
        assert.deepEqual(fromPairs(computeSequenceHashPairs(pairs)), computeSequenceHashes(local));
        assert.deepEqual(fromPairs(toPairs(local)), local);
        // Spot check one block against the single-block primitive.
        if (local.length > 0) assert.equal(hashTokenBlock(tokens, 0, bs, saltedSeed(s)), local[0]);
      },
    ),
    { numRuns: 300 },
  );
});
