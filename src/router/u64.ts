/**
 * u64 helpers for the hot paths: hashes travel as bigint at the API boundary but are stored
 * internally as two u32 halves (lo, hi) so that no bigint is allocated per block.
 *
 * `U64Table` is an open-addressing hash table (linear probing, backward-shift deletion) keyed by
 * (tag: int32, lo: u32, hi: u32) with an int32 value and an optional float64 auxiliary value.
 * Keys are compared exactly: no truncation of the 64-bit hash.
 */

import { recycle, takeFloat64, takeInt32 } from './pool.js';

const B64 = new BigUint64Array(1);
const B64_U32 = new Uint32Array(B64.buffer);

/** Split a u64 into `out[off] = lo`, `out[off + 1] = hi`. */
export function splitU64(h: bigint, out: Uint32Array, off: number): void {
  B64[0] = h;
  out[off] = B64_U32[0]!;
  out[off + 1] = B64_U32[1]!;
}

/** Join two u32 halves into a u64 bigint. */
export function joinU64(lo: number, hi: number): bigint {
  B64_U32[0] = lo;
  B64_U32[1] = hi;
  return B64[0]!;
}

/** bigint[] -> interleaved Uint32Array [lo0, hi0, lo1, hi1, ...]. */
export function toPairs(hashes: readonly bigint[]): Uint32Array {
  const out = new Uint32Array(hashes.length * 2);
  for (let i = 0; i < hashes.length; i++) {
    B64[0] = hashes[i]!;
    out[2 * i] = B64_U32[0]!;
    out[2 * i + 1] = B64_U32[1]!;
  }
  return out;
}

/** Interleaved pairs -> bigint[]. */
export function fromPairs(pairs: Uint32Array, count = pairs.length >>> 1): bigint[] {
  const out = new Array<bigint>(count);
  for (let i = 0; i < count; i++) out[i] = joinU64(pairs[2 * i]!, pairs[2 * i + 1]!);
  return out;
}

/** Normalise a u64 that may have arrived as an i64 (two's complement cast). */
export function asU64(h: bigint): bigint {
  return BigInt.asUintN(64, h);
}

/**
 * U64Table's hash of a key: a key's home entry is its top bits, so one value serves a table of
 * any capacity. Callers that check keys before probing, or probe more than once, compute it once
 * (`findSlotHashed`, `touchHashed`).
 */
