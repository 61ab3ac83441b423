/**
 * Clocks for the simulated engine. The scheduler only ever asks a clock for the current
 * time and to call it back at a given time, so the same scheduler code runs in real time
 * (HTTP serving: the loop sleeps until pass_start + pass_time) and in virtual time
 * (discrete-event simulation: time jumps to the next event, nothing sleeps).
 */

export type Cancel = () => void;

export interface Clock {
  /** Milliseconds on this clock's time line (monotonic). */
  now(): number;
  /** Run `fn` once when `now() >= atMs` (as soon as possible if that is already past). */
  schedule(atMs: number, fn: () => void): Cancel;
}

/** Wall-clock time: performance.now() and Node timers. */
export class RealClock implements Clock {
  now(): number {
    return performance.now();
  }

  schedule(atMs: number, fn: () => void): Cancel {
    // Node timers have whole-millisecond resolution and may fire a fraction of a millisecond
    // early: re-arm until the target time is really reached (the last < 1 ms via setImmediate).
    let timeout: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    let cancelled = false;
    const fire = () => {
      timeout = undefined;
      immediate = undefined;
      if (cancelled) return;
      const rem = atMs - performance.now();
      if (rem >= 1) timeout = setTimeout(fire, Math.floor(rem));
      else if (rem > 0.02) immediate = setImmediate(fire);
      else fn();
    };
    if (atMs - performance.now() >= 1) timeout = setTimeout(fire, Math.floor(atMs - performance.now()));
    else immediate = setImmediate(fire);
    return () => {
      cancelled = true;
      if (timeout) clearTimeout(timeout);
      if (immediate) clearImmediate(immediate);
    };
  }
}

interface TimerEntry {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * Discrete-event clock: callbacks are kept in a min-heap ordered by (time, insertion order);
 * `runUntilIdle()` pops them in order, setting `now()` to each one's time. One VirtualClock
 * can drive many engines plus the workload's own arrival events.
 */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private heap: TimerEntry[] = [];
  private live = 0;

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  /** Number of pending (not cancelled) callbacks. */
  get pending(): number {
    return this.live;
  }

  schedule(atMs: number, fn: () => void): Cancel {
    const e: TimerEntry = { at: Math.max(atMs, this.t), seq: this.seq++, fn, cancelled: false };
    this.push(e);
    this.live++;
    return () => {
      if (!e.cancelled) {
        e.cancelled = true;
        this.live--;
      }
    };
  }

  /** Run the next pending callback. Returns false when there is none. */
  step(): boolean {
    for (;;) {
      const e = this.pop();
      if (!e) return false;
      if (e.cancelled) continue;
      e.cancelled = true;
      this.live--;
      if (e.at > this.t) this.t = e.at;
      e.fn();
      return true;
    }
  }

  /** Run callbacks until none is left (or `maxEvents` ran). Returns the final time. */
  runUntilIdle(maxEvents = Number.POSITIVE_INFINITY): number {
    let n = 0;
    while (n < maxEvents && this.step()) n++;
    return this.t;
  }

  /** Run every callback due at or before `tMs`, then set the time to `tMs`. */
  runUntil(tMs: number): number {
    for (;;) {
      const top = this.peek();
      if (!top || top.at > tMs) break;
      this.step();
    }
    if (tMs > this.t) this.t = tMs;
    return this.t;
  }

  private peek(): TimerEntry | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap[0];
  }

  private less(a: TimerEntry, b: TimerEntry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: TimerEntry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): TimerEntry | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
