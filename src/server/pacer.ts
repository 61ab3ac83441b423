/**
 * Requests take turns on the router's thread.
 *
 * Admitting a request costs the router's thread up to a millisecond or two in one piece: parsing,
 * the cached part of tokenizing, the routing decision, the upstream dispatch. When hundreds of
 * requests arrive together, their sockets become readable in the same poll phase of the event
 * loop, and each one's piece would run there, back to back, while every other socket waits: a
 * /health probe, or the next SSE chunk of a stream already running, waited for the whole burst
 * (100-250 ms for 256 streams of 8k-token chats on this 2-core machine).
 *
 * Through the pacer, requests go on at once until `budgetMs` have passed since the first of them
 * went on in this pass of the loop (wall time, so other work of the pass counts too); later ones
 * wait and then go one per turn (a setImmediate callback, which Node runs after the poll phase),
 * in arrival order. Sockets are polled between any two turns, so /health and running streams
 * wait for about the budget plus one request's piece. Requests that arrive one by one never
 * wait; a turn costs the loop a few microseconds.
 */
export class TurnPacer {
  private readonly waiting: Array<() => void> = [];
  private head = 0;
  private scheduled = false;
  /** When the first request that went on inline in this pass of the loop did so (-1: none yet). */
  private windowStart = -1;

  /** `budgetMs`: how long after the first inline request of a pass others may still go on inline. */
  constructor(private readonly budgetMs = 4) {}

  /** Requests waiting for their turn. */
  get depth(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Undefined when the request may go on at once (nobody waits, and less than `budgetMs` has
   * passed since the first inline request of this pass of the loop); otherwise a promise that
   * resolves in a later turn of the event loop, after every request that asked before.
   */
  turn(): Promise<void> | undefined {
    if (this.depth === 0) {
      const now = performance.now();
      if (this.windowStart < 0) {
        this.windowStart = now;
        setImmediate(this.closeWindow);
        return undefined;
      }
      if (now - this.windowStart < this.budgetMs) return undefined;
    }
    return new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.next);
      }
    });
  }

  /** The loop got past its poll phase: the next request may go on inline again. */
  private readonly closeWindow = (): void => {
    this.windowStart = -1;
  };

  /** Lets one request go on; its continuation runs right after this callback, before the next poll. */
  private readonly next = (): void => {
    const resolve = this.waiting[this.head++]!;
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
      this.scheduled = false;
    } else {
      // Compact now and then so a long burst does not keep every resolved slot.
      if (this.head >= 1024) {
        this.waiting.splice(0, this.head);
        this.head = 0;
      }
      setImmediate(this.next);
    }
    resolve();
  };
}
