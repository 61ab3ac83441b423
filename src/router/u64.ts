/**
 * u64 helpers for the hot paths: hashes travel as bigint at the API boundary but are stored
 * internally as two u32 halves (lo, hi) so that no bigint is allocated per block.
 *
 * `U64Table` is an open-addressing hash table (linear probing, backward-shift deletion) keyed by
 * (tag: int32, lo: u32, hi: u32) with an int32 value and an optional float64 auxiliary value.
 * Keys are compared exactly: no truncation of the 64-bit hash.
 */

const B64 = new BigUint64Array(1);
const B64_U32 = new Uint32Array(B64.buffer);

/** Low 32 bits of a u64 bigint (negative values are taken modulo 2^64, i.e. an i64 -> u64 cast). */
export function u64Lo(h: bigint): number {
  B64[0] = h;
  return B64_U32[0]!;
}

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

function mix(tag: number, lo: number, hi: number): number {
  let h = (lo ^ Math.imul(hi, 0x9e3779b1) ^ Math.imul(tag, 0x85ebca77)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return h ^ (h >>> 16);
}

export class U64Table {
  private cap: number;
  private mask: number;
  private _size = 0;
  private tags: Int32Array;
  private los: Uint32Array;
  private his: Uint32Array;
  /** Value per slot; read with valueAt(). */
  vals: Int32Array;
  /** Optional auxiliary value per slot (stamps). */
  aux: Float64Array | null;
  private used: Uint8Array;
  private readonly withAux: boolean;
  private readonly minCap: number;

  constructor(initialCapacity = 16, withAux = false) {
    let cap = 8;
    while (cap < initialCapacity * 2) cap <<= 1;
    this.minCap = cap;
    this.cap = cap;
    this.mask = cap - 1;
    this.withAux = withAux;
    this.tags = new Int32Array(cap);
    this.los = new Uint32Array(cap);
    this.his = new Uint32Array(cap);
    this.vals = new Int32Array(cap);
    this.aux = withAux ? new Float64Array(cap) : null;
    this.used = new Uint8Array(cap);
  }

  get size(): number {
    return this._size;
  }
  get capacity(): number {
    return this.cap;
  }

  /** Index of the entry or -1. */
  find(tag: number, lo: number, hi: number): number {
    const mask = this.mask;
    const used = this.used;
    const los = this.los;
    let i = mix(tag, lo, hi) & mask;
    while (used[i] !== 0) {
      if (los[i] === lo && this.his[i] === hi && this.tags[i] === tag) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** Value for the key or `missing`. */
  get(tag: number, lo: number, hi: number, missing = -1): number {
    const i = this.find(tag, lo, hi);
    return i < 0 ? missing : this.vals[i]!;
  }

  /**
   * Insert or update; returns the entry index. `lastInsertWasNew` tells whether the key was absent,
   * and `previousValue` holds the old value when it was not.
   */
  lastInsertWasNew = false;
  previousValue = 0;
  set(tag: number, lo: number, hi: number, value: number): number {
    if ((this._size + 1) * 2 > this.cap) this.resize(this.cap * 2);
    const mask = this.mask;
    let i = mix(tag, lo, hi) & mask;
    while (this.used[i] !== 0) {
      if (this.los[i] === lo && this.his[i] === hi && this.tags[i] === tag) {
        this.lastInsertWasNew = false;
        this.previousValue = this.vals[i]!;
        this.vals[i] = value;
        return i;
      }
      i = (i + 1) & mask;
    }
    this.used[i] = 1;
    this.tags[i] = tag;
    this.los[i] = lo;
    this.his[i] = hi;
    this.vals[i] = value;
    if (this.aux) this.aux[i] = 0;
    this._size++;
    this.lastInsertWasNew = true;
    return i;
  }

  delete(tag: number, lo: number, hi: number): boolean {
    const i = this.find(tag, lo, hi);
    if (i < 0) return false;
    this.deleteAt(i);
    return true;
  }

  /** Remove the entry at index `i` (backward-shift deletion keeps probe chains intact). */
  deleteAt(i: number): void {
    const mask = this.mask;
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (this.used[j] === 0) break;
      const home = mix(this.tags[j]!, this.los[j]!, this.his[j]!) & mask;
      // Leave j in place if its home lies cyclically in (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      this.tags[hole] = this.tags[j]!;
      this.los[hole] = this.los[j]!;
      this.his[hole] = this.his[j]!;
      this.vals[hole] = this.vals[j]!;
      if (this.aux) this.aux[hole] = this.aux[j]!;
      hole = j;
    }
    this.used[hole] = 0;
    this._size--;
  }

  // Entry accessors for iteration: for (let i = 0; i < t.capacity; i++) if (t.isUsed(i)) ...
  isUsed(i: number): boolean {
    return this.used[i] !== 0;
  }
  tagAt(i: number): number {
    return this.tags[i]!;
  }
  loAt(i: number): number {
    return this.los[i]!;
  }
  hiAt(i: number): number {
    return this.his[i]!;
  }
  valueAt(i: number): number {
    return this.vals[i]!;
  }

  clear(): void {
    if (this.cap > this.minCap * 4) {
      this.cap = this.minCap;
      this.mask = this.cap - 1;
      this.tags = new Int32Array(this.cap);
      this.los = new Uint32Array(this.cap);
      this.his = new Uint32Array(this.cap);
      this.vals = new Int32Array(this.cap);
      this.aux = this.withAux ? new Float64Array(this.cap) : null;
      this.used = new Uint8Array(this.cap);
    } else {
      this.used.fill(0);
    }
    this._size = 0;
  }

  private resize(newCap: number): void {
    const { tags, los, his, vals, aux, used } = this;
    const oldCap = this.cap;
    this.cap = newCap;
    this.mask = newCap - 1;
    this.tags = new Int32Array(newCap);
    this.los = new Uint32Array(newCap);
    this.his = new Uint32Array(newCap);
    this.vals = new Int32Array(newCap);
    this.aux = this.withAux ? new Float64Array(newCap) : null;
    this.used = new Uint8Array(newCap);
    const mask = this.mask;
    for (let k = 0; k < oldCap; k++) {
      if (used[k] === 0) continue;
      let i = mix(tags[k]!, los[k]!, his[k]!) & mask;
      while (this.used[i] !== 0) i = (i + 1) & mask;
      this.used[i] = 1;
      this.tags[i] = tags[k]!;
      this.los[i] = los[k]!;
      this.his[i] = his[k]!;
      this.vals[i] = vals[k]!;
      if (this.aux && aux) this.aux[i] = aux[k]!;
    }
  }
}
