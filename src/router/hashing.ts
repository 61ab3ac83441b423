/**
 * Block hashing exactly as Dynamo's KV router does it (dynamo-facts §2).
 *
 * - Local block hash (`tokens_hash`): XXH3-64 over the block's token ids encoded as
 *   u32 little-endian, seeded with 1337 (or a LoRA / cache-salt mixed seed).
 * - Only complete blocks are hashed; a partial tail never is.
 * - Sequence hash (chained): seq[0] = local[0];
 *   seq[i] = XXH3-64(le_u64(seq[i-1]) ‖ le_u64(local[i]), seed 1337).
 *
 * Hashes are u64 values carried as `bigint` at this API boundary so that they round-trip
 * exactly through msgpack / JSON wire formats.
 *
 * Pure computation: no I/O. XXH3-64 is the pure-TypeScript port in ./xxh3.ts (bit-exact with the
 * reference; no N-API transition and no BigInt per block on the hot paths). The @node-rs/xxhash
 * addon stays available as an alternative backend (setHashBackend('native')) and as the test oracle.
 */
import { xxh3 } from '@node-rs/xxhash';
import { xxh3View, xxh3Pair16, xxh3ChainPairs, xxh3Words17to128, xxh3_64 } from './xxh3.js';
import { wasmBlockPairs, wasmBlockSizeSupported, wasmChainPairs, wasmHashAvailable } from './xxh3-wasm.js';
import { LITTLE_ENDIAN } from '../base/endian.js';

export const XXH3_SEED = 1337n;
const U64_MASK = (1n << 64n) - 1n;

export interface HashSalt {
  /** LoRA adapter name; empty or undefined means none. */
  loraName?: string | null;
  /** Per-request cache salt (vLLM `cache_salt`); empty or undefined means none. */
  cacheSalt?: string | null;
}

/**
 * Which XXH3-64 implementation the hashing functions use. 'wasm' (default where WebAssembly
 * compiles) hashes all blocks of a request, and chains all its sequence hashes, in one call each
 * into ./xxh3-wasm.ts (block sizes 5..32 tokens; other sizes and single hashes use 'js');
 * 'js' is the pure-TypeScript port in ./xxh3.ts (no N-API call or BigInt per block); 'native' is
 * the @node-rs/xxhash addon, one call per block. All give identical results; the switch exists
 * for benchmarks and cross-checks.
 */
export type HashBackend = 'wasm' | 'js' | 'native';
let backend: HashBackend = wasmHashAvailable() ? 'wasm' : 'js';
export function setHashBackend(b: HashBackend): void {
  if (b !== 'js' && b !== 'native' && b !== 'wasm') throw new RangeError(`unknown hash backend ${String(b)}`);
  if (b === 'wasm' && !wasmHashAvailable()) throw new RangeError('hash backend wasm: WebAssembly is not available here');
  backend = b;
}
export function getHashBackend(): HashBackend {
  return backend;
}

const encoder = new TextEncoder();

function hashBytes(bytes: Uint8Array, seed: bigint): bigint {
  return backend === 'native' ? xxh3.xxh64(bytes, seed) : xxh3_64(bytes, seed);
}

/** The seed for local block hashes after LoRA-name and cache-salt mixing (wrapping u64 adds). */
export function saltedSeed(salt?: HashSalt): bigint {
  let seed = XXH3_SEED;
  if (salt?.loraName) seed = (seed + hashBytes(encoder.encode(salt.loraName), 0n)) & U64_MASK;
  if (salt?.cacheSalt) seed = (seed + hashBytes(encoder.encode(salt.cacheSalt), 1n)) & U64_MASK;
  return seed;
}

// Reused scratch buffers: hashing is on the routing hot path. Token ids are written as u32 LE.
let scratch = new Uint8Array(64 * 4);
let scratchView = new DataView(scratch.buffer);
let scratchU32 = new Uint32Array(scratch.buffer);

