/**
 * vLLM-format KV event publisher over ZeroMQ (dynamo-facts §3.3, §5):
 *
 * - PUB socket, multipart `[topic (empty), seq (u64 big-endian, from 0), msgpack(batch)]`.
 * - batch = positional array `[ts (float seconds), events, dp_rank]`, events are maps:
 *   `{type:"BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id:null,
 *     medium:"GPU", lora_name:null}`, `{type:"BlockRemoved", block_hashes, medium:"GPU"}`,
 *   `{type:"AllBlocksCleared"}`. Hashes are msgpack uint64 (bigints encoded exactly).
 * - Optional ROUTER replay socket with a ring buffer of the last 10,000 batches:
 *   request `[identity, "", start_seq (8B BE)]` -> `[identity, "", seq, payload]` for every
 *   buffered seq >= start_seq, then `[identity, "", seq = -1 (8B signed BE), ""]`.
 *
 * Events emitted in the same synchronous burst (one scheduler pass) go in one batch.
 */
import { encode } from '@msgpack/msgpack';
import { Publisher, Router } from 'zeromq';
import type { RouterEvent } from '../router/types.js';
import { isAddrInUse, PortInUseError } from '../base/net.js';

export const REPLAY_BUFFER_BATCHES = 10_000;

/** One vLLM wire event (a msgpack map). */
export type VllmWireEvent =
  | {
      type: 'BlockStored';
      block_hashes: bigint[];
      parent_block_hash: bigint | null;
      token_ids: number[];
      block_size: number;
      lora_id: null;
      medium: 'GPU';
      lora_name: null;
    }
  | { type: 'BlockRemoved'; block_hashes: bigint[]; medium: 'GPU' }
  | { type: 'AllBlocksCleared' };

/** Convert an in-process RouterEvent (+ the stored blocks' token ids) to a vLLM wire event. */
export function toVllmWireEvent(ev: RouterEvent, blockSize: number, tokenIds?: readonly number[]): VllmWireEvent {
  const d = ev.data;
  switch (d.type) {
    case 'stored': {
      const tokens = tokenIds ? Array.from(tokenIds) : [];
      if (tokens.length !== d.blocks.length * blockSize) {
        throw new Error(`BlockStored needs ${d.blocks.length * blockSize} token ids, got ${tokens.length}`);
      }
      return {
        type: 'BlockStored',
        block_hashes: d.blocks.map((b) => b.blockHash),
        parent_block_hash: d.parentHash,
        token_ids: tokens,
        block_size: blockSize,
        lora_id: null,
        medium: 'GPU',
        lora_name: null,
      };
    }
    case 'removed':
      return { type: 'BlockRemoved', block_hashes: [...d.blockHashes], medium: 'GPU' };
    case 'cleared':
      return { type: 'AllBlocksCleared' };
  }
}

/** msgpack of the positional batch `[ts, events, dp_rank]`, u64 hashes exact. */
export function encodeVllmBatch(events: readonly VllmWireEvent[], dpRank = 0, tsSeconds = Date.now() / 1000): Uint8Array {
  return encode([tsSeconds, events, dpRank], { useBigInt64: true });
}

export function seqFrame(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt.asIntN(64, seq));
  return b;
}

function endpointOf(sock: { lastEndpoint: string | null }, fallbackHost: string): string {
  const ep = sock.lastEndpoint ?? '';
  const m = /^tcp:\/\/(.*):(\d+)$/.exec(ep);
  if (!m) return ep;
  const host = m[1] === '0.0.0.0' || m[1] === '*' ? '127.0.0.1' : m[1]!;
  return `tcp://${host || fallbackHost}:${m[2]}`;
}

export interface ZmqKvPublisherOptions {
  host?: string;
  /** 0 = pick a free port. */
  pubPort: number;
  /** Bind a ROUTER replay socket (0 = pick a free port). */
  replayPort?: number;
  blockSize: number;
  dpRank?: number;
  topic?: string;
  bufferBatches?: number;
}

export class ZmqKvPublisher {
  readonly endpoint: string;
  readonly replayEndpoint?: string;
  private readonly pub: Publisher;
  private readonly router?: Router;
  private readonly topic: Buffer;
  private readonly blockSize: number;
  private readonly dpRank: number;
  private readonly capacity: number;
  private nextSeq = 0n;
  private pending: VllmWireEvent[] = [];
  private flushScheduled = false;
  private readonly queue: Buffer[][] = [];
  private sending?: Promise<void>;
  /** Ring buffer of published batches for replay. */
  private readonly ring: { seq: bigint; payload: Buffer }[] = [];
  private ringStart = 0;
  private closed = false;
  private replayLoop?: Promise<void>;
  batchesPublished = 0;

