/**
 * Router replica sync (Dynamo's `--router-replica-sync`, dynamo-facts §1.6): router processes in
 * front of the same workers share their active-sequence bookings over NATS, so each one's load
 * estimate counts the requests the others routed. The KV index is not synced: every replica
 * consumes the workers' KV events itself.
 *
 * Wire formats (all msgpack, in Dynamo's event-plane envelope
 * `{publisher_id, sequence, published_at, topic, payload}`, publisher_id = this replica's router id):
 *
 * - `namespace.{ns}.component.{comp}.active_sequences_events` (topic `active_sequences_events`):
 *   payload = Dynamo's ActiveSequenceEvent, serde-named and externally tagged:
 *   `{request_id, worker: {worker_id: u64, dp_rank}, data, router_id: u64, lora_name: nil}` with
 *   `data` = `{AddRequest: {token_sequence: [u64]|nil, track_prefill_tokens, expected_output_tokens,
 *   prefill_load_hint: {initial_effective_prefill_tokens}}}` | `"MarkPrefillCompleted"` | `"Free"`.
 *   worker_id is the worker's Dynamo worker_id when it has one (`worker_id=` in --worker), else a
 *   stable 64-bit FNV-1a hash of its router worker id, so replicas must name workers alike.
 * - dynamo-lab's own additions (Dynamo has no format for them), on
 *   `namespace.{ns}.component.{comp}.dynamo-lab-router-replicas.{kind}`:
 *   - `session`: `{router_id, session, worker, ttl_ms}`: a session-affinity binding;
 *   - `heartbeat`: `{router_id}` every heartbeatMs; `goodbye`: `{router_id}` on a clean close;
 *   - `snapshot` (request/reply): a starting replica asks, every peer answers
 *     `{router_id, bookings: [{request_id, worker_id, dp_rank, token_sequence, blocks,
 *     prefill_tokens, age_ms, expected_output_tokens}], sessions: [{session, worker, ttl_ms}]}`
 *     with its own bookings only.
 *
 * A replica ignores its own messages (router id). Bookings of a replica not heard from for
 * `deadAfterMs` (heartbeats stopped: it died) or that said goodbye are freed; every booking also
 * expires after the core's active-request expiry (300 s, as Dynamo).
 *
 * Over 400 lines on purpose: a quarter of them are the wire formats above and their decoding;
 * the rest is one class whose handlers share the peer table and the remote bookings.
 */
import { nowMs } from '../base/clock.js';
import { randomBytes } from 'node:crypto';
import { decode, encode } from '@msgpack/msgpack';
import { connect, RequestStrategy, type NatsConnection, type Subscription } from 'nats';
import { fromPairs, toPairs, type BookingChange, type KvRouter } from '../router/index.js';
import type { SessionAffinity } from './sessions.js';
import { DEFAULT_NATS_COMPONENT, DEFAULT_NATS_NAMESPACE, NatsConnectError } from './nats-events.js';

export interface ReplicaSyncOptions {
  readonly servers: readonly string[];
  readonly namespace?: string;
  readonly component?: string;
  /** Heartbeat interval (default 1000 ms). */
  readonly heartbeatMs?: number;
  /** A peer silent for this long is dead and its bookings are freed (default 5 heartbeats). */
  readonly deadAfterMs?: number;
  /** How long a starting replica collects snapshot replies after the last one (default 300 ms, at most 2 s in all). */
  readonly snapshotJitterMs?: number;
  readonly log?: (line: string) => void;
}

export interface ReplicaSyncStats {
  router_id: string;
  subject: string;
  connected: boolean;
  published: number;
  received: number;
  applied: number;
  /** Messages about workers this replica does not know. */
  unknown_worker: number;
  decode_errors: number;
  /** Peers heard from, with their bookings held here and ms since last heard. */
  peers: Array<{ router_id: string; bookings: number; last_seen_ms: number }>;
  /** Snapshot replies received at start and the bookings they carried. */
  snapshot_replies: number;
  snapshot_bookings: number;
  /** Bookings freed because their replica died or left. */
  peer_bookings_dropped: number;
}

