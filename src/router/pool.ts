/**
 * Typed arrays an index no longer needs, kept for the next array of the same type and length.
 *
 * An index grows its node arena and its hash tables by replacing each array with a larger one, and
 * a disposed index (`RadixIndexer.dispose`) hands back all of its arrays. Without a pool every new
 * array is fresh memory from the OS, which the kernel zeroes page by page on first touch: the index
 * of bench:router's stream touches about 23 MB, some 6,000 page faults, and rounds that took them
 * spent 8-20 ms of system time on top of ~28 ms of work. A Rust tree's nodes come from memory its
 * allocator already holds; with the pool ours come from arrays the process already holds.
 *
 * Arrays are zeroed when taken, so a taken array is indistinguishable from a new one. The pool
 * keeps at most POOL_LIMIT_BYTES (what does not fit is left to the GC), and that memory stays with
 * the process: a long-lived router keeps the arrays its one index outgrew (about a third of the
 * index's size) unless another table of the same size takes them. Written here, not taken from a
 * library: it is a few lines on the indexer's hot allocation path, and the lengths are exact.
 */
export const POOL_LIMIT_BYTES = 64 * 1024 * 1024;

let pooledBytes = 0;
const int32Pool = new Map<number, Int32Array<ArrayBuffer>[]>();
const float64Pool = new Map<number, Float64Array<ArrayBuffer>[]>();

function take<T extends Int32Array<ArrayBuffer> | Float64Array<ArrayBuffer>>(pool: Map<number, T[]>, length: number): T | undefined {
  const a = pool.get(length)?.pop();
  if (a === undefined) return undefined;
  pooledBytes -= a.byteLength;
  a.fill(0);
  return a;
}

function give<T extends Int32Array<ArrayBuffer> | Float64Array<ArrayBuffer>>(pool: Map<number, T[]>, a: T): void {
  if (a.length === 0 || pooledBytes + a.byteLength > POOL_LIMIT_BYTES) return;
  pooledBytes += a.byteLength;
  const list = pool.get(a.length);
  if (list) list.push(a);
  else pool.set(a.length, [a]);
}

/** A zeroed Int32Array of `length`: from the pool when one of that length is there. */
export function takeInt32(length: number): Int32Array<ArrayBuffer> {
  return take(int32Pool, length) ?? new Int32Array(length);
}

/** A zeroed Float64Array of `length`: from the pool when one of that length is there. */
export function takeFloat64(length: number): Float64Array<ArrayBuffer> {
  return take(float64Pool, length) ?? new Float64Array(length);
}

/** Hand back an array nothing reads or writes any more. */
export function recycle(a: Int32Array<ArrayBuffer> | Float64Array<ArrayBuffer> | null): void {
  if (a === null) return;
  if (a instanceof Int32Array) give(int32Pool, a);
  else give(float64Pool, a);
}

/** Bytes held by the pool now (tests, diagnostics). */
export function pooledByteCount(): number {
  return pooledBytes;
}

/** Drop everything the pool holds (tests; or to give memory back after a burst of indexes). */
export function clearPool(): void {
  int32Pool.clear();
  float64Pool.clear();
  pooledBytes = 0;
}
