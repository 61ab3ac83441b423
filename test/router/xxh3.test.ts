/**
 * Pure-TypeScript XXH3-64 (src/router/xxh3.ts) against the reference: the @node-rs/xxhash addon
 * (`xxh3.xxh64(buf, seed)`), which dynamo-facts §2 uses to reproduce Dynamo's test vectors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { xxh3 } from '@node-rs/xxhash';
import { xxh3_64, xxh3View, xxh3Pair16, xxh3Words17to128 } from '../../src/router/xxh3.js';
import {
  computeBlockHashes,
  computeBlockHashPairs,
  computeSequenceHashes,
  computeSequenceHashPairs,
  hashTokenBlock,
  nextSequenceHash,
  saltedSeed,
  setHashBackend,
  getHashBackend,
  XXH3_SEED,
} from '../../src/router/hashing.js';
import { fromPairs, joinU64 } from '../../src/router/u64.js';

const U64_MAX = (1n << 64n) - 1n;

// Deterministic PRNG (xorshift32) so failures reproduce.
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

function randomBytes(len: number, next: () => number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = next() & 0xff;
  return b;
}

function randomU64(next: () => number): bigint {
  return (BigInt(next()) << 32n) | BigInt(next());
}

const SEEDS: bigint[] = [
  0n,
  1n,
  1337n,
  U64_MAX,
  1n << 63n,
  0xffffffffn,
  1n << 32n,
  saltedSeed({ loraName: 'alpha-7b' }),
  saltedSeed({ cacheSalt: 's1' }),
  saltedSeed({ loraName: 'alpha-7b', cacheSalt: 's1' }),
  0x0123456789abcdefn,
  0xfedcba9876543210n,
];

test('every length 0..256 x fixed seeds (0, 1, 1337, 2^64-1, LoRA/salt seeds, ...) equals the addon', () => {
  const next = rng(1);
  let checked = 0;
  for (let len = 0; len <= 256; len++) {
    const data = randomBytes(len, next);
    for (const seed of SEEDS) {
      assert.equal(xxh3_64(data, seed), xxh3.xxh64(data, seed), `len ${len} seed ${seed}`);
      checked++;
    }
  }
  assert.equal(checked, 257 * SEEDS.length);
});

test('every length 0..256 with random u64 seeds, and all-0x00 / all-0xff inputs', () => {
  const next = rng(2);
  for (let len = 0; len <= 256; len++) {
    for (let k = 0; k < 4; k++) {
      const seed = randomU64(next);
      const data = randomBytes(len, next);
      assert.equal(xxh3_64(data, seed), xxh3.xxh64(data, seed), `len ${len} seed ${seed}`);
    }
    for (const fill of [0x00, 0xff]) {
      const data = new Uint8Array(len).fill(fill);
      for (const seed of [0n, 1337n, U64_MAX]) assert.equal(xxh3_64(data, seed), xxh3.xxh64(data, seed), `len ${len} fill ${fill}`);
    }
  }
});

test('multiples of 4 up to 4096 bytes (block sizes up to 1024 tokens) and the long-path boundaries', () => {
  const next = rng(3);
  const lens: number[] = [];
  for (let len = 4; len <= 4096; len += 4) lens.push(len);
  // Long path: 1,024-byte block boundaries and last-stripe edges.
  for (const b of [
    240, 241, 255, 256, 257, 319, 320, 321, 1023, 1024, 1025, 1087, 1088, 1089, 2047, 2048, 2049, 3072, 3073, 4095, 4097, 5000, 8192, 9001,
  ])
    lens.push(b);
  for (const len of lens) {
    const data = randomBytes(len, next);
    const seed = len % 3 === 0 ? 1337n : randomU64(next);
    assert.equal(xxh3_64(data, seed), xxh3.xxh64(data, seed), `len ${len} seed ${seed}`);
  }
});

test('many random lengths up to 4096 with random bytes and random seeds', () => {
  const next = rng(4);
  for (let k = 0; k < 2000; k++) {
    const len = next() % 4097;
    const seed = k % 5 === 0 ? SEEDS[k % SEEDS.length]! : randomU64(next);
    const data = randomBytes(len, next);
    assert.equal(xxh3_64(data, seed), xxh3.xxh64(data, seed), `len ${len} seed ${seed}`);
  }
});

test('fast-check: arbitrary bytes and u64 seeds equal the addon', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.bigInt({ min: 0n, max: U64_MAX }), (data, seed) => {
      assert.equal(xxh3_64(data, seed), xxh3.xxh64(data, seed));
    }),
    { numRuns: 1500 },
  );
  // Lengths biased to the path boundaries.
  fc.assert(
    fc.property(
      fc.constantFrom(0, 1, 3, 4, 8, 9, 16, 17, 32, 33, 64, 65, 96, 97, 128, 129, 240, 241, 1024, 1025, 1088, 2048),
      fc.integer({ min: -1, max: 1 }),
      fc.bigInt({ min: 0n, max: U64_MAX }),
      fc.integer({ min: 0, max: 0xffffffff }),
      (base, delta, seed, fill) => {
        const len = Math.max(0, base + delta);
        const next = rng(fill);
        const data = randomBytes(len, next);
        assert.equal(xxh3_64(data, seed), xxh3.xxh64(data, seed));
      },
    ),
    { numRuns: 1000 },
  );
});

test('xxh3View at unaligned offsets inside a larger buffer and on views of subarrays', () => {
  const next = rng(5);
  const big = randomBytes(5000, next);
  const view = new DataView(big.buffer);
  const out = new Uint32Array(4);
  for (let k = 0; k < 500; k++) {
    const p = next() % 700;
    const len = next() % 4200;
    const seed = randomU64(next);
    const sL = Number(seed & 0xffffffffn);
    const sH = Number(seed >> 32n);
    xxh3View(view, p, len, sL, sH, out, 2);
    const want = xxh3.xxh64(big.subarray(p, p + len), seed);
    assert.equal(joinU64(out[2]!, out[3]!), want, `p ${p} len ${len}`);
    const sub = big.subarray(p, p + len);
    xxh3View(new DataView(sub.buffer, sub.byteOffset, sub.byteLength), 0, len, sL, sH, out, 0);
    assert.equal(joinU64(out[0]!, out[1]!), want);
  }
});

test('xxh3Pair16 (chained sequence hash) equals the addon on le_u64(a) ‖ le_u64(b)', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: U64_MAX }),
      fc.bigInt({ min: 0n, max: U64_MAX }),
      fc.constantFrom(0n, 1n, 1337n, U64_MAX, 0x9e3779b97f4a7c15n),
      (a, b, seed) => {
        const buf = new Uint8Array(16);
        const dv = new DataView(buf.buffer);
        dv.setBigUint64(0, a, true);
        dv.setBigUint64(8, b, true);
        const out = new Int32Array(2);
        const lo = (x: bigint) => Number(x & 0xffffffffn);
        const hi = (x: bigint) => Number(x >> 32n);
        xxh3Pair16(lo(a), hi(a), lo(b), hi(b), lo(seed), hi(seed), out, 0);
        assert.equal(joinU64(out[0]! >>> 0, out[1]! >>> 0), xxh3.xxh64(buf, seed));
      },
    ),
    { numRuns: 2000 },
  );
});

test('xxh3Words17to128 (block-size 5..32 fast path) equals the addon on u32 LE token words', () => {
  const next = rng(6);
  const words = new Int32Array(64);
  const out = new Uint32Array(2);
  for (let k = 0; k < 3000; k++) {
    const nw = 5 + (next() % 28); // 20..128 bytes
    const p = next() % (64 - nw + 1);
    for (let i = 0; i < words.length; i++) words[i] = next() | 0;
    const seed = k % 4 === 0 ? 1337n : randomU64(next);
    xxh3Words17to128(words, p, nw * 4, Number(seed & 0xffffffffn), Number(seed >> 32n), out, 0);
    const bytes = new Uint8Array(nw * 4);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < nw; i++) dv.setInt32(4 * i, words[p + i]!, true);
    assert.equal(joinU64(out[0]!, out[1]!), xxh3.xxh64(bytes, seed), `words ${nw} seed ${seed}`);
  }
});

for (const impl of ['wasm', 'js'] as const)
  test(`dynamo-facts §2 test vectors with the ${impl} implementation`, () => {
    assert.equal(getHashBackend(), 'wasm', 'wasm is the default backend');
    setHashBackend(impl);
    try {
      const local = computeBlockHashes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], 4);
      assert.deepEqual(local, [14643705804678351452n, 16777012769546811212n, 483935686894639516n]);
      assert.deepEqual(computeSequenceHashes(local), [14643705804678351452n, 4945711292740353085n, 12583592247330656132n]);
      assert.deepEqual(fromPairs(computeSequenceHashPairs(computeBlockHashPairs([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 4))), [
        14643705804678351452n,
        4945711292740353085n,
        12583592247330656132n,
      ]);
      assert.equal(saltedSeed({ loraName: 'alpha-7b' }), 723495307357893745n);
      assert.equal(computeBlockHashes([1, 2, 3, 4], 4, { loraName: 'alpha-7b' })[0], 16548428770143335509n);
      assert.equal(saltedSeed({ cacheSalt: 's1' }), 13745234085381429708n);
      assert.equal(computeBlockHashes([1, 2, 3, 4], 4, { cacheSalt: 's1' })[0], 3402648387515217860n);
      // The raw vectors straight through xxh3_64.
      const le = (xs: number[]) => {
        const b = new Uint8Array(xs.length * 4);
        const dv = new DataView(b.buffer);
        for (const [i, x] of xs.entries()) dv.setUint32(4 * i, x, true);
        return b;
      };
      assert.equal(xxh3_64(le([1, 2, 3, 4]), 1337n), 14643705804678351452n);
      assert.equal(xxh3_64(le([5, 6, 7, 8]), 1337n), 16777012769546811212n);
      assert.equal(xxh3_64(le([9, 10, 11, 12]), 1337n), 483935686894639516n);
      assert.equal(xxh3_64(new TextEncoder().encode('alpha-7b'), 0n) + 1337n, 723495307357893745n);
      // Dynamo's block size 16 (64-byte blocks) and the 16-byte chain, against the addon.
      const toks = Array.from({ length: 16 * 40 }, (_, i) => (i * 2654435761) % 151643);
      const le16 = (start: number) => {
        const b = new Uint8Array(64);
        const dv = new DataView(b.buffer);
        for (let i = 0; i < 16; i++) dv.setUint32(4 * i, toks[start + i]!, true);
        return b;
      };
      const blocks = computeBlockHashes(toks, 16);
      for (const [i, h] of blocks.entries()) assert.equal(h, xxh3.xxh64(le16(16 * i), 1337n), `block ${i}`);
      const seq = computeSequenceHashes(blocks);
      for (let i = 1; i < seq.length; i++) {
        const pair = new Uint8Array(16);
        const dv = new DataView(pair.buffer);
        dv.setBigUint64(0, seq[i - 1]!, true);
        dv.setBigUint64(8, blocks[i]!, true);
        assert.equal(seq[i], xxh3.xxh64(pair, 1337n), `seq ${i}`);
      }
      assert.deepEqual(fromPairs(computeSequenceHashPairs(computeBlockHashPairs(toks, 16))), seq);
    } finally {
      setHashBackend('wasm');
    }
  });

test('hashing.ts: wasm, js and native backends give identical results (block sizes 1..1100, salts, sequences)', () => {
  const next = rng(7);
  const blockSizes = [1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 48, 60, 61, 64, 100, 128, 256, 512, 1000, 1024, 1100];
  const salts = [undefined, { loraName: 'alpha-7b' }, { cacheSalt: 's1' }, { loraName: 'x', cacheSalt: 'ü-salt' }];
  try {
    for (const bs of blockSizes) {
      for (const salt of salts) {
        const tokens = Array.from({ length: bs * 3 + (next() % bs) }, () => next() % 200000);
        setHashBackend('native');
        const nLocal = computeBlockHashes(tokens, bs, salt);
        const nPairs = computeBlockHashPairs(tokens, bs, salt);
        const nSeq = computeSequenceHashPairs(nPairs);
        const nOne = hashTokenBlock(tokens, 1, bs, saltedSeed(salt));
        setHashBackend('js');
        assert.deepEqual(computeBlockHashes(tokens, bs, salt), nLocal, `bs ${bs}`);
        assert.deepEqual(computeBlockHashPairs(tokens, bs, salt), nPairs, `bs ${bs}`);
        assert.deepEqual(computeSequenceHashPairs(nPairs), nSeq, `bs ${bs}`);
        assert.equal(hashTokenBlock(tokens, 1, bs, saltedSeed(salt)), nOne, `bs ${bs}`);
        setHashBackend('wasm');
        assert.deepEqual(computeBlockHashes(tokens, bs, salt), nLocal, `wasm bs ${bs}`);
        assert.deepEqual(computeBlockHashPairs(tokens, bs, salt), nPairs, `wasm bs ${bs}`);
        assert.deepEqual(computeBlockHashPairs(Uint32Array.from(tokens), bs, salt), nPairs, `wasm u32 bs ${bs}`);
        assert.deepEqual(computeSequenceHashPairs(nPairs), nSeq, `wasm bs ${bs}`);
        assert.equal(hashTokenBlock(tokens, 1, bs, saltedSeed(salt)), nOne, `wasm bs ${bs}`);
      }
    }
  } finally {
    setHashBackend('wasm');
  }
});

test('hashing.ts edge inputs behave as with the addon: odd token values, bigint seeds outside u64', () => {
  const odd = [-1, 2 ** 32, 2 ** 32 + 5, 1.7, -0, 0x7fffffff, 0x80000000, 0xffffffff, Number.NaN, 2 ** 53];
  const seeds = [0n, XXH3_SEED, U64_MAX, U64_MAX + 1n, U64_MAX + 6n, -1n, -5n, -(U64_MAX + 4n)];
  try {
    for (const seed of seeds) {
      setHashBackend('native');
      const want = hashTokenBlock(odd, 0, odd.length, seed);
      const want4 = hashTokenBlock(odd, 2, 4, seed);
      setHashBackend('js');
      assert.equal(hashTokenBlock(odd, 0, odd.length, seed), want, `seed ${seed}`);
      assert.equal(hashTokenBlock(odd, 2, 4, seed), want4, `seed ${seed}`);
    }
    // The block fast path reads token ids directly (ToInt32 bits == the addon path's `>>> 0` bits).
    const oddTokens = [...odd, ...odd, ...odd, ...odd];
    for (const bs of [5, 8, 10, 20, 32, 40]) {
      setHashBackend('native');
      const wantPairs = computeBlockHashPairs(oddTokens, bs);
      setHashBackend('js');
      assert.deepEqual(computeBlockHashPairs(oddTokens, bs), wantPairs, `bs ${bs}`);
      setHashBackend('wasm');
      assert.deepEqual(computeBlockHashPairs(oddTokens, bs), wantPairs, `wasm bs ${bs}`);
    }
    setHashBackend('native');
    const wantSeq = nextSequenceHash(U64_MAX, -1n);
    setHashBackend('js');
    assert.equal(nextSequenceHash(U64_MAX, -1n), wantSeq);
    assert.throws(() => setHashBackend('gpu' as never), RangeError);
  } finally {
    setHashBackend('wasm');
  }
});

test('typed-array token inputs (Uint32Array, Int32Array, Float64Array) hash like number[]', () => {
  const next = rng(8);
  const toks = Array.from({ length: 16 * 9 + 3 }, () => next() % 150000);
  const want = computeBlockHashPairs(toks, 16);
  assert.deepEqual(computeBlockHashPairs(Uint32Array.from(toks), 16), want);
  assert.deepEqual(computeBlockHashPairs(Int32Array.from(toks), 16), want);
  assert.deepEqual(computeBlockHashPairs(Float64Array.from(toks), 16), want);
});

test('the embedded wasm bytes are a fresh compile of src/router/wasm/xxh3.wat (scripts/build-xxh3-wasm.mjs --check)', async () => {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const { dirname, join } = await import('node:path');
  const { existsSync } = await import('node:fs');
  let root = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(root, 'scripts', 'build-xxh3-wasm.mjs'))) {
    const up = dirname(root);
    assert.notEqual(up, root, 'scripts/build-xxh3-wasm.mjs not found above the test');
    root = up;
  }
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-xxh3-wasm.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
