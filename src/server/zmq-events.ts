/**
 * ZMQ KV event source: one per worker. Subscribes to the worker's vLLM-format PUB socket
 * (`[topic, seq u64 BE, msgpack batch]`, dynamo-facts §3.3) and, when the worker has a replay
 * ROUTER socket, asks it for the buffered batches:
 *
 * - on connect (start_seq 0): the state the worker published before we subscribed, and
 * - on a sequence gap (start_seq = the first missing seq): what the PUB socket dropped.
 *
 * While a replay runs, live batches are held and applied afterwards in order, so each batch is
 * applied once. A sequence that falls back to 0 means the worker restarted: its cached blocks are
 * reset before the new events are applied. Batches are decoded with the router core's
 * decodeVllmZmqBatch; event ids are numbered per worker like Dynamo's publisher does.
 */
import { Dealer, Subscriber } from 'zeromq';
import { decodeVllmZmqBatch, type RouterEvent } from '../router/index.js';

export interface ZmqEventSourceOptions {
  readonly workerId: string;
  readonly endpoint: string;
  readonly replayEndpoint?: string;
  readonly blockSize: number;
  /** Decoded events of one batch, in order. */
  readonly onEvents: (events: RouterEvent[]) => void;
  /** The worker's cached blocks must be forgotten (publisher restart / lost history). */
  readonly onReset: (reason: string) => void;
  readonly log?: (line: string) => void;
  /** How long to wait for each replay reply (default 3000 ms). */
  readonly replayTimeoutMs?: number;
  /**
   * When no batch arrived for this long, ask the replay socket for anything newer than the last
   * applied batch (default 2000 ms; 0 = never). Catches a last batch the PUB socket dropped.
   */
  readonly resyncIdleMs?: number;
}

export interface ZmqSourceStats {
  endpoint: string;
  replay_endpoint?: string;
  batches: number;
  next_seq: string | null;
  gaps: number;
  replays: number;
  /** Idle-time replay requests (usually answered with nothing new). */
  resyncs: number;
  replayed_batches: number;
  unrecovered_gaps: number;
  restarts: number;
  decode_errors: number;
  dropped_events: number;
}

const END_MARKER = -1n;
/** Sequences this far behind the expected one are duplicates; further back is a restart. */
const DUPLICATE_WINDOW = 1_000_000n;
/** A forward jump larger than this is not lost batches but a bogus sequence. */
const MAX_PLAUSIBLE_JUMP = 1_000_000_000n;

function seqBytes(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt.asIntN(64, seq));
  return b;
}

export class ZmqEventSource {
  private readonly sub: Subscriber;
  private readonly dealer?: Dealer;
  private nextSeq: bigint | undefined;
  private nextEventId = 0;
  private replaying = false;
  private held: Array<{ seq: bigint; payload: Uint8Array }> = [];
  private closed = false;
  private loop?: Promise<void>;
  private replayDone?: Promise<void>;
  private resyncTimer?: NodeJS.Timeout;
  private liveSinceTick = false;
  readonly stats: ZmqSourceStats;

  constructor(private readonly opts: ZmqEventSourceOptions) {
    this.sub = new Subscriber({ linger: 0, receiveHighWaterMark: 100_000 });
    if (opts.replayEndpoint) this.dealer = new Dealer({ linger: 0, receiveTimeout: opts.replayTimeoutMs ?? 3000 });
    this.stats = {
      endpoint: opts.endpoint,
      replay_endpoint: opts.replayEndpoint,
      batches: 0,
      next_seq: null,
      gaps: 0,
      replays: 0,
      resyncs: 0,
      replayed_batches: 0,
      unrecovered_gaps: 0,
      restarts: 0,
      decode_errors: 0,
      dropped_events: 0,
    };
  }

