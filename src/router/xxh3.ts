/**
 * XXH3-64 (seeded) in pure TypeScript, bit-exact with the reference implementation
 * (xxHash `XXH3_64bits_withSeed`), written from the public specification (xxHash
 * doc/xxhash_spec.md). All input lengths are supported: 0, 1–3, 4–8, 9–16, 17–128, 129–240
 * and the long (> 240 bytes, derived-secret, 1,024-byte block) path.
 *
 * Why: the router hashes one short buffer per KV block. Through the N-API addon every call pays
 * the native transition plus a BigInt seed and a BigInt result; here everything is u32 halves
 * (lo, hi) held in int32 locals: 64-bit adds carry through float64 sums (exact below 2^53),
 * 32x32 -> 64-bit products are `Math.imul` for the low word and a float product for the high word
 * (rounded: the float error is < 2^12, far below 2^32), and 64x64 -> 128 is four of those.
 * No BigInt, no allocation on the hot paths.
 *
 * Results are reported through `out[off] = lo`, `out[off + 1] = hi` (u32 halves of the u64).
 *
 * Over 400 lines on purpose: one algorithm from one spec; the length paths share the module-level
 * scratch state (RES, ACC, KEYS, derived secret) that keeps them allocation-free. The 64x64 ->
 * 128-bit multiply-and-fold is written out again in each hot function (xxh3Pair16,
 * xxh3ChainPairs, the 17-128 byte words path) on purpose: a shared helper would hand back four
 * u32 halves through scratch state on every block; the test vectors check every copy.
 */
import { LITTLE_ENDIAN } from '../base/endian.js';

/** The default 192-byte secret (xxHash spec, "Seed and Secret"). */
const DEFAULT_SECRET = new Uint8Array([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c, 0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97,
  0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, 0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff,
  0x72, 0x21, 0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c, 0x3c, 0x28, 0x52, 0xbb, 0x91,
  0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3, 0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46,
  0xa9, 0xde, 0xac, 0xd8, 0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d, 0x8a, 0x51, 0xe0,
  0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, 0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81,
  0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb, 0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, 0x2b,
  0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28,
  0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
]);
const SECRET_LEN = 192;

/** u32 little-endian word of the default secret at byte offset `o`, as int32. */
function sw(o: number): number {
  const s = DEFAULT_SECRET;
  return s[o]! | (s[o + 1]! << 8) | (s[o + 2]! << 16) | (s[o + 3]! << 24);
}

// Constants as int32 halves (L = low 32 bits, H = high 32 bits).
const P32_1 = 0x9e3779b1 | 0;
const P32_2 = 0x85ebca77 | 0;
const P32_3 = 0xc2b2ae3d | 0;
const P64_1L = 0x85ebca87 | 0,
  P64_1H = 0x9e3779b1 | 0;
const P64_2L = 0x27d4eb4f | 0,
  P64_2H = 0xc2b2ae3d | 0;
const P64_3L = 0x9e3779f9 | 0,
  P64_3H = 0x165667b1 | 0;
const P64_4L = 0xc2b2ae63 | 0,
  P64_4H = 0x85ebca77 | 0;
const P64_5L = 0x165667c5 | 0,
  P64_5H = 0x27d4eb2f | 0;
const MX1L = 0x9e3779f9 | 0,
  MX1H = 0x16566791 | 0;
const MX2L = 0x1e98df25 | 0,
  MX2H = 0x9fb21c65 | 0;

const TWO32 = 4294967296;
const INV32 = 1 / 4294967296;

// Secret words used by the short paths (default secret; the seed is mixed in separately).
const S0_XOR_S4 = sw(0) ^ sw(4); // 1–3 bytes: secret[0:8] as two u32
const S8L = sw(8),
  S8H = sw(12),
  S16L = sw(16),
  S16H = sw(20); // 4–8 bytes
const S24_32L = sw(24) ^ sw(32),
  S24_32H = sw(28) ^ sw(36); // 9–16 bytes: secret[24:40]
const S40_48L = sw(40) ^ sw(48),
  S40_48H = sw(44) ^ sw(52); //               secret[40:56]
const S56_64L = sw(56) ^ sw(64),
  S56_64H = sw(60) ^ sw(68); // empty input

