/**
 * The approximate mode's expiry records: (slot, block lo, block hi, stamp) per stored block,
 * grouped by expiry bucket. Each bucket keeps its records in fixed-size Float64Array chunks, and
 * chunks freed by expiry or compaction go to a small pool for the next buckets. A `number[]` per
 * bucket, grown by push, made ~3x its final size in garbage on the way (52 KB per 512-block
 * routing, the router's largest allocation in this mode); chunks make none once the pool is warm.
 * Stamps are doubles: a u32 would wrap after 2^32 stores.
 */

/** Records per chunk (4 doubles each: 64 KB). */
const CHUNK_RECORDS = 2048;
const CHUNK_LEN = CHUNK_RECORDS * 4;
/** Free chunks kept for reuse (beyond this they go to the GC): 64 x 64 KB. */
const POOL_MAX = 64;

interface Bucket {
  chunks: Float64Array[];
  /** Records in the bucket. */
  n: number;
}

export type TtlRecordFn<R> = (slot: number, lo: number, hi: number, stamp: number) => R;

export class TtlRecords {
  private readonly buckets = new Map<number, Bucket>();
  private readonly pool: Float64Array[] = [];
  /** The bucket of the last push: consecutive stores of one routing share it. */
  private lastTime = Number.NaN;
  private last: Bucket | undefined;
  /** Records held, superseded ones included until `compact`. */
  size = 0;

  get bucketCount(): number {
    return this.buckets.size;
  }

  push(time: number, slot: number, lo: number, hi: number, stamp: number): void {
    let b = this.last;
    if (time !== this.lastTime || !b) {
      b = this.buckets.get(time);
      if (!b) this.buckets.set(time, (b = { chunks: [], n: 0 }));
      this.last = b;
      this.lastTime = time;
    }
    const at = b.n % CHUNK_RECORDS;
    if (at === 0) b.chunks.push(this.pool.pop() ?? new Float64Array(CHUNK_LEN));
    const c = b.chunks[b.chunks.length - 1]!;
    const o = at * 4;
    c[o] = slot;
    c[o + 1] = lo;
    c[o + 2] = hi;
    c[o + 3] = stamp;
    b.n++;
    this.size++;
  }

  /**
   * Drop the buckets due at `nowMs` (time <= nowMs), oldest first, calling `fn` for each of their
   * records in the order they were added.
   */
  expire(nowMs: number, fn: TtlRecordFn<void>): void {
    if (this.buckets.size === 0) return;
    const due: number[] = [];
    for (const t of this.buckets.keys()) if (t <= nowMs) due.push(t);
    due.sort((a, b) => a - b);
    for (const t of due) {
      const b = this.buckets.get(t)!;
      this.drop(t, b);
      for (let k = 0; k < b.n; k++) {
        const c = b.chunks[(k / CHUNK_RECORDS) | 0]!;
        const o = (k % CHUNK_RECORDS) * 4;
        fn(c[o]!, c[o + 1]!, c[o + 2]!, c[o + 3]!);
      }
      this.release(b.chunks);
    }
  }

  /** Keep only the records for which `keep` is true, in order. */
  compact(keep: TtlRecordFn<boolean>): void {
    let kept = 0;
    for (const [t, b] of this.buckets) {
      let w = 0;
      for (let k = 0; k < b.n; k++) {
        const c = b.chunks[(k / CHUNK_RECORDS) | 0]!;
        const o = (k % CHUNK_RECORDS) * 4;
        const slot = c[o]!;
        const lo = c[o + 1]!;
        const hi = c[o + 2]!;
        const stamp = c[o + 3]!;
        if (!keep(slot, lo, hi, stamp)) continue;
        if (w !== k) {
          const d = b.chunks[(w / CHUNK_RECORDS) | 0]!;
          const p = (w % CHUNK_RECORDS) * 4;
          d[p] = slot;
          d[p + 1] = lo;
          d[p + 2] = hi;
          d[p + 3] = stamp;
        }
        w++;
      }
      if (w === 0) {
        this.drop(t, b);
        this.release(b.chunks);
        continue;
      }
      const need = Math.ceil(w / CHUNK_RECORDS);
      this.release(b.chunks.splice(need));
      b.n = w;
      kept += w;
    }
    this.size = kept;
  }

  private drop(time: number, b: Bucket): void {
    this.buckets.delete(time);
    this.size -= b.n;
    if (this.last === b) {
      this.last = undefined;
      this.lastTime = Number.NaN;
    }
  }

  private release(chunks: Float64Array[]): void {
    for (const c of chunks) if (this.pool.length < POOL_MAX) this.pool.push(c);
  }
}