  /** Connect (ZMQ connects lazily, so an absent worker is not an error) and request the replay. */
  start(): this {
    this.sub.connect(this.opts.endpoint);
    this.sub.subscribe();
    this.dealer?.connect(this.opts.replayEndpoint!);
    if (this.dealer) this.startReplay(0n, 'connect');
    this.loop = this.receive();
    const idle = this.opts.resyncIdleMs ?? 2000;
    if (this.dealer && idle > 0) {
      this.resyncTimer = setInterval(() => {
        if (!this.liveSinceTick && !this.replaying && !this.closed) this.startReplay(this.nextSeq ?? 0n, 'resync');
        this.liveSinceTick = false;
      }, idle);
      this.resyncTimer.unref();
    }
    return this;
  }

  /** Resolves when no replay is running (for tests). */
  async idle(): Promise<void> {
    while (this.replayDone) await this.replayDone;
  }

  private async receive(): Promise<void> {
    try {
      for await (const frames of this.sub) {
        if (this.closed) break;
        if (frames.length < 2) continue;
        const seqBuf = frames[frames.length - 2]!;
        if (seqBuf.length !== 8) continue;
        this.onLive(seqBuf.readBigInt64BE(0), frames[frames.length - 1]!);
      }
    } catch (err) {
      if (!this.closed) this.opts.log?.(`[zmq ${this.opts.workerId}] subscriber stopped: ${(err as Error).message}`);
    }
  }

  private onLive(seq: bigint, payload: Uint8Array): void {
    this.liveSinceTick = true;
    if (this.replaying) {
      this.held.push({ seq, payload });
      return;
    }
    const next = this.nextSeq;
    if (next === undefined || seq === next) {
      this.apply(seq, payload);
      return;
    }
    if (seq < next) {
      if (seq >= next - DUPLICATE_WINDOW && seq !== 0n) return; // a duplicate (replay and live overlap)
      // The sequence went back to 0 (a new publisher process) or far back (an earlier frame
      // carried a bogus, far-ahead sequence): never drop what follows; start this worker over.
      this.stats.restarts++;
      this.opts.log?.(
        `[zmq ${this.opts.workerId}] sequence went back from ${next} to ${seq} (${seq === 0n ? 'worker restarted?' : 'an earlier sequence was bogus'}): resetting its cached blocks`,
      );
      this.opts.onReset(seq === 0n ? 'publisher restarted' : 'sequence went back');
      this.nextSeq = undefined;
      if (seq !== 0n && this.dealer) {
        this.held.push({ seq, payload });
        this.startReplay(0n, 'gap');
      } else this.apply(seq, payload);
      return;
    }
    // seq > next: batches were lost.
    this.stats.gaps++;
    if (seq - next > MAX_PLAUSIBLE_JUMP) {
      // No publisher skips this many batches: the frame's sequence is bogus. Its events are
      // applied, but the sequence we expect stays where it was.
      this.stats.unrecovered_gaps++;
      this.opts.log?.(
        `[zmq ${this.opts.workerId}] implausible sequence ${seq} (expected ${next}): applying its events, keeping the expected sequence`,
      );
      this.decode(seq, payload);
      return;
    }
    if (this.dealer) {
      this.opts.log?.(`[zmq ${this.opts.workerId}] sequence gap: expected ${next}, got ${seq}; requesting replay from ${next}`);
      this.held.push({ seq, payload });
      this.startReplay(next, 'gap');
    } else {
      this.stats.unrecovered_gaps++;
      this.opts.log?.(
        `[zmq ${this.opts.workerId}] sequence gap: expected ${next}, got ${seq}; no replay endpoint, ${seq - next} batch(es) lost`,
      );
      this.apply(seq, payload);
    }
  }

  private apply(seq: bigint, payload: Uint8Array): void {
    this.nextSeq = seq + 1n;
    this.stats.next_seq = this.nextSeq.toString();
    this.decode(seq, payload);
  }

