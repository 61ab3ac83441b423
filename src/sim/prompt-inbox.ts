/**
 * Prompt token ids handed to a simulated worker by the router in the same process tree, keyed
 * by the request id the router also sends as `x-request-id`: the worker then skips tokenizing
 * text the router has already tokenized. Ids that nobody claims expire.
 */
export interface PromptTokenSource {
  /** The ids for `requestId` if the router sent (or is sending) them; undefined after `waitMs`. */
  take(requestId: string, waitMs: number): Promise<Uint32Array | undefined>;
}

export class PromptTokenInbox implements PromptTokenSource {
  private readonly ready = new Map<string, { ids: Uint32Array; at: number }>();
  private readonly waiting = new Map<string, (ids: Uint32Array | undefined) => void>();
  private readonly sweep: NodeJS.Timeout;

  constructor(private readonly ttlMs = 30_000) {
    this.sweep = setInterval(
      () => {
        const old = performance.now() - this.ttlMs;
        for (const [k, v] of this.ready) if (v.at < old) this.ready.delete(k);
      },
      Math.max(1000, ttlMs / 2),
    );
    this.sweep.unref();
  }

  put(requestId: string, ids: Uint32Array): void {
    const w = this.waiting.get(requestId);
    if (w) {
      this.waiting.delete(requestId);
      w(ids);
    } else this.ready.set(requestId, { ids, at: performance.now() });
  }

  take(requestId: string, waitMs: number): Promise<Uint32Array | undefined> {
    const r = this.ready.get(requestId);
    if (r) {
      this.ready.delete(requestId);
      return Promise.resolve(r.ids);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId);
        resolve(undefined);
      }, waitMs);
      this.waiting.set(requestId, (ids) => {
        clearTimeout(timer);
        resolve(ids);
      });
    });
  }

  close(): void {
    clearInterval(this.sweep);
    for (const w of this.waiting.values()) w(undefined);
    this.waiting.clear();
    this.ready.clear();
  }
}
