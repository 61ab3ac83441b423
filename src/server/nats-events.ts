/**
 * NATS KV event source and a small publisher (bridge), dynamo-facts §3.1–3.2.
 *
 * Dynamo workers publish on the event plane subject
 * `namespace.{ns}.component.{comp}.kv-events` (component-scoped, v1.1) or
 * `namespace.{ns}.component.{comp}.endpoint.{ep}.kv-events` (endpoint-scoped, newest) a msgpack
 * envelope `{publisher_id, sequence, published_at, topic, payload}` whose payload is a msgpack
 * RouterEvent (older) or an array of them (newest). The source subscribes to both subjects,
 * decodes with the router core's decodeNatsEnvelope, and maps each event's `worker_id` (u64) to
 * a router worker id through `resolveWorker`; events of unmapped workers are counted and dropped.
 *
 * NatsKvPublisher does the worker side: it turns in-process RouterEvents (e.g. a SimWorker's)
 * into those envelopes, so simulated workers can feed a router through a real nats-server.
 */
import { encode } from '@msgpack/msgpack';
import { connect, type NatsConnection, type Subscription } from 'nats';
import { decodeNatsEnvelope, type RouterEvent } from '../router/index.js';

export const DEFAULT_NATS_NAMESPACE = 'dynamo';
export const DEFAULT_NATS_COMPONENT = 'backend';

function kvEventSubjects(namespace: string, component: string): string[] {
  return [`namespace.${namespace}.component.${component}.kv-events`, `namespace.${namespace}.component.${component}.endpoint.*.kv-events`];
}

export interface NatsEventSourceOptions {
  /** nats://host:port (one or more). */
  readonly servers: readonly string[];
  readonly namespace?: string;
  readonly component?: string;
  /** Dynamo worker_id (u64 decimal) -> router worker id, or undefined when unknown. */
  readonly resolveWorker: (dynamoWorkerId: string) => string | undefined;
  readonly onEvents: (events: RouterEvent[]) => void;
  readonly log?: (line: string) => void;
}

export interface NatsSourceStats {
  servers: string[];
  subjects: string[];
  connected: boolean;
  messages: number;
  events: number;
  decode_errors: number;
  dropped_events: number;
  unknown_worker_events: number;
  /** Envelope sequence gaps per publisher (events lost between publisher and router). */
  sequence_gaps: number;
  unknown_workers: string[];
}

/** The router could not reach the NATS server(s) given for KV events. */
export class NatsConnectError extends Error {
  constructor(
    readonly servers: readonly string[],
    detail: string,
  ) {
    super(`cannot connect to NATS at ${servers.join(', ')}: ${detail}`);
    this.name = 'NatsConnectError';
  }
}