  private constructor(o: { pub: Publisher; router?: Router; endpoint: string; replayEndpoint?: string; opts: ZmqKvPublisherOptions }) {
    this.pub = o.pub;
    this.router = o.router;
    this.endpoint = o.endpoint;
    this.replayEndpoint = o.replayEndpoint;
    this.topic = Buffer.from(o.opts.topic ?? '', 'utf8');
    this.blockSize = o.opts.blockSize;
    this.dpRank = o.opts.dpRank ?? 0;
    this.capacity = o.opts.bufferBatches ?? REPLAY_BUFFER_BATCHES;
  }

  static async start(opts: ZmqKvPublisherOptions): Promise<ZmqKvPublisher> {
    const host = opts.host ?? '127.0.0.1';
    const pub = new Publisher({ linger: 0, sendHighWaterMark: 100_000 });
    let router: Router | undefined;
    try {
      await pub.bind(`tcp://${host}:${opts.pubPort > 0 ? opts.pubPort : '*'}`);
      if (opts.replayPort !== undefined) {
        router = new Router({ linger: 0 });
        await router.bind(`tcp://${host}:${opts.replayPort > 0 ? opts.replayPort : '*'}`);
      }
    } catch (err) {
      pub.close();
      router?.close();
      if (isAddrInUse(err))
        throw new PortInUseError(
          host,
          `${opts.pubPort}${opts.replayPort !== undefined ? `/${opts.replayPort}` : ''} (ZeroMQ)`,
          (err as Error).message,
        );
      throw err;
    }
    const p = new ZmqKvPublisher({
      pub,
      router,
      endpoint: endpointOf(pub, host),
      replayEndpoint: router ? endpointOf(router, host) : undefined,
      opts,
    });
    if (router) p.replayLoop = p.serveReplay(router);
    return p;
  }

  /** Queue one event; events of the same synchronous burst are sent as one batch. */
  publish(ev: RouterEvent, tokenIds?: readonly number[]): void {
    if (this.closed) return;
    this.pending.push(toVllmWireEvent(ev, this.blockSize, tokenIds));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Send the pending events now as one batch. */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.closed) return;
    const events = this.pending;
    this.pending = [];
    const payload = Buffer.from(encodeVllmBatch(events, this.dpRank));
    const seq = this.nextSeq++;
    this.remember(seq, payload);
    this.batchesPublished++;
    this.queue.push([this.topic, seqFrame(seq), payload]);
    this.sending ??= this.drain();
  }

  /** Batches still buffered for replay (oldest first). */
  bufferedSeqs(): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < this.ring.length; i++) out.push(this.ring[(this.ringStart + i) % this.ring.length]!.seq);
    return out;
  }

  private remember(seq: bigint, payload: Buffer): void {
    if (this.ring.length < this.capacity) {
      this.ring.push({ seq, payload });
    } else {
      this.ring[this.ringStart] = { seq, payload };
      this.ringStart = (this.ringStart + 1) % this.capacity;
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.closed) {
        const frames = this.queue.shift()!;
        try {
          await this.pub.send(frames);
        } catch {
          // PUB drops on error (e.g. closing); the ring buffer still has the batch for replay.
        }
      }
    } finally {
      this.sending = undefined;
    }
  }

  private async serveReplay(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        if (this.closed) break;
        const identity = frames[0]!;
        const delimited = frames.length >= 3 && frames[1]!.length === 0;
        const seqBuf = delimited ? frames[2] : frames[1];
        const prefix = delimited ? [identity, Buffer.alloc(0)] : [identity];
        let start = 0n;
        if (seqBuf && seqBuf.length === 8) start = Buffer.from(seqBuf).readBigInt64BE(0);
        if (start < 0n) start = 0n;
        // Snapshot first: publishing goes on while we send.
        const n = this.ring.length;
        const batch: { seq: bigint; payload: Buffer }[] = [];
        for (let i = 0; i < n; i++) {
          const e = this.ring[(this.ringStart + i) % n]!;
          if (e.seq >= start) batch.push(e);
        }
        for (const e of batch) {
          if (this.closed) break;
          await router.send([...prefix, seqFrame(e.seq), e.payload]);
        }
        if (!this.closed) await router.send([...prefix, seqFrame(-1n), Buffer.alloc(0)]);
      }
    } catch {
      // socket closed
    }
  }

  /** Flush what is pending, then close both sockets. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    if (this.sending) await Promise.race([this.sending, new Promise((r) => setTimeout(r, 200))]);
    this.closed = true;
    this.pub.close();
    this.router?.close();
    await this.replayLoop;
  }
}