export function mix(tag: number, lo: number, hi: number): number {
  let h = (lo ^ Math.imul(hi, 0x9e3779b1) ^ Math.imul(tag, 0x85ebca77)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return h ^ (h >>> 16);
}

/**
 * Entries are interleaved in one Int32Array (`[tag, lo, hi, value]` per entry) so that a probe
 * touches one cache line. Tags must be >= 0 and are stored as tag + 1: 0 marks an empty entry, so a
 * new table needs no fill (new arrays and arrays from the pool, ./pool.ts, are zeros). lo / hi are stored as
 * int32 bit patterns and accepted as u32 or int32.
 */
export class U64Table {
  private cap: number;
  private mask: number;
  /** Home slot = top bits of the mixed hash (`mix >>> shift`): entries sit in hash order, so a
   * resize re-inserts them in (almost) increasing position order: sequential, cache-friendly. */
  private shift: number;
  private _size = 0;
  private data: Int32Array<ArrayBuffer>;
  /** Optional auxiliary value per entry (stamps), indexed by entry index. */
  aux: Float64Array<ArrayBuffer> | null;
  private withAux: boolean;
  private readonly minCap: number;

  constructor(initialCapacity = 16, withAux = false) {
    let cap = 8;
    while (cap < initialCapacity * 2) cap <<= 1;
    this.minCap = cap;
    this.cap = cap;
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
    this.withAux = withAux;
    this.data = takeInt32(cap * 4);
    this.aux = withAux ? takeFloat64(cap) : null;
  }

  /** Allocate the auxiliary values (zeros) if the table was built without them. */
  enableAux(): void {
    if (this.withAux) return;
    this.withAux = true;
    this.aux = takeFloat64(this.cap);
  }

  get size(): number {
    return this._size;
  }
  get capacity(): number {
    return this.cap;
  }

  /** Index of the entry or -1. */
  find(tag: number, lo: number, hi: number): number {
    const i = this.findSlot(tag, lo, hi);
    return i < 0 ? -1 : i;
  }

  /** Value for the key or `missing`. */
  get(tag: number, lo: number, hi: number, missing = -1): number {
    const i = this.findSlot(tag, lo, hi);
    return i < 0 ? missing : this.data[(i << 2) + 3]!;
  }

  /** Set after `set`: whether the key was absent. */
  lastInsertWasNew = false;
  /** Set after `set` on an existing key: its previous value. */
  previousValue = 0;

  /** Insert or update; returns the entry index. */
  set(tag: number, lo: number, hi: number, value: number): number {
    this.reserve();
    const i = this.findSlot(tag, lo, hi);
    if (i >= 0) {
      const k = (i << 2) + 3;
      this.lastInsertWasNew = false;
      this.previousValue = this.data[k]!;
      this.data[k] = value;
      return i;
    }
    this.insertAt(~i, tag, lo, hi, value);
    this.lastInsertWasNew = true;
    return ~i;
  }

  /**
   * The next capacity: 4x from 4,096 to 1M entries, else 2x. Each resize rehashes every entry into
   * a fresh array and leaves the old one to the GC; growing 4x in the middle range halves the
   * resizes of a table filling up (an index warming up: bench:router's indexer stream ran about
   * 1.4x faster, less rehashing and fewer full GCs) while small tables stay small and a table past 1M
   * entries wastes at most half its memory.
   */
  private grown(): number {
    return this.cap * (this.cap >= 4096 && this.cap < 1 << 20 ? 4 : 2);
  }

  /** Make room for one more insert (call before `findSlot` + `insertAt`). */
  reserve(): void {
    if ((this._size + 1) * 2 > this.cap) this.resize(this.grown());
  }

  /** Make room for `k` more inserts: no resize happens during the next `k` inserts. */
  reserveFor(k: number): void {
    if ((this._size + k) * 2 <= this.cap) return;
    let cap = this.grown();
    while ((this._size + k) * 2 > cap) cap *= 2;
    this.resize(cap);
  }

  /**
   * Read the home entry of each of `n` keys (their `mix` values in `hashes`) ahead of probing them
   * one by one: the loads are independent, so the CPU fetches their cache lines in parallel
   * instead of one miss at a time inside a longer loop. Returns a value derived from the loads
   * (keep it, so the loads are not optimised away).
   */
  touchHashed(hashes: Int32Array, n: number): number {
    const d = this.data;
    const shift = this.shift;
    let acc = 0;
    for (let i = 0; i < n; i++) acc ^= d[(hashes[i]! >>> shift) << 2]!;
    return acc;
  }

  /** `findSlot` for a key whose `mix(tag, lo, hi)` is `h`. */
  findSlotHashed(h: number, tag: number, lo: number, hi: number): number {
    const d = this.data;
    const mask = this.mask;
    const key = tag + 1;
    lo |= 0;
    hi |= 0;
    let i = h >>> this.shift;
    for (;;) {
      const b = i << 2;
      const t = d[b]!;
      if (t === 0) return ~i;
      if (d[b + 1] === lo && d[b + 2] === hi && t === key) return i;
      i = (i + 1) & mask;
    }
  }

  /**
   * Index of the entry, or `~i` (negative) where `i` is the empty entry where the key would be
   * inserted. Valid for `insertAt` only until the table is next modified; call `reserve` first.
   */
  findSlot(tag: number, lo: number, hi: number): number {
    return this.findSlotHashed(mix(tag, lo | 0, hi | 0), tag, lo, hi);
  }

  /** Insert a new key at the empty entry `i` returned (as `~i`) by `findSlot`. */
  insertAt(i: number, tag: number, lo: number, hi: number, value: number): void {
    const d = this.data;
    const b = i << 2;
    d[b] = tag + 1;
    d[b + 1] = lo;
    d[b + 2] = hi;
    d[b + 3] = value;
    if (this.aux) this.aux[i] = 0;
    this._size++;
  }

  delete(tag: number, lo: number, hi: number): boolean {
    const i = this.find(tag, lo, hi);
    if (i < 0) return false;
    this.deleteAt(i);
    return true;
  }

  /** Remove the entry at index `i` (backward-shift deletion keeps probe chains intact). */
  deleteAt(i: number): void {
    const d = this.data;
    const mask = this.mask;
    const shift = this.shift;
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const bj = j << 2;
      if (d[bj] === 0) break;
      const home = mix(d[bj]! - 1, d[bj + 1]!, d[bj + 2]!) >>> shift;
      // Leave j in place if its home lies cyclically in (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      const bh = hole << 2;
      d[bh] = d[bj]!;
      d[bh + 1] = d[bj + 1]!;
      d[bh + 2] = d[bj + 2]!;
      d[bh + 3] = d[bj + 3]!;
      if (this.aux) this.aux[hole] = this.aux[j]!;
      hole = j;
    }
    d[hole << 2] = 0;
    this._size--;
  }

  // Entry accessors for iteration: for (let i = 0; i < t.capacity; i++) if (t.isUsed(i)) ...
  isUsed(i: number): boolean {
    return this.data[i << 2] !== 0;
  }
  tagAt(i: number): number {
    return this.data[i << 2]! - 1;
  }
  loAt(i: number): number {
    return this.data[(i << 2) + 1]! >>> 0;
  }
  hiAt(i: number): number {
    return this.data[(i << 2) + 2]! >>> 0;
  }
  valueAt(i: number): number {
    return this.data[(i << 2) + 3]!;
  }
  setValueAt(i: number, v: number): void {
    this.data[(i << 2) + 3] = v;
  }
  /** Add `delta` to the value at entry `i`; returns the new value. */
  addValueAt(i: number, delta: number): number {
    const k = (i << 2) + 3;
    return (this.data[k] = this.data[k]! + delta);
  }

  /** Empty the table: a table that grew well past its initial capacity hands its arrays back (`release`). */
  clear(): void {
    if (this.cap > this.minCap * 4) {
      this.release();
      return;
    }
    for (let i = 0; i < this.cap; i++) this.data[i << 2] = 0;
    this._size = 0;
  }

  private resize(newCap: number): void {
    const old = this.data;
    const oldAux = this.aux;
    const oldCap = this.cap;
    this.cap = newCap;
    this.mask = newCap - 1;
    this.shift = 32 - Math.log2(newCap);
    const shift = this.shift;
    const d = (this.data = takeInt32(newCap * 4));
    this.aux = this.withAux ? takeFloat64(newCap) : null;
    const mask = this.mask;
    const aux = oldAux ? this.aux : null;
    for (let k = 0; k < oldCap; k++) {
      const bk = k << 2;
      const t = old[bk]!;
      if (t === 0) continue;
      const lo = old[bk + 1]!;
      const hi = old[bk + 2]!;
      let i = mix(t - 1, lo, hi) >>> shift;
      while (d[i << 2] !== 0) i = (i + 1) & mask;
      const b = i << 2;
      d[b] = t;
      d[b + 1] = lo;
      d[b + 2] = hi;
      d[b + 3] = old[bk + 3]!;
      if (aux !== null) aux[i] = oldAux![k]!;
    }
    recycle(old);
    recycle(oldAux);
  }

  /** Hand the table's arrays to the pool (./pool.ts): the table is empty again, at its initial capacity. */
  release(): void {
    recycle(this.data);
    recycle(this.aux);
    this.cap = this.minCap;
    this.mask = this.cap - 1;
    this.shift = 32 - Math.log2(this.cap);
    this.data = takeInt32(this.cap * 4);
    this.aux = this.withAux ? takeFloat64(this.cap) : null;
    this._size = 0;
  }
}