export class NatsEventSource {
  private readonly subs: Subscription[] = [];
  private readonly lastSeq = new Map<bigint, bigint>();
  private readonly warned = new Set<string>();
  readonly stats: NatsSourceStats;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly opts: NatsEventSourceOptions,
    subjects: string[],
  ) {
    this.stats = {
      servers: [...opts.servers],
      subjects,
      connected: true,
      messages: 0,
      events: 0,
      decode_errors: 0,
      dropped_events: 0,
      unknown_worker_events: 0,
      sequence_gaps: 0,
      unknown_workers: [],
    };
  }

  static async start(opts: NatsEventSourceOptions): Promise<NatsEventSource> {
    const servers = opts.servers.map((s) => s.replace(/^nats:\/\//, ''));
    let nc: NatsConnection;
    try {
      nc = await connect({ servers, name: 'dynamo-lab-router', maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000 });
    } catch (err) {
      throw new NatsConnectError(opts.servers, (err as Error).message);
    }
    const subjects = kvEventSubjects(opts.namespace ?? DEFAULT_NATS_NAMESPACE, opts.component ?? DEFAULT_NATS_COMPONENT);
    const src = new NatsEventSource(nc, opts, subjects);
    for (const subject of subjects) {
      src.subs.push(
        nc.subscribe(subject, { callback: (err, msg) => (err ? opts.log?.(`[nats] ${err.message}`) : src.onMessage(msg.data)) }),
      );
    }
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') src.stats.connected = false;
        if (s.type === 'reconnect') src.stats.connected = true;
        if (s.type === 'disconnect' || s.type === 'reconnect') opts.log?.(`[nats] ${s.type} ${String(s.data)}`);
      }
    })().catch(() => {});
    await nc.flush(); // the subscriptions are registered on the server
    return src;
  }

  private onMessage(data: Uint8Array): void {
    this.stats.messages++;
    const res = decodeNatsEnvelope(data);
    if (!res.ok) {
      this.stats.decode_errors++;
      this.warnOnce(`decode:${res.reason}`, `[nats] undecodable KV event message: ${res.reason}`);
      return;
    }
    const { publisherId, sequence } = res.envelope;
    const last = this.lastSeq.get(publisherId);
    if (last !== undefined && sequence > last + 1n) {
      this.stats.sequence_gaps++;
      this.opts.log?.(`[nats] publisher ${publisherId}: envelope sequence jumped from ${last} to ${sequence} (events lost)`);
    }
    this.lastSeq.set(publisherId, sequence);
    if (res.dropped?.length) this.stats.dropped_events += res.dropped.length;
    const out: RouterEvent[] = [];
    for (const ev of res.events) {
      const id = this.opts.resolveWorker(ev.workerId);
      if (id === undefined) {
        this.stats.unknown_worker_events++;
        if (!this.stats.unknown_workers.includes(ev.workerId) && this.stats.unknown_workers.length < 64)
          this.stats.unknown_workers.push(ev.workerId);
        this.warnOnce(
          `unknown:${ev.workerId}`,
          `[nats] KV events from Dynamo worker_id ${ev.workerId} match no worker: add it with --worker id=NAME,url=URL,worker_id=${ev.workerId}`,
        );
        continue;
      }
      out.push(id === ev.workerId ? ev : { ...ev, workerId: id });
    }
    this.stats.events += out.length;
    if (out.length) this.opts.onEvents(out);
  }

  private warnOnce(key: string, line: string): void {
    if (this.warned.has(key) || this.warned.size > 1000) return;
    this.warned.add(key);
    this.opts.log?.(line);
  }

  async close(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    await this.nc.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Publisher side (bridge)
// ---------------------------------------------------------------------------------------------

/** A RouterEvent as Dynamo serialises it (msgpack named map), with the u64 worker id. */
function toDynamoRouterEvent(ev: RouterEvent, dynamoWorkerId: bigint): Record<string, unknown> {
  const d = ev.data;
  const data =
    d.type === 'stored'
      ? {
          stored: {
            parent_hash: d.parentHash,
            blocks: d.blocks.map((b) => ({ block_hash: b.blockHash, tokens_hash: b.tokensHash, mm_extra_info: null })),
          },
        }
      : d.type === 'removed'
        ? { removed: { block_hashes: [...d.blockHashes] } }
        : 'cleared';
  return {
    worker_id: dynamoWorkerId,
    storage_tier: ev.storageTier ?? 'device',
    event: { event_id: BigInt(ev.eventId), data, dp_rank: ev.dpRank },
  };
}

/** The event-plane envelope around a batch of RouterEvents. */
export function encodeKvEnvelope(
  events: readonly Record<string, unknown>[],
  meta: { publisherId: bigint; sequence: bigint; topic?: string; publishedAt?: number },
): Uint8Array {
  const payload = encode(events, { useBigInt64: true });
  return encode(
    {
      publisher_id: meta.publisherId,
      sequence: meta.sequence,
      published_at: meta.publishedAt ?? Date.now(),
      topic: meta.topic ?? 'kv-events',
      payload,
    },
    { useBigInt64: true },
  );
}

export interface NatsKvPublisherOptions {
  readonly servers: readonly string[];
  readonly namespace?: string;
  readonly component?: string;
  /** Publish on the endpoint-scoped subject with this endpoint name (default: component-scoped). */
  readonly endpoint?: string;
}

/**
 * Republishes in-process KV events as Dynamo event-plane envelopes on NATS: what a Dynamo worker's
 * KvEventPublisher does. One publisher id per attached worker; events of one synchronous burst go
 * in one envelope (an array of RouterEvents, like newest Dynamo).
 */
export class NatsKvPublisher {
  readonly subject: string;
  private readonly detach: Array<() => void> = [];

  private constructor(
    private readonly nc: NatsConnection,
    opts: NatsKvPublisherOptions,
  ) {
    const ns = opts.namespace ?? DEFAULT_NATS_NAMESPACE;
    const comp = opts.component ?? DEFAULT_NATS_COMPONENT;
    this.subject = opts.endpoint
      ? `namespace.${ns}.component.${comp}.endpoint.${opts.endpoint}.kv-events`
      : `namespace.${ns}.component.${comp}.kv-events`;
  }

  static async start(opts: NatsKvPublisherOptions): Promise<NatsKvPublisher> {
    const nc = await connect({ servers: opts.servers.map((s) => s.replace(/^nats:\/\//, '')), name: 'dynamo-lab-kv-publisher' });
    return new NatsKvPublisher(nc, opts);
  }

  /** Publish `source`'s events as Dynamo worker `dynamoWorkerId`. Returns a detach function. */
  attach(source: { onKvEvent(listener: (ev: RouterEvent) => void): () => void }, dynamoWorkerId: bigint): () => void {
    const publisherId = BigInt(Math.floor(Math.random() * Number.MAX_SAFE_INTEGER));
    let sequence = 0n;
    let eventId = 0;
    let pending: Record<string, unknown>[] = [];
    const flush = () => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      try {
        this.nc.publish(this.subject, encodeKvEnvelope(batch, { publisherId, sequence: sequence++ }));
      } catch {
        // connection closed
      }
    };
    const off = source.onKvEvent((ev) => {
      // Dynamo's publisher numbers events per worker from 0.
      pending.push(toDynamoRouterEvent({ ...ev, eventId: eventId++ }, dynamoWorkerId));
      if (pending.length === 1) queueMicrotask(flush);
    });
    const d = () => {
      off();
      flush();
    };
    this.detach.push(d);
    return d;
  }

  /** Publish one raw envelope (tests: gaps, foreign workers). */
  publishRaw(bytes: Uint8Array): void {
    this.nc.publish(this.subject, bytes);
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  async close(): Promise<void> {
    for (const d of this.detach) d();
    await this.nc.drain().catch(() => {});
  }
}