/** Result registers of the arithmetic helpers (int32 bit patterns). */
let rL = 0;
let rH = 0;

/** Low 64 bits of a 64x64 product -> (rL, rH). */
function mul64(aL: number, aH: number, bL: number, bH: number): void {
  const a = aL >>> 0;
  const b = bL >>> 0;
  const lo = Math.imul(a, b) >>> 0;
  const hi = Math.round((a * b - lo) * INV32);
  rL = lo | 0;
  rH = (hi + Math.imul(aL, bH) + Math.imul(aH, bL)) | 0;
}

/** Full 64x64 -> 128 product folded as lo64 xor hi64 -> (rL, rH). */
function mulFold(aL: number, aH: number, bL: number, bH: number): void {
  const al = aL >>> 0,
    ah = aH >>> 0,
    bl = bL >>> 0,
    bh = bH >>> 0;
  const llL = Math.imul(al, bl) >>> 0;
  const llH = Math.round((al * bl - llL) * INV32);
  const lhL = Math.imul(al, bh) >>> 0;
  const lhH = Math.round((al * bh - lhL) * INV32);
  const hlL = Math.imul(ah, bl) >>> 0;
  const hlH = Math.round((ah * bl - hlL) * INV32);
  const hhL = Math.imul(ah, bh) >>> 0;
  const hhH = Math.round((ah * bh - hhL) * INV32);
  // Bits 32..63 and 64..95 with carries (sums of a few u32 values: exact in float64).
  const t1 = llH + lhL + hlL;
  const r1 = t1 >>> 0;
  const t2 = hhL + lhH + hlH + (t1 - r1) * INV32;
  const r2 = t2 >>> 0;
  const r3 = hhH + (t2 - r2) * INV32;
  rL = llL ^ r2;
  rH = r1 ^ r3;
}

/** XXH3 avalanche -> (rL, rH). */
function avalanche(hL: number, hH: number): void {
  mul64(hL ^ (hH >>> 5), hH, MX1L, MX1H);
  rL ^= rH;
}

/** XXH64 avalanche -> (rL, rH). */
function avalancheXXH64(hL: number, hH: number): void {
  mul64(hL ^ (hH >>> 1), hH, P64_2L, P64_2H);
  const l = rL,
    h = rH;
  mul64(l ^ ((l >>> 29) | (h << 3)), h ^ (h >>> 29), P64_3L, P64_3H);
  rL ^= rH;
}