function ensureScratch(bytes: number): void {
  if (scratch.byteLength < bytes) {
    const size = Math.max(bytes, scratch.byteLength * 2);
    scratch = new Uint8Array(size + ((4 - (size & 3)) & 3));
    scratchView = new DataView(scratch.buffer);
    scratchU32 = new Uint32Array(scratch.buffer);
  }
}

/** Write `count` token ids from tokens[start..] as u32 LE at the start of the scratch buffer. */
function writeTokens(tokens: ArrayLike<number>, start: number, count: number): void {
  ensureScratch(count * 4);
  if (LITTLE_ENDIAN) {
    const u = scratchU32;
    // Uint32Array stores apply ToUint32, exactly like `>>> 0`.
    for (let i = 0; i < count; i++) u[i] = tokens[start + i]!;
  } else {
    const v = scratchView;
    for (let i = 0; i < count; i++) v.setUint32(i * 4, tokens[start + i]! >>> 0, true);
  }
}

const B64 = new BigUint64Array(1);
const B64_U32 = new Uint32Array(B64.buffer);
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = 1 - LO;
const RES = new Uint32Array(2);

/** u64 seed halves into (B64_U32[LO], B64_U32[HI]); the addon reads a negative bigint seed as |seed|. */
function splitSeed(seed: bigint): void {
  B64[0] = seed < 0n ? -seed : seed;
}

function joinRes(): bigint {
  B64_U32[LO] = RES[0]!;
  B64_U32[HI] = RES[1]!;
  return B64[0]!;
}

/** Hash one block of token ids (u32 LE each). */
export function hashTokenBlock(tokens: ArrayLike<number>, start: number, blockSize: number, seed: bigint = XXH3_SEED): bigint {
  const bytes = blockSize * 4;
  writeTokens(tokens, start, blockSize);
  if (backend === 'native') return xxh3.xxh64(scratch.subarray(0, bytes), seed);
  splitSeed(seed);
  xxh3View(scratchView, 0, bytes, B64_U32[LO]!, B64_U32[HI]!, RES, 0);
  return joinRes();
}

