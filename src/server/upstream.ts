/**
 * One proxied request to a worker on undici's dispatcher API: the answer's status and headers
 * come as a promise, and its body as callbacks, chunk by chunk. `undici.request()` would wrap the
 * body in a Readable stream that the relay then reads through an async iterator; for a stream of
 * small SSE events that machinery cost more of the router's thread than the relaying itself.
 * Back-pressure: pause() stops reading from the worker until resume().
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

export interface UpstreamAnswer {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /**
   * Deliver the body to `onChunk` (chunks that came with the headers first); resolves at its end.
   * `onEnd` runs at the end of a complete body, in the same turn as the last chunk when they came
   * together (a relay that ends its own answer there sends the last bytes and its end in one write).
   */
  consume(onChunk: (chunk: Buffer) => void, onEnd?: () => void): Promise<void>;
  /** Read the body and drop it (a small error body, before trying another worker). */
  dump(): Promise<void>;
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
}

class UpstreamCall implements Dispatcher.DispatchHandler, UpstreamAnswer {
  statusCode = 0;
  headers: IncomingHttpHeaders = {};
  private controller?: Dispatcher.DispatchController;
  private head?: { resolve: (a: UpstreamAnswer) => void; reject: (e: Error) => void };
  private body?: { resolve: () => void; reject: (e: Error) => void };
  private onChunk?: (chunk: Buffer) => void;
  private onEnd?: () => void;
  private early: Buffer[] = [];
  private ended = false;
  private failed?: Error;
  private abortReason?: Error;

  constructor(private readonly signal: AbortSignal | undefined) {
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  answer(): Promise<UpstreamAnswer> {
    return new Promise((resolve, reject) => {
      if (this.failed) reject(this.failed);
      else this.head = { resolve, reject };
    });
  }

  private readonly onAbort = () => this.abort(signalReason(this.signal!));

  // ---- undici handler
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason) controller.abort(this.abortReason);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: the final answer follows
    this.statusCode = statusCode;
    this.headers = headers;
    const h = this.head;
    this.head = undefined;
    h?.resolve(this);
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.onChunk) this.onChunk(chunk);
    else this.early.push(chunk);
  }

  onResponseEnd(): void {
    this.ended = true;
    this.finish();
  }

  onResponseError(_c: Dispatcher.DispatchController | undefined, err: Error): void {
    this.failed ??= err;
    const h = this.head;
    this.head = undefined;
    h?.reject(err);
    this.finish();
  }

  private finish(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    const b = this.body;
    if (!b) return;
    this.body = undefined;
    if (this.failed) {
      b.reject(this.failed);
      return;
    }
    try {
      this.onEnd?.();
    } catch (err) {
      b.reject(err as Error);
      return;
    }
    b.resolve();
  }

  // ---- the answer
  consume(onChunk: (chunk: Buffer) => void, onEnd?: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.body = { resolve, reject };
      this.onEnd = onEnd;
      try {
        for (const c of this.early) onChunk(c);
      } catch (err) {
        this.body = undefined;
        this.abort(err as Error);
        reject(err);
        return;
      }
      this.early = [];
      this.onChunk = (chunk) => {
        try {
          onChunk(chunk);
        } catch (err) {
          this.abort(err as Error);
        }
      };
      if (this.ended || this.failed) this.finish();
    });
  }

  dump(): Promise<void> {
    return this.consume(() => {});
  }

  pause(): void {
    this.controller?.pause();
  }

  resume(): void {
    this.controller?.resume();
  }

  abort(reason: Error): void {
    if (this.ended || this.failed) return;
    this.abortReason = reason;
    if (this.controller) this.controller.abort(reason);
    // Before the request was dispatched: onRequestStart aborts it.
  }
}

function signalReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('This operation was aborted');
}

/** Send a request through `dispatcher`; resolves with the answer's status and headers (rejects when none came). */
export function dispatchUpstream(dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, signal?: AbortSignal): Promise<UpstreamAnswer> {
  const call = new UpstreamCall(signal);
  const answer = call.answer();
  if (signal?.aborted) call.abort(signalReason(signal));
  dispatcher.dispatch(opts, call);
  return answer;
}
