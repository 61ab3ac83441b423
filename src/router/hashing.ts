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
 * Pure computation: no I/O. The native xxh3 addon is only a fast hash function.
 */
import { xxh3 } from '@node-rs/xxhash';

export const XXH3_SEED = 1337n;
const U64_MASK = (1n << 64n) - 1n;

export interface HashSalt {
  /** LoRA adapter name; empty or undefined means none. */
  loraName?: string | null;
  /** Per-request cache salt (vLLM `cache_salt`); empty or undefined means none. */
  cacheSalt?: string | null;
}

const encoder = new TextEncoder();

/** The seed for local block hashes after LoRA-name and cache-salt mixing (wrapping u64 adds). */
export function saltedSeed(salt?: HashSalt): bigint {
  let seed = XXH3_SEED;
  if (salt?.loraName) seed = (seed + xxh3.xxh64(encoder.encode(salt.loraName), 0n)) & U64_MASK;
  if (salt?.cacheSalt) seed = (seed + xxh3.xxh64(encoder.encode(salt.cacheSalt), 1n)) & U64_MASK;
  return seed;
}

// Reused scratch buffers: hashing is on the routing hot path.
let scratch = new Uint8Array(64 * 4);
let scratchView = new DataView(scratch.buffer);

/** Hash one block of token ids (u32 LE each). */
export function hashTokenBlock(tokens: ArrayLike<number>, start: number, blockSize: number, seed: bigint = XXH3_SEED): bigint {
  const bytes = blockSize * 4;
  if (scratch.byteLength < bytes) {
    scratch = new Uint8Array(bytes);
    scratchView = new DataView(scratch.buffer);
  }
  for (let i = 0; i < blockSize; i++) scratchView.setUint32(i * 4, tokens[start + i]! >>> 0, true);
  return xxh3.xxh64(scratch.subarray(0, bytes), seed);
}

/** Local block hashes of every complete block of `tokens`. */
export function computeBlockHashes(tokens: ArrayLike<number>, blockSize: number, salt?: HashSalt): bigint[] {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be an integer >= 1, got ${blockSize}`);
  const seed = saltedSeed(salt);
  const n = Math.floor(tokens.length / blockSize);
  const out = new Array<bigint>(n);
  for (let b = 0; b < n; b++) out[b] = hashTokenBlock(tokens, b * blockSize, blockSize, seed);
  return out;
}

const pair = new Uint8Array(16);
const pairView = new DataView(pair.buffer);

/** Chain one more local hash onto a parent sequence hash. */
export function nextSequenceHash(parentSeq: bigint, local: bigint): bigint {
  pairView.setBigUint64(0, parentSeq, true);
  pairView.setBigUint64(8, local, true);
  return xxh3.xxh64(pair, XXH3_SEED);
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

/** Local block hashes of every complete block, as interleaved u32 pairs (length 2 * blocks). */
export function computeBlockHashPairs(tokens: ArrayLike<number>, blockSize: number, salt?: HashSalt): Uint32Array {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be an integer >= 1, got ${blockSize}`);
  const seed = saltedSeed(salt);
  const n = Math.floor(tokens.length / blockSize);
  const out = new Uint32Array(n * 2);
  for (let b = 0; b < n; b++) {
    splitBuf[0] = hashTokenBlock(tokens, b * blockSize, blockSize, seed);
    out[2 * b] = splitU32[0]!;
    out[2 * b + 1] = splitU32[1]!;
  }
  return out;
}

/** Sequence hashes from local hash pairs, as interleaved u32 pairs. */
export function computeSequenceHashPairs(localPairs: Uint32Array, n = localPairs.length >>> 1): Uint32Array {
  const out = new Uint32Array(n * 2);
  if (n === 0) return out;
  out[0] = localPairs[0]!;
  out[1] = localPairs[1]!;
  const u32 = new Uint32Array(pair.buffer);
  for (let i = 1; i < n; i++) {
    u32[0] = out[2 * i - 2]!;
    u32[1] = out[2 * i - 1]!;
    u32[2] = localPairs[2 * i]!;
    u32[3] = localPairs[2 * i + 1]!;
    splitBuf[0] = xxh3.xxh64(pair, XXH3_SEED);
    out[2 * i] = splitU32[0]!;
    out[2 * i + 1] = splitU32[1]!;
  }
  return out;
}
