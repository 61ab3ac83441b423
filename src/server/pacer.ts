/**
 * Requests take turns on the router's thread.
 *
 * Admitting a request costs the router's thread about a millisecond in one piece: the cached
 * part of tokenizing, the routing decision, the upstream dispatch. When hundreds of requests
 * arrive together, their sockets become readable in the same poll phase of the event loop, and
 * each one's piece would run there, back to back, while every other socket waits: a /health
 * probe, or the next SSE chunk of a stream already running, waited for the whole burst (about
 * 100 ms for 256 streams of 8k-token chats on this 2-core machine).
 *
 * Through the pacer each request runs its piece in a turn of its own (a setImmediate callback,
 * which Node runs after the poll phase), one request per turn, in arrival order. Sockets are
 * polled between any two requests, so /health and running streams wait for one request's piece
 * at most. A turn costs the loop a few microseconds, against a millisecond of work per request.
 */
export class TurnPacer {
  private readonly waiting: Array<() => void> = [];
  private head = 0;
  private scheduled = false;

  /** Requests waiting for their turn. */
  get depth(): number {
    return this.waiting.length - this.head;
  }

  /** Resolves in a later turn of the event loop, after every request that asked before. */
  turn(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.next);
      }
    });
  }

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