/** A stable u64 for a worker on the wire: its Dynamo worker_id, else FNV-1a 64 of its id. */
export function replicaWorkerU64(id: string, dynamoWorkerId?: string): bigint {
  if (dynamoWorkerId !== undefined && /^\d+$/.test(dynamoWorkerId)) return BigInt(dynamoWorkerId);
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(id, 'utf8')) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}

function u64(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v < 0n ? v + (1n << 64n) : v;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return BigInt(v);
  return undefined;
}
function num(v: unknown): number | undefined {
  if (typeof v === 'bigint') return Number(v);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

export class ReplicaSync {
  readonly routerId: bigint;
  readonly stats: ReplicaSyncStats;
  private readonly base: string;
  private readonly subjectEvents: string;
  private readonly subs: Subscription[] = [];
  private sequence = 0n;
  private heartbeat?: NodeJS.Timeout;
  /** Peer router id -> last heard (ms) and the request ids it booked here. */
  private readonly peers = new Map<bigint, { lastSeen: number; ids: Set<string> }>();
  private readonly owner = new Map<string, bigint>();
  private closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly opts: ReplicaSyncOptions,
    private readonly core: KvRouter,
    private readonly sessions: SessionAffinity,
    private readonly sessionTtlMs: number,
    /** Router worker id -> wire u64, and back (the registry's current workers). */
    private readonly workerU64: (id: string) => bigint | undefined,
    private readonly workerOf: (u: bigint) => string | undefined,
  ) {
    // Dynamo masks instance ids to be JSON-safe; so do we (53 bits).
    this.routerId = BigInt('0x' + randomBytes(8).toString('hex')) & ((1n << 53n) - 1n);
    const ns = opts.namespace ?? DEFAULT_NATS_NAMESPACE;
    const comp = opts.component ?? DEFAULT_NATS_COMPONENT;
    this.subjectEvents = `namespace.${ns}.component.${comp}.active_sequences_events`;
    this.base = `namespace.${ns}.component.${comp}.dynamo-lab-router-replicas`;
    this.stats = {
      router_id: String(this.routerId),
      subject: this.subjectEvents,
      connected: true,
      published: 0,
      received: 0,
      applied: 0,
      unknown_worker: 0,
      decode_errors: 0,
      peers: [],
      snapshot_replies: 0,
      snapshot_bookings: 0,
      peer_bookings_dropped: 0,
    };
  }

  static async start(
    opts: ReplicaSyncOptions,
    core: KvRouter,
    sessions: SessionAffinity,
    sessionTtlMs: number,
    workerU64: (id: string) => bigint | undefined,
    workerOf: (u: bigint) => string | undefined,
  ): Promise<ReplicaSync> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: opts.servers.map((s) => s.replace(/^nats:\/\//, '')),
        name: 'dynamo-lab-router-replica',
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        timeout: 5000,
      });
    } catch (err) {
      throw new NatsConnectError(opts.servers, (err as Error).message);
    }
    const rs = new ReplicaSync(nc, opts, core, sessions, sessionTtlMs, workerU64, workerOf);
    await rs.begin();
    return rs;
  }

  private async begin(): Promise<void> {
    const nc = this.nc;
    const cb = (fn: (data: Uint8Array) => void) => ({
      callback: (err: Error | null, msg: { data: Uint8Array }) =>
        err ? this.opts.log?.(`[replica-sync] ${err.message}`) : this.safely(() => fn(msg.data)),
    });
    this.subs.push(
      nc.subscribe(
        this.subjectEvents,
        cb((d) => this.onEvent(d)),
      ),
    );
    this.subs.push(
      nc.subscribe(
        `${this.base}.session`,
        cb((d) => this.onSession(d)),
      ),
    );
    this.subs.push(
      nc.subscribe(
        `${this.base}.heartbeat`,
        cb((d) => this.onHeartbeat(d, false)),
      ),
    );
    this.subs.push(
      nc.subscribe(
        `${this.base}.goodbye`,
        cb((d) => this.onHeartbeat(d, true)),
      ),
    );
    this.subs.push(
      nc.subscribe(`${this.base}.snapshot`, {
        callback: (err, msg) => {
          if (err) return;
          this.safely(() => {
            const req = decode(msg.data, { useBigInt64: true }) as Record<string, unknown>;
            if (u64(req?.router_id) === this.routerId) return; // our own request
            msg.respond(this.snapshot());
          });
        },
      }),
    );
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') this.stats.connected = false;
        if (s.type === 'reconnect') this.stats.connected = true;
      }
    })().catch(() => {});
    await nc.flush();
    // Own changes go out as they happen.
    this.core.onBookingChange = (c) => this.publishChange(c);
    this.sessions.onRemember = (session, worker) =>
      this.publish(
        `${this.base}.session`,
        encode({ router_id: this.routerId, session, worker, ttl_ms: this.sessionTtlMs }, { useBigInt64: true }),
      );
    await this.catchUp();
    const hb = this.opts.heartbeatMs ?? 1000;
    const dead = this.opts.deadAfterMs ?? 5 * hb;
    this.heartbeat = setInterval(() => {
      this.publish(`${this.base}.heartbeat`, encode({ router_id: this.routerId }, { useBigInt64: true }));
      const now = nowMs();
      for (const [id, p] of this.peers) if (now - p.lastSeen > dead) this.dropPeer(id, `silent for ${now - p.lastSeen} ms`);
    }, hb);
    this.heartbeat.unref();
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.stats.decode_errors++;
      this.opts.log?.(`[replica-sync] bad message: ${(err as Error).message}`);
    }
  }

  /** A starting replica asks its peers for their bookings and session bindings. */
  private async catchUp(): Promise<void> {
    let replies: AsyncIterable<{ data: Uint8Array }>;
    try {
      replies = await this.nc.requestMany(`${this.base}.snapshot`, encode({ router_id: this.routerId }, { useBigInt64: true }), {
        strategy: RequestStrategy.JitterTimer,
        jitter: this.opts.snapshotJitterMs ?? 300,
        maxWait: 2000,
      });
    } catch {
      return; // no peers
    }
    try {
      for await (const m of replies) this.safely(() => this.applySnapshot(m.data));
    } catch {
      // no responders / timeout: nothing to catch up on
    }
  }

  private applySnapshot(data: Uint8Array): void {
    const s = decode(data, { useBigInt64: true }) as Record<string, unknown>;
    const rid = u64(s.router_id);
    if (rid === undefined || rid === this.routerId || !Array.isArray(s.bookings)) return;
    this.stats.snapshot_replies++;
    const now = nowMs();
    this.touch(rid, now);
    for (const b of s.bookings) {
      if (!isObj(b)) continue;
      const seq = Array.isArray(b.token_sequence) ? b.token_sequence.map(u64) : null;
      if (seq && seq.some((x) => x === undefined)) continue;
      const ok = this.book(
        rid,
        String(b.request_id),
        u64(b.worker_id),
        num(b.dp_rank) ?? 0,
        seq as bigint[] | null,
        num(b.blocks) ?? seq?.length ?? 0,
        num(b.prefill_tokens) ?? 0,
        now - (num(b.age_ms) ?? 0),
        num(b.expected_output_tokens),
      );
      if (ok) this.stats.snapshot_bookings++;
    }
    if (Array.isArray(s.sessions)) {
      for (const x of s.sessions) {
        if (isObj(x) && typeof x.session === 'string' && typeof x.worker === 'string')
          this.sessions.rememberRemote(x.session, x.worker, now, num(x.ttl_ms) ?? this.sessionTtlMs);
      }
    }
  }

  private snapshot(): Uint8Array {
    const now = nowMs();
    const bookings = [];
    for (const b of this.core.localBookings()) {
      const w = this.workerU64(b.workerId);
      if (w === undefined) continue;
      bookings.push({
        request_id: b.requestId,
        worker_id: w,
        dp_rank: b.dpRank,
        token_sequence: b.seqPairs ? fromPairs(b.seqPairs, b.blocks) : null,
        blocks: b.blocks,
        prefill_tokens: b.prefillTokens,
        age_ms: Math.max(0, now - b.startMs),
        expected_output_tokens: b.expectedOutputTokens ?? null,
      });
    }
    return encode(
      {
        router_id: this.routerId,
        bookings,
        sessions: this.sessions.entries(now).map(([session, worker, ttl_ms]) => ({ session, worker, ttl_ms })),
      },
      { useBigInt64: true },
    );
  }

  private publishChange(c: BookingChange): void {
    const w = this.workerU64(c.workerId);
    if (w === undefined) return;
    const data =
      c.type === 'add'
        ? {
            AddRequest: {
              token_sequence: c.seqPairs ? fromPairs(c.seqPairs, c.blocks) : null,
              track_prefill_tokens: c.prefillTokens > 0,
              expected_output_tokens: c.expectedOutputTokens ?? null,
              prefill_load_hint: { initial_effective_prefill_tokens: c.prefillTokens },
              // dynamo-lab: the block count when token_sequence is nil (no KV-reuse assumption).
              ...(c.seqPairs ? {} : { blocks: c.blocks }),
            },
          }
        : c.type === 'prefill_done'
          ? 'MarkPrefillCompleted'
          : 'Free';
    const ev = { request_id: c.requestId, worker: { worker_id: w, dp_rank: c.dpRank }, data, router_id: this.routerId, lora_name: null };
    const payload = encode(ev, { useBigInt64: true });
    const envelope = encode(
      { publisher_id: this.routerId, sequence: this.sequence++, published_at: Date.now(), topic: 'active_sequences_events', payload },
      { useBigInt64: true },
    );
    this.publish(this.subjectEvents, envelope);
  }

  private publish(subject: string, data: Uint8Array): void {
    if (this.closed) return;
    try {
      this.nc.publish(subject, data);
      this.stats.published++;
    } catch {
      // connection closed: fire and forget, as Dynamo
    }
  }

  private onEvent(data: Uint8Array): void {
    const env = decode(data, { useBigInt64: true }) as Record<string, unknown>;
    const payload = env?.payload;
    if (!(payload instanceof Uint8Array)) throw new Error('envelope.payload is not binary');
    const ev = decode(payload, { useBigInt64: true }) as Record<string, unknown>;
    const rid = u64(ev?.router_id);
    if (rid === undefined) throw new Error('router_id missing');
    if (rid === this.routerId) return;
    this.stats.received++;
    const now = nowMs();
    this.touch(rid, now);
    const requestId = String(ev.request_id);
    const d = ev.data;
    if (d === 'Free') {
      if (this.core.freeRemote(requestId, now)) this.stats.applied++;
      this.forget(requestId);
    } else if (d === 'MarkPrefillCompleted') {
      if (this.core.markPrefillCompletedRemote(requestId, now)) this.stats.applied++;
    } else if (isObj(d) && isObj(d.AddRequest)) {
      const a = d.AddRequest;
      const worker = isObj(ev.worker) ? ev.worker : {};
      const seq = Array.isArray(a.token_sequence) ? a.token_sequence.map(u64) : null;
      if (seq && seq.some((x) => x === undefined)) throw new Error('token_sequence holds a non-u64');
      const hint = isObj(a.prefill_load_hint) ? num(a.prefill_load_hint.initial_effective_prefill_tokens) : undefined;
      if (
        this.book(
          rid,
          requestId,
          u64(worker.worker_id),
          num(worker.dp_rank) ?? 0,
          seq as bigint[] | null,
          seq ? seq.length : (num(a.blocks) ?? 0),
          hint ?? 0,
          now,
          num(a.expected_output_tokens),
        )
      )
        this.stats.applied++;
    } else {
      throw new Error(`unknown ActiveSequenceEvent data ${JSON.stringify(typeof d === 'string' ? d : Object.keys(d as object))}`);
    }
  }

  private book(
    rid: bigint,
    requestId: string,
    wire: bigint | undefined,
    dpRank: number,
    seq: bigint[] | null,
    blocks: number,
    prefill: number,
    startMs: number,
    expected?: number,
  ): boolean {
    const workerId = wire === undefined ? undefined : this.workerOf(wire);
    if (workerId === undefined) {
      this.stats.unknown_worker++;
      return false;
    }
    const ok = this.core.bookRemote({
      requestId,
      workerId,
      dpRank,
      seqPairs: seq ? toPairs(seq) : null,
      blocks,
      prefillTokens: prefill,
      nowMs: startMs,
      expectedOutputTokens: expected,
    });
    if (ok) {
      this.owner.set(requestId, rid);
      this.peers.get(rid)!.ids.add(requestId);
    }
    return ok;
  }

  private forget(requestId: string): void {
    const rid = this.owner.get(requestId);
    if (rid === undefined) return;
    this.owner.delete(requestId);
    this.peers.get(rid)?.ids.delete(requestId);
  }

  private onSession(data: Uint8Array): void {
    const m = decode(data, { useBigInt64: true }) as Record<string, unknown>;
    const rid = u64(m?.router_id);
    if (rid === undefined || rid === this.routerId) return;
    const now = nowMs();
    this.touch(rid, now);
    if (typeof m.session === 'string' && typeof m.worker === 'string')
      this.sessions.rememberRemote(m.session, m.worker, now, num(m.ttl_ms) ?? this.sessionTtlMs);
  }

  private onHeartbeat(data: Uint8Array, goodbye: boolean): void {
    const m = decode(data, { useBigInt64: true }) as Record<string, unknown>;
    const rid = u64(m?.router_id);
    if (rid === undefined || rid === this.routerId) return;
    if (goodbye) this.dropPeer(rid, 'it closed');
    else this.touch(rid, nowMs());
  }

  private touch(rid: bigint, now: number): void {
    const p = this.peers.get(rid);
    if (p) p.lastSeen = now;
    else {
      this.peers.set(rid, { lastSeen: now, ids: new Set() });
      this.opts.log?.(`[replica-sync] peer router ${rid} joined`);
    }
  }

  private dropPeer(rid: bigint, why: string): void {
    const p = this.peers.get(rid);
    if (!p) return;
    this.peers.delete(rid);
    const now = nowMs();
    let n = 0;
    for (const id of p.ids) {
      this.owner.delete(id);
      if (this.core.freeRemote(id, now)) n++;
    }
    this.stats.peer_bookings_dropped += n;
    this.opts.log?.(`[replica-sync] peer router ${rid} gone (${why}): freed its ${n} booking(s)`);
  }

  /** Stats with the live peer table. */
  view(): ReplicaSyncStats {
    const now = nowMs();
    this.stats.peers = [...this.peers].map(([id, p]) => ({ router_id: String(id), bookings: p.ids.size, last_seen_ms: now - p.lastSeen }));
    return this.stats;
  }

  /** Say goodbye (peers free our bookings at once) and disconnect. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.publish(`${this.base}.goodbye`, encode({ router_id: this.routerId }, { useBigInt64: true }));
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.core.onBookingChange = undefined;
    this.sessions.onRemember = undefined;
    for (const s of this.subs) s.unsubscribe();
    await this.nc.drain().catch(() => {});
  }

  /** Stop without a goodbye, as a crashed replica would (tests: peers must expire our bookings). */
  async crash(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.core.onBookingChange = undefined;
    this.sessions.onRemember = undefined;
    await this.nc.close().catch(() => {});
  }
}