function bswap32(x: number): number {
  return (x << 24) | ((x << 8) & 0xff0000) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

// ---------------------------------------------------------------------------------------------
// Per-seed keys for the 17–240-byte paths: secret64(o) + seed and secret64(o + 8) - seed for every
// 16-byte secret segment those paths use. Entries 0..7: offsets 0, 16, .., 112; entries 8..14:
// offsets 3, 19, .., 99 (129–240 tail chunks); entry 15: offset 119 (129–240 last chunk).
// ---------------------------------------------------------------------------------------------

const KEYS = new Int32Array(64);
let keySeedL = 0;
let keySeedH = 0;
let keysValid = false;

function keyOffset(j: number): number {
  return j < 8 ? 16 * j : j < 15 ? 3 + 16 * (j - 8) : 119;
}

function setKeys(sL: number, sH: number): void {
  const su = sL >>> 0;
  for (let j = 0; j < 16; j++) {
    const o = keyOffset(j);
    const aL = sw(o) >>> 0,
      aH = sw(o + 4);
    const t = aL + su;
    KEYS[4 * j] = t | 0;
    KEYS[4 * j + 1] = (aH + sH + (t >= TWO32 ? 1 : 0)) | 0;
    const bL = sw(o + 8) >>> 0,
      bH = sw(o + 12);
    const d = bL - su;
    KEYS[4 * j + 2] = d | 0;
    KEYS[4 * j + 3] = (bH - sH - (d < 0 ? 1 : 0)) | 0;
  }
  keySeedL = sL;
  keySeedH = sH;
  keysValid = true;
}

// Derived secret for the long path (seed added to even u64 words, subtracted from odd ones).
const DSECRET = new Uint8Array(SECRET_LEN);
const DSV = new DataView(DSECRET.buffer);
let dSeedL = 0;
let dSeedH = 0;
let dValid = false;

function deriveSecret(sL: number, sH: number): void {
  const dv = new DataView(DEFAULT_SECRET.buffer, DEFAULT_SECRET.byteOffset, SECRET_LEN);
  const su = sL >>> 0;
  for (let i = 0; i < 24; i++) {
    const lo = dv.getUint32(8 * i, true);
    const hi = dv.getInt32(8 * i + 4, true);
    let nL: number, nH: number;
    if ((i & 1) === 0) {
      const t = lo + su;
      nL = t | 0;
      nH = (hi + sH + (t >= TWO32 ? 1 : 0)) | 0;
    } else {
      const d = lo - su;
      nL = d | 0;
      nH = (hi - sH - (d < 0 ? 1 : 0)) | 0;
    }
    DSV.setInt32(8 * i, nL, true);
    DSV.setInt32(8 * i + 4, nH, true);
  }
  dSeedL = sL;
  dSeedH = sH;
  dValid = true;
}

const ACC = new Int32Array(16);

/** One 64-byte stripe into ACC with the derived secret at byte offset `so`. */
function accumulate(v: DataView, p: number, so: number): void {
  const acc = ACC;
  for (let i = 0; i < 8; i++) {
    const dL = v.getInt32(p + 8 * i, true);
    const dH = v.getInt32(p + 8 * i + 4, true);
    const xL = (dL ^ DSV.getInt32(so + 8 * i, true)) >>> 0;
    const xH = (dH ^ DSV.getInt32(so + 8 * i + 4, true)) >>> 0;
    // acc[i ^ 1] += data
    const j = 2 * (i ^ 1);
    const t = (acc[j]! >>> 0) + (dL >>> 0);
    acc[j + 1] = (acc[j + 1]! + dH + (t >= TWO32 ? 1 : 0)) | 0;
    acc[j] = t | 0;
    // acc[i] += lo32(x) * hi32(x)   (32x32 -> 64)
    const pL = Math.imul(xL, xH) >>> 0;
    const pH = Math.round((xL * xH - pL) * INV32);
    const k = 2 * i;
    const u = (acc[k]! >>> 0) + pL;
    acc[k + 1] = (acc[k + 1]! + pH + (u >= TWO32 ? 1 : 0)) | 0;
    acc[k] = u | 0;
  }
}

function scramble(): void {
  const acc = ACC;
  for (let i = 0; i < 8; i++) {
    const h = acc[2 * i + 1]!;
    const l = acc[2 * i]! ^ (h >>> 15) ^ DSV.getInt32(128 + 8 * i, true);
    mul64(l, h ^ DSV.getInt32(128 + 8 * i + 4, true), P32_1, 0);
    acc[2 * i] = rL;
    acc[2 * i + 1] = rH;
  }
}

function hashLong(v: DataView, p: number, len: number, sL: number, sH: number): void {
  if (!dValid || sL !== dSeedL || sH !== dSeedH) deriveSecret(sL, sH);
  const acc = ACC;
  acc[0] = P32_3;
  acc[1] = 0;
  acc[2] = P64_1L;
  acc[3] = P64_1H;
  acc[4] = P64_2L;
  acc[5] = P64_2H;
  acc[6] = P64_3L;
  acc[7] = P64_3H;
  acc[8] = P64_4L;
  acc[9] = P64_4H;
  acc[10] = P32_2;
  acc[11] = 0;
  acc[12] = P64_5L;
  acc[13] = P64_5H;
  acc[14] = P32_1;
  acc[15] = 0;
  const STRIPES = (SECRET_LEN - 64) / 8; // 16
  const BLOCK = 64 * STRIPES; // 1024
  const nBlocks = Math.floor((len - 1) / BLOCK);
  for (let b = 0; b < nBlocks; b++) {
    const q = p + b * BLOCK;
    for (let n = 0; n < STRIPES; n++) accumulate(v, q + 64 * n, 8 * n);
    scramble();
  }
  const q = p + nBlocks * BLOCK;
  const lastLen = len - nBlocks * BLOCK;
  const nStripes = Math.floor((lastLen - 1) / 64);
  for (let n = 0; n < nStripes; n++) accumulate(v, q + 64 * n, 8 * n);
  accumulate(v, p + len - 64, SECRET_LEN - 71);
  // Final merge with secret offset 11, init = len * PRIME64_1.
  mul64(len, 0, P64_1L, P64_1H);
  let hL = rL,
    hH = rH;
  for (let i = 0; i < 4; i++) {
    const so = 11 + 16 * i;
    mulFold(
      acc[4 * i]! ^ DSV.getInt32(so, true),
      acc[4 * i + 1]! ^ DSV.getInt32(so + 4, true),
      acc[4 * i + 2]! ^ DSV.getInt32(so + 8, true),
      acc[4 * i + 3]! ^ DSV.getInt32(so + 12, true),
    );
    const t = (hL >>> 0) + (rL >>> 0);
    hH = (hH + rH + (t >= TWO32 ? 1 : 0)) | 0;
    hL = t | 0;
  }
  avalanche(hL, hH);
}

/** Medium-path accumulator (17–240 bytes). */
let mL = 0;
let mH = 0;

/** acc += fold((data64[p] ^ key0) * (data64[p + 8] ^ key1)) with key entry `e`. */
function mixStep(v: DataView, p: number, e: number): void {
  const k = KEYS;
  const b = 4 * e;
  mulFold(
    v.getInt32(p, true) ^ k[b]!,
    v.getInt32(p + 4, true) ^ k[b + 1]!,
    v.getInt32(p + 8, true) ^ k[b + 2]!,
    v.getInt32(p + 12, true) ^ k[b + 3]!,
  );
  const t = (mL >>> 0) + (rL >>> 0);
  mH = (mH + rH + (t >= TWO32 ? 1 : 0)) | 0;
  mL = t | 0;
}

/**
 * XXH3-64 of `len` bytes of `v` from byte offset `p`, seed (sL, sH) as u32/int32 halves.
 * Result in out[off] (lo), out[off + 1] (hi).
 */
export function xxh3View(v: DataView, p: number, len: number, sL: number, sH: number, out: Uint32Array | Int32Array, off: number): void {
  sL |= 0;
  sH |= 0;
  if (len <= 16) {
    if (len > 8) {
      // 9–16 bytes
      const t0 = (S24_32L >>> 0) + (sL >>> 0);
      const lowL = (t0 | 0) ^ v.getInt32(p, true);
      const lowH = ((S24_32H + sH + (t0 >= TWO32 ? 1 : 0)) | 0) ^ v.getInt32(p + 4, true);
      const d0 = (S40_48L >>> 0) - (sL >>> 0);
      const highL = (d0 | 0) ^ v.getInt32(p + len - 8, true);
      const highH = ((S40_48H - sH - (d0 < 0 ? 1 : 0)) | 0) ^ v.getInt32(p + len - 4, true);
      mulFold(lowL, lowH, highL, highH);
      // len + bswap64(low) + high + fold
      let t = len + (bswap32(lowH) >>> 0) + (highL >>> 0) + (rL >>> 0);
      const aL = t >>> 0;
      const aH = (bswap32(lowL) + highH + rH + (t - aL) * INV32) | 0;
      avalanche(aL, aH);
    } else if (len >= 4) {
      // 4–8 bytes
      const first = v.getInt32(p, true);
      const last = v.getInt32(p + len - 4, true);
      const msL = sL,
        msH = sH ^ bswap32(sL);
      const d = ((S8L ^ S16L) >>> 0) - (msL >>> 0);
      let xL = (d | 0) ^ last;
      let xH = (((S8H ^ S16H) - msH - (d < 0 ? 1 : 0)) | 0) ^ first;
      // x ^= rotl(x, 49) ^ rotl(x, 24)
      const r49L = (xH << 17) | (xL >>> 15),
        r49H = (xL << 17) | (xH >>> 15);
      const r24L = (xL << 24) | (xH >>> 8),
        r24H = (xH << 24) | (xL >>> 8);
      xL ^= r49L ^ r24L;
      xH ^= r49H ^ r24H;
      mul64(xL, xH, MX2L, MX2H);
      mul64(rL ^ ((rH >>> 3) + len), rH, MX2L, MX2H);
      const l = rL,
        h = rH;
      rL = l ^ ((l >>> 28) | (h << 4));
      rH = h ^ (h >>> 28);
    } else if (len > 0) {
      // 1–3 bytes
      const c1 = v.getUint8(p),
        c2 = v.getUint8(p + (len >>> 1)),
        c3 = v.getUint8(p + len - 1);
      const combined = c3 | (len << 8) | (c1 << 16) | (c2 << 24);
      const t = (S0_XOR_S4 >>> 0) + (sL >>> 0);
      avalancheXXH64((t | 0) ^ combined, (sH + (t >= TWO32 ? 1 : 0)) | 0);
    } else {
      avalancheXXH64(sL ^ S56_64L, sH ^ S56_64H);
    }
  } else if (len <= 240) {
    if (!keysValid || sL !== keySeedL || sH !== keySeedH) setKeys(sL, sH);
    mul64(len, 0, P64_1L, P64_1H);
    mL = rL;
    mH = rH;
    if (len <= 128) {
      if (len > 32) {
        if (len > 64) {
          if (len > 96) {
            mixStep(v, p + 48, 6);
            mixStep(v, p + len - 64, 7);
          }
          mixStep(v, p + 32, 4);
          mixStep(v, p + len - 48, 5);
        }
        mixStep(v, p + 16, 2);
        mixStep(v, p + len - 32, 3);
      }
      mixStep(v, p, 0);
      mixStep(v, p + len - 16, 1);
    } else {
      for (let i = 0; i < 8; i++) mixStep(v, p + 16 * i, i);
      avalanche(mL, mH);
      mL = rL;
      mH = rH;
      const nChunks = len >>> 4;
      for (let i = 8; i < nChunks; i++) mixStep(v, p + 16 * i, i);
      mixStep(v, p + len - 16, 15);
    }
    avalanche(mL, mH);
  } else {
    hashLong(v, p, len, sL, sH);
  }
  out[off] = rL;
  out[off + 1] = rH;
}

/**
 * XXH3-64 of exactly 16 bytes given as two u64 (lo, hi) halves: le_u64(a) ‖ le_u64(b).
 * This is Dynamo's chained sequence hash input; no memory reads.
 */
export function xxh3Pair16(
  aL: number,
  aH: number,
  bL: number,
  bH: number,
  sL: number,
  sH: number,
  out: Uint32Array | Int32Array,
  off: number,
): void {
  const t0 = (S24_32L >>> 0) + (sL >>> 0);
  const lowL = (t0 | 0) ^ aL;
  const lowH = ((S24_32H + sH + (t0 >= TWO32 ? 1 : 0)) | 0) ^ aH;
  const d0 = (S40_48L >>> 0) - (sL >>> 0);
  const highL = (d0 | 0) ^ bL;
  const highH = ((S40_48H - sH - (d0 < 0 ? 1 : 0)) | 0) ^ bH;
  // 128-bit product low * high, folded (written out inline: this is the chained-hash hot loop).
  const al = lowL >>> 0,
    ah = lowH >>> 0,
    bl = highL >>> 0,
    bh = highH >>> 0;
  const llL = Math.imul(al, bl) >>> 0;
  const llH = Math.round((al * bl - llL) * INV32);
  const lhL = Math.imul(al, bh) >>> 0;
  const lhH = Math.round((al * bh - lhL) * INV32);
  const hlL = Math.imul(ah, bl) >>> 0;
  const hlH = Math.round((ah * bl - hlL) * INV32);
  const hhL = Math.imul(ah, bh) >>> 0;
  const hhH = Math.round((ah * bh - hhL) * INV32);
  const t1 = llH + lhL + hlL;
  const r1 = t1 >>> 0;
  const t2 = hhL + lhH + hlH + (t1 - r1) * INV32;
  const r2 = t2 >>> 0;
  const r3 = hhH + (t2 - r2) * INV32;
  // 16 + bswap64(low) + high + fold
  const t = 16 + (bswap32(lowH) >>> 0) + (highL >>> 0) + ((llL ^ r2) >>> 0);
  const xL = t >>> 0;
  const xH = (bswap32(lowL) + highH + (r1 ^ r3) + (t - xL) * INV32) | 0;
  // avalanche
  const x = (xL ^ (xH >>> 5)) >>> 0;
  const m = MX1L >>> 0;
  const lo = Math.imul(x, m) >>> 0;
  const hi = (Math.round((x * m - lo) * INV32) + Math.imul(x, MX1H) + Math.imul(xH, MX1L)) | 0;
  out[off] = lo ^ hi;
  out[off + 1] = hi;
}

/**
 * Chained sequence hashes over interleaved (lo, hi) local-hash pairs: out[0..2) = local[0..2) and
 * out[i] = XXH3-64(le_u64(out[i - 1]) ‖ le_u64(local[i]), seed) for 1 <= i < n. Same result as
 * calling xxh3Pair16 in a loop, with the running hash kept in locals.
 */
export function xxh3ChainPairs(local: Uint32Array, n: number, sL: number, sH: number, out: Uint32Array): void {
  if (n <= 0) return;
  sL |= 0;
  sH |= 0;
  let pL = local[0]! | 0;
  let pH = local[1]! | 0;
  out[0] = pL;
  out[1] = pH;
  const t0 = (S24_32L >>> 0) + (sL >>> 0);
  const kLowL = t0 | 0;
  const kLowH = (S24_32H + sH + (t0 >= TWO32 ? 1 : 0)) | 0;
  const d0 = (S40_48L >>> 0) - (sL >>> 0);
  const kHighL = d0 | 0;
  const kHighH = (S40_48H - sH - (d0 < 0 ? 1 : 0)) | 0;
  const m = MX1L >>> 0;
  for (let i = 1; i < n; i++) {
    const lowL = kLowL ^ pL;
    const lowH = kLowH ^ pH;
    const highL = kHighL ^ (local[2 * i]! | 0);
    const highH = kHighH ^ (local[2 * i + 1]! | 0);
    const al = lowL >>> 0,
      ah = lowH >>> 0,
      bl = highL >>> 0,
      bh = highH >>> 0;
    const llL = Math.imul(al, bl) >>> 0;
    const llH = Math.round((al * bl - llL) * INV32);
    const lhL = Math.imul(al, bh) >>> 0;
    const lhH = Math.round((al * bh - lhL) * INV32);
    const hlL = Math.imul(ah, bl) >>> 0;
    const hlH = Math.round((ah * bl - hlL) * INV32);
    const hhL = Math.imul(ah, bh) >>> 0;
    const hhH = Math.round((ah * bh - hhL) * INV32);
    const t1 = llH + lhL + hlL;
    const r1 = t1 >>> 0;
    const t2 = hhL + lhH + hlH + (t1 - r1) * INV32;
    const r2 = t2 >>> 0;
    const r3 = hhH + (t2 - r2) * INV32;
    const t = 16 + (bswap32(lowH) >>> 0) + bl + ((llL ^ r2) >>> 0);
    const xL = t >>> 0;
    const xH = (bswap32(lowL) + highH + (r1 ^ r3) + (t - xL) * INV32) | 0;
    const x = (xL ^ (xH >>> 5)) >>> 0;
    const lo = Math.imul(x, m) >>> 0;
    const hi = (Math.round((x * m - lo) * INV32) + Math.imul(x, MX1H) + Math.imul(xH, MX1L)) | 0;
    pL = lo ^ hi;
    pH = hi;
    out[2 * i] = pL;
    out[2 * i + 1] = pH;
  }
}

/**
 * Fast path for the router's block hashes: XXH3-64 of `len` bytes, 17 <= len <= 128 and len a
 * multiple of 4, over the u32 words `w[p .. p + len / 4)` taken as little-endian (each word is
 * read with ToInt32, i.e. the same bits as `>>> 0`: token ids can be passed directly). Same result
 * as xxh3View on those bytes; the 128-bit products are written out inline so the whole block stays
 * in registers.
 */
export function xxh3Words17to128(
  w: ArrayLike<number>,
  p: number,
  len: number,
  sL: number,
  sH: number,
  out: Uint32Array | Int32Array,
  off: number,
): void {
  sL |= 0;
  sH |= 0;
  if (!keysValid || sL !== keySeedL || sH !== keySeedH) setKeys(sL, sH);
  const k = KEYS;
  // acc = len * PRIME64_1
  const pm = P64_1L >>> 0;
  const lo0 = Math.imul(len, pm) >>> 0;
  let accL = lo0;
  let accH = (Math.round((len * pm - lo0) * INV32) + Math.imul(len, P64_1H)) | 0;
  const nw = len >>> 2;
  for (let i = (len - 1) >>> 5; i >= 0; i--) {
    for (let half = 0; half < 2; half++) {
      // Chunk i from the start (key entry 2i) or from the end (key entry 2i + 1).
      const q = half === 0 ? p + 4 * i : p + nw - 4 * i - 4;
      const e = 8 * i + 4 * half;
      const al = ((w[q]! | 0) ^ k[e]!) >>> 0;
      const ah = ((w[q + 1]! | 0) ^ k[e + 1]!) >>> 0;
      const bl = ((w[q + 2]! | 0) ^ k[e + 2]!) >>> 0;
      const bh = ((w[q + 3]! | 0) ^ k[e + 3]!) >>> 0;
      const llL = Math.imul(al, bl) >>> 0;
      const llH = Math.round((al * bl - llL) * INV32);
      const lhL = Math.imul(al, bh) >>> 0;
      const lhH = Math.round((al * bh - lhL) * INV32);
      const hlL = Math.imul(ah, bl) >>> 0;
      const hlH = Math.round((ah * bl - hlL) * INV32);
      const hhL = Math.imul(ah, bh) >>> 0;
      const hhH = Math.round((ah * bh - hhL) * INV32);
      const t1 = llH + lhL + hlL;
      const r1 = t1 >>> 0;
      const t2 = hhL + lhH + hlH + (t1 - r1) * INV32;
      const r2 = t2 >>> 0;
      const r3 = hhH + (t2 - r2) * INV32;
      // acc += (lo64 ^ hi64)
      const t = accL + ((llL ^ r2) >>> 0);
      accL = t >>> 0;
      accH = (accH + (r1 ^ r3) + (t - accL) * INV32) | 0;
    }
  }
  // avalanche
  const x = (accL ^ (accH >>> 5)) >>> 0;
  const m = MX1L >>> 0;
  const lo = Math.imul(x, m) >>> 0;
  const hi = (Math.round((x * m - lo) * INV32) + Math.imul(x, MX1H) + Math.imul(accH, MX1L)) | 0;
  out[off] = lo ^ hi;
  out[off + 1] = hi;
}

// ---------------------------------------------------------------------------------------------
// Convenience wrappers (bigint at the boundary).
// ---------------------------------------------------------------------------------------------

const B64 = new BigUint64Array(1);
const B64_U32 = new Uint32Array(B64.buffer);
const RES = new Uint32Array(2);

let scratch = new Uint8Array(256);
let scratchView = new DataView(scratch.buffer);

/** Split a u64 bigint (taken modulo 2^64) into RES-like halves. */
function seedHalves(seed: bigint): void {
  B64[0] = seed;
  if (!LITTLE_ENDIAN) {
    // BigUint64Array / Uint32Array share platform endianness: swap so [0] is the low word.
    const lo = B64_U32[1]!;
    B64_U32[1] = B64_U32[0]!;
    B64_U32[0] = lo;
  }
}

/** XXH3-64 of `data` with a u64 seed (modulo 2^64), as a bigint. */
export function xxh3_64(data: Uint8Array, seed: bigint = 0n): bigint {
  const len = data.length;
  if (scratch.length < len) {
    scratch = new Uint8Array(Math.max(len, scratch.length * 2));
    scratchView = new DataView(scratch.buffer);
  }
  scratch.set(data);
  seedHalves(seed);
  xxh3View(scratchView, 0, len, B64_U32[0]!, B64_U32[1]!, RES, 0);
  return joinHalves(RES[0]!, RES[1]!);
}

function joinHalves(lo: number, hi: number): bigint {
  if (LITTLE_ENDIAN) {
    B64_U32[0] = lo;
    B64_U32[1] = hi;
  } else {
    B64_U32[0] = hi;
    B64_U32[1] = lo;
  }
  return B64[0]!;
}
