/**
 * Tokenizer threads (`worker_threads` running thread-worker.ts): prompt text is turned into ids
 * off the event loop that relays streams and answers /health. Two engines:
 * - 'tiktoken': rank-based byte-pair encoding (fast-bpe.ts says when it gives exactly the HF
 *   library's ids; checked on a sample before use, `verify`);
 * - 'hf': the HF library itself, for every tokenizer the first cannot encode exactly.
 * Started on first use (a command that never tokenizes pays nothing); until they are up, and for
 * good once one fails, callers use the HF library from the event loop (the reason is kept).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** What a thread builds: tiktoken from a rank file (byte-level.ts tiktokenRanks), or the HF library from a tokenizer.json. */
export type ThreadEngine = { kind: 'tiktoken'; ranks: string; pattern: string; nfc: boolean } | { kind: 'hf'; path: string };

interface Pending {
  resolve(ids: Uint32Array[]): void;
  reject(err: Error): void;
}

interface Thread {
  worker: Worker;
  /** Batches sent and not answered yet (the thread with fewest gets the next batch). */
  pending: Map<number, Pending>;
}

export type ThreadsState = 'idle' | 'starting' | 'on' | 'off';

/**
 * Thread count: DYNAMO_LAB_TOKENIZER_THREADS, else 2 for tiktoken (1 on a single core) and 1 for
 * the HF library. A tiktoken thread holds its own encoder (~80 MB for a 150k vocabulary); two keep
 * up with the router's own thread, which stays the limit at a few hundred 8k-token requests per
 * second. The HF library (~110 MB per copy) already spreads its Rust work over libuv's pool: its
 * one thread only turns results into ids.
 */
function defaultThreads(kind: ThreadEngine['kind']): number {
  const n = Number(process.env.DYNAMO_LAB_TOKENIZER_THREADS);
  if (Number.isInteger(n) && n >= 1 && n <= 64) return n;
  return kind === 'hf' ? 1 : Math.min(2, availableParallelism());
}

export class TokenizerThreads {
  private threads: Thread[] = [];
  private nextId = 1;
  private _state: ThreadsState = 'idle';
  private _reason: string | undefined;
  private started: Promise<void> | undefined;

  constructor(
    readonly engine: ThreadEngine,
    /** Compares the threads' ids with the reference on a sample; a message when they differ. */
    private readonly verify?: (encode: (texts: string[]) => Promise<Uint32Array[]>) => Promise<string | undefined>,
    private readonly size = defaultThreads(engine.kind),
  ) {}

  get state(): ThreadsState {
    return this._state;
  }

  /** Why the threads are off (build or verification failed, a thread died). */
  get reason(): string | undefined {
    return this._reason;
  }

  /** Build the threads and verify them (once); resolves when the state is 'on' or 'off'. */
  start(): Promise<void> {
    this.started ??= this.boot();
    return this.started;
  }

  private async boot(): Promise<void> {
    this._state = 'starting';
    try {
      const fromTs = import.meta.url.endsWith('.ts');
      const url = new URL(fromTs ? './thread-worker.ts' : './thread-worker.js', import.meta.url);
      await Promise.all(Array.from({ length: this.size }, () => this.spawn(url)));
      const diff = await this.verify?.((texts) => this.encodeBatch(texts, true));
      if (diff) throw new Error(`it differs from the HF library: ${diff}`);
      this._state = 'on';
    } catch (err) {
      this.turnOff((err as Error).message);
    }
  }

  private spawn(url: URL): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(url, {
        workerData: this.engine,
        // The process's own flags, less those a thread refuses (`node --input-type=module -e ...`).
        execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
      });
      const t: Thread = { worker, pending: new Map() };
      worker.on('message', (m: { t?: string; id?: number; ids?: Uint32Array[]; error?: string }) => {
        if (m.t === 'ready') {
          // From now on referenced only while it has work (encodeBatch), so idle threads never
          // keep a process alive (until ready, the caller may be waiting for them).
          worker.unref();
          this.threads.push(t);
          return resolve();
        }
        if (m.t === 'failed') return reject(new Error(`a tokenizer thread could not build its encoder: ${m.error}`));
        const p = t.pending.get(m.id!);
        if (!p) return;
        t.pending.delete(m.id!);
        if (t.pending.size === 0) worker.unref();
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.ids!);
      });
      const fail = (why: string) => {
        reject(new Error(why));
        this.turnOff(why);
      };
      worker.on('error', (err) => fail(`a tokenizer thread failed: ${err.message}`));
      worker.on('exit', (code) => {
        if (this._state !== 'off') fail(`a tokenizer thread exited (code ${code})`);
      });
    });
  }

  /** Token ids of each text (none may hold added tokens), on the thread with the fewest batches waiting. */
  encodeBatch(texts: string[], verifying = false): Promise<Uint32Array[]> {
    if (this._state !== 'on' && !(verifying && this._state === 'starting'))
      return Promise.reject(new Error(`the tokenizer threads are ${this._state}`));
    let t = this.threads[0]!;
    for (const x of this.threads) if (x.pending.size < t.pending.size) t = x;
    const id = this.nextId++;
    if (t.pending.size === 0) t.worker.ref();
    return new Promise((resolve, reject) => {
      t.pending.set(id, { resolve, reject });
      t.worker.postMessage({ id, texts });
    });
  }

  private turnOff(reason: string): void {
    if (this._state === 'off') return;
    this._state = 'off';
    this._reason = reason;
    for (const t of this.threads) {
      for (const p of t.pending.values()) p.reject(new Error(reason));
      t.pending.clear();
      void t.worker.terminate();
    }
    this.threads = [];
  }

  /** Stop the threads (the tokenizer goes on with the HF library from the event loop). */
  close(): void {
    this.turnOff('closed');
  }
}
