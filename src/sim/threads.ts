/**
 * Simulated workers on their own threads: `router --sim N` starts each SimWorker (engine, HTTP
 * server, SSE streams) in a worker thread, so the engines' passes and streams cannot starve the
 * router's event loop. What the in-process path offered is kept across the thread boundary:
 *   - KV events: posted by the thread (batched per tick, in order; Stored hashes as u32 pairs,
 *     thread-events.ts) and delivered to the router's indexer as RouterEvents, no ZMQ needed;
 *   - prompt token ids: the router posts the ids it computed for a request (`provideTokens`), and
 *     the worker uses them instead of tokenizing the text again.
 */
import { Worker } from 'node:worker_threads';
import type { RouterEvent } from '../router/types.js';
import { fromWire, type WireEvent } from './thread-events.js';
import type { SimWorkerOptions } from './worker.js';

export interface ThreadedSimWorkerOptions extends Omit<SimWorkerOptions, 'log' | 'clock' | 'promptTokens' | 'tokenTexts'> {
  /** Per-request log lines from the thread. */
  log?: (line: string) => void;
  /** Token id -> text for the engine's output ids, so the thread needs no tokenizer to stream. */
  tokenTexts?: ReadonlyMap<number, string>;
}

const fromTs = import.meta.url.endsWith('.ts');

export class ThreadedSimWorker {
  private readonly listeners = new Set<(ev: RouterEvent) => void>();
  private closing?: Promise<void>;

  private constructor(
    readonly id: string,
    private readonly thread: Worker,
    readonly url: string,
    readonly zmqEndpoint: string | undefined,
    readonly zmqReplayEndpoint: string | undefined,
    readonly numGpuBlocks: number,
    readonly blockSize: number,
  ) {}

  static start(opts: ThreadedSimWorkerOptions): Promise<ThreadedSimWorker> {
    const { log, tokenTexts, ...options } = opts;
    const thread = new Worker(new URL(fromTs ? './thread-main.ts' : './thread-main.js', import.meta.url), {
      workerData: { options, tokenTexts: tokenTexts ? [...tokenTexts] : undefined, logging: !!log },
      execArgv: fromTs ? ['--import', 'tsx'] : [],
      name: `sim ${opts.id}`,
    });
    return new Promise((resolve, reject) => {
      let w: ThreadedSimWorker | undefined;
      thread.on('message', (m: { t: string; [k: string]: unknown }) => {
        if (m.t === 'events') {
          for (const wire of m.events as WireEvent[]) {
            const ev = fromWire(wire);
            for (const l of w?.listeners ?? []) l(ev);
          }
        } else if (m.t === 'log') log?.(m.line as string);
        else if (m.t === 'ready') {
          w = new ThreadedSimWorker(
            opts.id,
            thread,
            m.url as string,
            m.zmq as string | undefined,
            m.replay as string | undefined,
            m.numGpuBlocks as number,
            m.blockSize as number,
          );
          resolve(w);
        } else if (m.t === 'error') reject(new Error(`simulated worker ${opts.id}: ${m.message as string}`));
      });
      thread.on('error', (err) => {
        // Before 'ready' this fails the start; after, the router's health checks take the worker out.
        if (!w) reject(err);
        else log?.(`[${opts.id}] simulated worker thread failed: ${err.stack ?? err.message}`);
      });
      thread.once('exit', (code) => {
        if (!w) reject(new Error(`simulated worker ${opts.id}: thread exited with code ${code} before starting`));
      });
    });
  }

  /** In-process KV events (RouterEvent), in order. Returns an unsubscribe. */
  onKvEvent(listener: (ev: RouterEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Hand the prompt's token ids for request `requestId` (its x-request-id) to the worker. */
  provideTokens(requestId: string, ids: Uint32Array | readonly number[]): void {
    const a = ids instanceof Uint32Array ? ids.slice() : Uint32Array.from(ids); // a copy to transfer
    this.thread.postMessage({ t: 'ids', id: requestId, ids: a }, [a.buffer]);
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const done = () => resolve();
      this.thread.once('exit', done);
      this.thread.on('message', (m: { t: string }) => {
        if (m.t === 'closed') void this.thread.terminate();
      });
      this.thread.postMessage({ t: 'close' });
      setTimeout(() => void this.thread.terminate(), 5000).unref();
    });
    return this.closing;
  }
}
