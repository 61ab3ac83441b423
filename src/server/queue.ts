/**
 * Router queueing (Dynamo's `--router-queue-threshold`, dynamo-facts §1.3): while every
 * eligible worker has more than `threshold * max_num_batched_tokens` active prefill tokens,
 * new requests wait in the router instead of being sent (or refused). Waiters are served
 * first come, first served; the queue is re-checked whenever a worker's load drops (a first
 * token, a finished request) and after a short poll in case load changes some other way.
 * At most `maxQueued` requests wait; beyond that the request is refused with 529.
 */
import { HttpError } from '../base/http.js';

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

export class RouterQueue {
  private readonly waiters: Waiter[] = [];
  private timer?: NodeJS.Timeout;
  /** Requests that waited, and the total time they waited (ms). */
  queuedTotal = 0;
  rejectedTotal = 0;

  constructor(
    readonly maxQueued: number,
    /** True when a request may go now (some eligible worker is under the threshold). */
    private readonly admissible: () => boolean,
    private readonly pollMs = 50,
  ) {}

  get depth(): number {
    return this.waiters.length;
  }

  /** Resolve when the request may be routed (immediately if nobody waits and a worker has room). */
  async admit(signal?: AbortSignal): Promise<void> {
    if (this.waiters.length === 0 && this.admissible()) return;
    if (this.waiters.length >= this.maxQueued) {
      this.rejectedTotal++;
      throw new HttpError(
        529,
        `every worker is over the prefill queue threshold and the router queue is full (${this.maxQueued} waiting); retry later`,
        'server_error',
        'router_queue_full',
      );
    }
    this.queuedTotal++;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal!.reason ?? new Error('aborted'));
      };
      const w: Waiter = { resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort) };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
      this.arm();
    });
  }

  /** Load dropped somewhere: let waiters go, in order, while a worker has room. */
  notify(): void {
    while (this.waiters.length > 0 && this.admissible()) {
      const w = this.waiters.shift()!;
      w.cleanup();
      w.resolve();
      // The released request books its load synchronously in the same tick only after it
      // resumes, so release one at a time and look again on the next turn.
      if (this.waiters.length > 0) {
        setImmediate(() => this.notify());
        break;
      }
    }
    this.arm();
  }

  private arm(): void {
    if (this.waiters.length === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.notify();
    }, this.pollMs);
    this.timer.unref?.();
  }

  /** Refuse everyone still waiting (server shutdown). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.waiters.splice(0)) {
      w.cleanup();
      w.reject(new HttpError(503, 'the router is shutting down', 'server_error', 'shutting_down'));
    }
  }
}