/** Local block hashes of every complete block of `tokens`. */
export function computeBlockHashes(tokens: ArrayLike<number>, blockSize: number, salt?: HashSalt): bigint[] {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be an integer >= 1, got ${blockSize}`);
  const seed = saltedSeed(salt);
  const n = Math.floor(tokens.length / blockSize);
  const out = new Array<bigint>(n);
  if (backend === 'native') {
    for (let b = 0; b < n; b++) out[b] = hashTokenBlock(tokens, b * blockSize, blockSize, seed);
    return out;
  }
  const pairs =
    backend === 'wasm' && wasmBlockSizeSupported(blockSize)
      ? wasmBlockPairs(tokens, blockSize, n, seed)
      : blockPairsJs(tokens, blockSize, n, seed);
  for (let b = 0; b < n; b++) {
    B64_U32[LO] = pairs[2 * b]!;
    B64_U32[HI] = pairs[2 * b + 1]!;
    out[b] = B64[0]!;
  }
  return out;
}

const pair = new Uint8Array(16);
const pairView = new DataView(pair.buffer);
const SEED_LO = Number(XXH3_SEED & 0xffffffffn);
const SEED_HI = Number(XXH3_SEED >> 32n);

/** Chain one more local hash onto a parent sequence hash. */
export function nextSequenceHash(parentSeq: bigint, local: bigint): bigint {
  if (backend === 'native') {
    pairView.setBigUint64(0, parentSeq, true);
    pairView.setBigUint64(8, local, true);
    return xxh3.xxh64(pair, XXH3_SEED);
  }
  B64[0] = parentSeq;
  const pL = B64_U32[LO]!,
    pH = B64_U32[HI]!;
  B64[0] = local;
  xxh3Pair16(pL, pH, B64_U32[LO]!, B64_U32[HI]!, SEED_LO, SEED_HI, RES, 0);
  return joinRes();
}

/** Sequence (chained) hashes for a list of local block hashes. */
export function computeSequenceHashes(localHashes: readonly bigint[]): bigint[] {
  const out = new Array<bigint>(localHashes.length);
  let prev = 0n;
  for (let i = 0; i < localHashes.length; i++) {
    prev = i === 0 ? localHashes[0]! : nextSequenceHash(prev, localHashes[i]!);
    out[i] = prev;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pair-based variants for the hot paths: hashes as interleaved u32 [lo, hi] without bigint arrays.
// ---------------------------------------------------------------------------------------------

const splitBuf = new BigUint64Array(1);
const splitU32 = new Uint32Array(splitBuf.buffer);

/** JS path: all n blocks' token ids into scratch once, then one XXH3 per block, no BigInt. */
function blockPairsJs(tokens: ArrayLike<number>, blockSize: number, n: number, seed: bigint): Uint32Array {
  const out = new Uint32Array(n * 2);
  if (n === 0) return out;
  B64[0] = seed;
  const sL = B64_U32[LO]!,
    sH = B64_U32[HI]!;
  const bytes = blockSize * 4;
  if (bytes > 16 && bytes <= 128) {
    // Block sizes 5..32 tokens (Dynamo's 16 included): the inlined medium path reading the token
    // ids directly as u32 words (no copy; ToInt32 gives the same bits as the u32 LE encoding).
    for (let b = 0; b < n; b++) xxh3Words17to128(tokens, b * blockSize, bytes, sL, sH, out, 2 * b);
  } else {
    writeTokens(tokens, 0, n * blockSize);
    const v = scratchView;
    for (let b = 0; b < n; b++) xxh3View(v, b * bytes, bytes, sL, sH, out, 2 * b);
  }
  return out;
}

/** Local block hashes of every complete block, as interleaved u32 pairs (length 2 * blocks). */
export function computeBlockHashPairs(tokens: ArrayLike<number>, blockSize: number, salt?: HashSalt): Uint32Array {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be an integer >= 1, got ${blockSize}`);
  const seed = saltedSeed(salt);
  const n = Math.floor(tokens.length / blockSize);
  if (backend === 'wasm') {
    if (n > 0 && wasmBlockSizeSupported(blockSize)) return wasmBlockPairs(tokens, blockSize, n, seed);
    return blockPairsJs(tokens, blockSize, n, seed);
  }
  if (backend === 'js') return blockPairsJs(tokens, blockSize, n, seed);
  const out = new Uint32Array(n * 2);
  for (let b = 0; b < n; b++) {
    splitBuf[0] = hashTokenBlock(tokens, b * blockSize, blockSize, seed);
    out[2 * b] = splitU32[LO]!;
    out[2 * b + 1] = splitU32[HI]!;
  }
  return out;
}

/** Sequence hashes from local hash pairs, as interleaved u32 pairs. */
export function computeSequenceHashPairs(localPairs: Uint32Array, n = localPairs.length >>> 1): Uint32Array {
  if (backend === 'wasm' && n > 1) return wasmChainPairs(localPairs, n, XXH3_SEED);
  const out = new Uint32Array(n * 2);
  if (n === 0) return out;
  out[0] = localPairs[0]!;
  out[1] = localPairs[1]!;
  if (backend !== 'native') {
    xxh3ChainPairs(localPairs, n, SEED_LO, SEED_HI, out);
    return out;
  }
  for (let i = 1; i < n; i++) {
    pairView.setUint32(0, out[2 * i - 2]!, true);
    pairView.setUint32(4, out[2 * i - 1]!, true);
    pairView.setUint32(8, localPairs[2 * i]!, true);
    pairView.setUint32(12, localPairs[2 * i + 1]!, true);
    splitBuf[0] = xxh3.xxh64(pair, XXH3_SEED);
    out[2 * i] = splitU32[LO]!;
    out[2 * i + 1] = splitU32[HI]!;
  }
  return out;
}