  private decode(seq: bigint, payload: Uint8Array): void {
    this.stats.batches++;
    const res = decodeVllmZmqBatch(payload, {
      workerId: this.opts.workerId,
      blockSize: this.opts.blockSize,
      eventIdStart: this.nextEventId,
    });
    if (!res.ok) {
      this.stats.decode_errors++;
      this.opts.log?.(`[zmq ${this.opts.workerId}] undecodable batch ${seq}: ${res.reason}`);
      return;
    }
    if (res.nextEventId !== undefined) this.nextEventId = res.nextEventId;
    if (res.dropped?.length) {
      this.stats.dropped_events += res.dropped.length;
      this.opts.log?.(`[zmq ${this.opts.workerId}] batch ${seq}: dropped ${res.dropped.length} event(s): ${res.dropped[0]!.reason}`);
    }
    if (res.events.length) this.opts.onEvents(res.events);
  }

  private startReplay(from: bigint, why: 'connect' | 'gap' | 'resync'): void {
    this.replaying = true;
    if (why !== 'resync') this.stats.replays++;
    else this.stats.resyncs++;
    const done = this.replay(from, why).finally(() => {
      this.replaying = false;
      this.replayDone = undefined;
      this.drainHeld();
    });
    this.replayDone = done;
  }

  private async replay(from: bigint, why: 'connect' | 'gap' | 'resync'): Promise<void> {
    const dealer = this.dealer!;
    let first = true;
    try {
      await dealer.send([Buffer.alloc(0), seqBytes(from)]);
      for (;;) {
        if (this.closed) return;
        let frames = await dealer.receive();
        if (frames.length > 0 && frames[0]!.length === 0) frames = frames.slice(1);
        if (frames.length < 1 || frames[0]!.length !== 8) continue;
        const seq = frames[0]!.readBigInt64BE(0);
        if (seq === END_MARKER) return;
        if (first) {
          first = false;
          if (seq > from) {
            // The worker's buffer no longer holds what we need: start this worker over from what it has.
            this.stats.unrecovered_gaps++;
            this.opts.log?.(
              `[zmq ${this.opts.workerId}] replay starts at ${seq}, not ${from}: older batches are gone; resetting its cached blocks`,
            );
            if (from > 0n) this.opts.onReset('replay buffer overrun');
            this.nextSeq = undefined;
          }
        }
        if (this.nextSeq === undefined || seq >= this.nextSeq) {
          if (this.nextSeq !== undefined && seq > this.nextSeq) this.nextSeq = seq; // hole inside the replay
          this.stats.replayed_batches++;
          this.apply(seq, frames[1] ?? new Uint8Array());
        }
      }
    } catch (err) {
      if (!this.closed) this.opts.log?.(`[zmq ${this.opts.workerId}] replay from ${from} failed: ${(err as Error).message}`);
    }
  }

  private drainHeld(): void {
    const held = this.held.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    this.held = [];
    for (const { seq, payload } of held) {
      if (this.nextSeq !== undefined && seq < this.nextSeq) continue;
      if (this.nextSeq !== undefined && seq - this.nextSeq > MAX_PLAUSIBLE_JUMP) {
        this.stats.unrecovered_gaps++;
        this.decode(seq, payload); // a bogus sequence: its events count, the expected sequence stays
        continue;
      }
      if (this.nextSeq !== undefined && seq > this.nextSeq) {
        this.stats.unrecovered_gaps++;
        this.opts.log?.(`[zmq ${this.opts.workerId}] batches ${this.nextSeq}..${seq - 1n} were not replayed; continuing`);
      }
      this.apply(seq, payload);
    }
  }

  /** The worker restarted (seen by a health check): replay its events from the start. */
  resync(): void {
    if (this.closed || !this.dealer) {
      this.nextSeq = undefined;
      return;
    }
    this.nextSeq = undefined;
    if (!this.replaying) this.startReplay(0n, 'connect');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.sub.close();
    this.dealer?.close();
    await Promise.allSettled([this.loop, this.replayDone]);
  }
}
