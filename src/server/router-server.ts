/**
 * The embedded router: an OpenAI-compatible HTTP front that tokenises each request the same
 * way the workers do, asks the router core which worker to use, and proxies the request
 * there (SSE passed through unbuffered). It can run in place of Dynamo's frontend.
 *
 *   client ──HTTP──▶ RouterServer ──route()──▶ KvRouter (src/router, pure; one per policy)
 *                        │  ▲                       ▲
 *                        │  │   KV events ──────────┘  in-process | ZMQ (vLLM PUB + replay) | NATS (Dynamo envelopes)
 *                        │  └── health checks (GET /health), circuit breakers, busy thresholds, session affinity
 *                        └──undici──▶ worker /v1/...   (retry on another worker before the first byte)
 *
 * Every routed response carries x-dynamo-lab-worker / -overlap-blocks / -mode headers, and
 * /debug/decisions shows the per-worker overlap / load / cost table behind each choice.
 * Workers come from the constructor options and at runtime from POST/DELETE /admin/workers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { KvRouter, type KvRouterConfig, type RoutingDecision, type RoutingMode } from '../router/index.js';
import type { RouterEvent } from '../router/types.js';
import { applyChatTemplate, loadTokenizer, type ChatMessage, type Tokenizer } from '../tokenizer/index.js';
import { CircuitBreaker, type BreakerOptions, type BreakerState } from './breaker.js';
import { HttpError, parseJsonBody, readBody, sendError, sendJson } from '../base/http.js';
import { listenOn } from '../base/net.js';
import { Metrics } from './metrics.js';
import { NatsEventSource, type NatsSourceStats } from './nats-events.js';
import { workerSpecFromObject, WorkerSpecError, type WorkerSpec } from './worker-spec.js';
import { ZmqEventSource, type ZmqSourceStats } from './zmq-events.js';

export const ROUTING_MODES: readonly RoutingMode[] = ['kv', 'round-robin', 'random', 'least-loaded', 'power-of-two'];

export type EventSourceKind = 'inproc' | 'zmq' | 'nats' | 'none';

export interface WorkerEndpoint {
  readonly id: string;
  /** Base URL of the worker's OpenAI server, e.g. http://127.0.0.1:8100 */
  readonly url: string;
  /** In-process KV event feed (simulated workers). Returns an unsubscribe function. */
  readonly onKvEvent?: (listener: (ev: RouterEvent) => void) => () => void;
  /** vLLM KV-event PUB endpoint (events: zmq). */
  readonly zmq?: string;
  /** vLLM replay ROUTER endpoint (events: zmq). */
  readonly replay?: string;
  /** Dynamo worker_id (u64, decimal) carried by this worker's NATS RouterEvents (events: nats). */
  readonly dynamoWorkerId?: string;
  /** KV capacity in blocks, for the active-decode-blocks busy threshold. */
  readonly totalKvBlocks?: number;
  /** The engine's max_num_batched_tokens, for the prefill-tokens fraction busy threshold. */
  readonly maxNumBatchedTokens?: number;
}

export interface HealthCheckOptions {
  /** Interval between checks of each worker (default 2000 ms). */
  readonly intervalMs?: number;
  /** Per-check timeout (default 1000 ms). */
  readonly timeoutMs?: number;
  /** Consecutive failed checks that take a worker out (default 2). */
  readonly failuresToDown?: number;
}

/** Dynamo's busy thresholds (dynamo-facts 1.3); a worker is busy if any threshold is exceeded. */
export interface BusyThresholds {
  /** Fraction 0-1 of the worker's KV blocks in use by active requests. */
  readonly activeDecodeBlocksThreshold?: number;
  /** Absolute active prefill tokens. */
  readonly activePrefillTokensThreshold?: number;
  /** Active prefill tokens as a fraction of max_num_batched_tokens. */
  readonly activePrefillTokensThresholdFrac?: number;
  /** KV blocks of workers that do not say (default 16384, the simulated worker's default). */
  readonly defaultTotalKvBlocks?: number;
  /** max_num_batched_tokens of workers that do not say (default 8192). */
  readonly defaultMaxNumBatchedTokens?: number;
}

export interface RouterServerOptions {
  readonly workers: readonly WorkerEndpoint[];
  readonly blockSize: number;
  readonly host?: string;
  readonly port?: number;
  readonly mode?: RoutingMode;
  readonly config?: Partial<KvRouterConfig>;
  /** Seed for the router's RNG (tie-breaks, temperature, random mode). */
  readonly seed?: number;
  /** When set, /v1/* and /admin/* need `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  readonly bodyLimitBytes?: number;
  /** One line per routing decision and per worker state change (non-interactive logging). */
  readonly log?: (line: string) => void;
  readonly decisionHistory?: number;
  /** Where KV events come from (default inproc: each worker's onKvEvent). `none` = approximate mode. */
  readonly events?: EventSourceKind;
  /** NATS event plane (events: nats). */
  readonly nats?: { readonly servers: readonly string[]; readonly namespace?: string; readonly component?: string };
  /** Active health checks; false turns them off. */
  readonly health?: HealthCheckOptions | false;
  readonly breaker?: BreakerOptions;
  readonly busy?: BusyThresholds;
  /** Session affinity TTL (X-Dynamo-Session-ID / x-dynamo-lab-session); 0 turns it off. Default 600 s. */
  readonly sessionAffinityTtlMs?: number;
  /** Status when every worker is busy (default 529, Dynamo's DYN_HTTP_OVERLOAD_STATUS_CODE). */
  readonly overloadStatus?: number;
  /** ZMQ replay reply timeout (default 3000 ms). */
  readonly replayTimeoutMs?: number;
  /** ZMQ: ask for newer batches after this much silence (default 2000 ms; 0 = never). */
  readonly zmqResyncIdleMs?: number;
}

export interface DecisionRecord extends RoutingDecision {
  readonly at_ms: number;
  /** 1 for the first try, 2+ for retries on another worker before the first byte. */
  attempt: number;
  /** The session id when the request carried one. */
  session?: string;
  /** true when session affinity chose the worker. */
  pinned?: boolean;
  /** Workers left out of this decision and why (down, circuit-open, busy, tried). */
  excluded?: Array<{ id: string; reason: string }>;
  /** Filled in when the worker reports usage: the cached tokens it actually reused. */
  achieved_cached_tokens?: number;
  ttft_ms?: number;
  status?: 'ok' | 'error' | 'aborted' | 'retried';
}

interface WorkerState {
  readonly ep: WorkerEndpoint;
  readonly addedAt: number;
  healthy: boolean;
  healthFailures: number;
  lastHealthError?: string;
  lastCheckMs?: number;
  checking: boolean;
  readonly breaker: CircuitBreaker;
  zmq?: ZmqEventSource;
  unsubscribe?: () => void;
  requests: number;
  errors: number;
  promptTokensWithUsage: number;
  predictedCachedWithUsage: number;
  achievedCached: number;
  lastTtftS?: number;
  lastItlS?: number;
  lastIsl?: number;
}

export interface WorkerView {
  id: string;
  url: string;
  dpRank: number;
  healthy: boolean;
  health_error?: string;
  circuit: BreakerState;
  busy: boolean;
  cached_blocks: number;
  active_blocks: number;
  active_prefill_tokens: number;
  active_requests: number;
  requests: number;
  errors: number;
  predicted_hit_rate: number | null;
  achieved_hit_rate: number | null;
  dynamo_worker_id?: string;
  events?: ZmqSourceStats;
}

const HIT_BUCKETS = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1];
const MS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25];
const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const TOKEN_BUCKETS = [16, 64, 256, 1024, 4096, 16384, 65536, 262144];
const PHASE_NAMES: Record<string, string> = { block_hashing: 'block_hashing', find_matches: 'indexer_find_matches', seq_hashing: 'seq_hashing', scheduling: 'scheduling' };

export class RouterServer {
  private server!: Server;
  private readonly agent = new Agent({ keepAliveTimeout: 30_000, connections: 1024, pipelining: 0 });
  /** One router core for every policy: switching the mode keeps the index and the booked load. */
  private core: KvRouter | undefined;
  private readonly workers = new Map<string, WorkerState>();
  private readonly byDynamoId = new Map<string, string>();
  private readonly decisionsLog: DecisionRecord[] = [];
  private readonly metrics = new Metrics();
  private readonly inflight = new Set<AbortController>();
  private readonly sessions = new Map<string, { worker: string; expiresAt: number }>();
  private readonly eventsKind: EventSourceKind;
  private nats?: NatsEventSource;
  private healthTimer?: NodeJS.Timeout;
  private tokenizer!: Tokenizer;
  private modeNow: RoutingMode;
  private closed = false;
  private totals = { requests: 0, errors: 0, rejected: 0, promptTokensWithUsage: 0, predictedCachedWithUsage: 0, achievedCached: 0 };
  url = '';
  port = 0;

  private constructor(private readonly opts: RouterServerOptions) {
    this.modeNow = opts.mode ?? 'kv';
    this.eventsKind = opts.events ?? 'inproc';
  }

  static async start(opts: RouterServerOptions): Promise<RouterServer> {
    const s = new RouterServer(opts);
    s.tokenizer = await loadTokenizer();
    try {
      if (s.eventsKind === 'nats') {
        if (!opts.nats?.servers.length) throw new Error('events "nats" needs nats.servers (nats://host:port)');
        s.nats = await NatsEventSource.start({
          servers: opts.nats.servers,
          namespace: opts.nats.namespace,
          component: opts.nats.component,
          resolveWorker: (id) => s.byDynamoId.get(id) ?? (s.workers.has(id) ? id : undefined),
          onEvents: (evs) => {
            for (const ev of evs) s.applyEvent(ev);
          },
          log: opts.log,
        });
      }
      for (const w of opts.workers) s.addWorker(w);
      await s.listen(opts.host ?? '127.0.0.1', opts.port ?? 8000);
    } catch (err) {
      await s.shutdownSources();
      await s.agent.close();
      throw err;
    }
    s.startHealthChecks();
    return s;
  }

  get mode(): RoutingMode {
    return this.modeNow;
  }

  get events(): EventSourceKind {
    return this.eventsKind;
  }

  /**
   * Switch the routing policy. The index keeps every KV event seen so far, so switching to kv
   * later routes on the full picture (a router created at switch time would have missed the
   * events of earlier requests, and then drop their children as parent_block_not_found).
   */
  setMode(mode: RoutingMode): void {
    this.routerFor(mode);
    this.modeNow = mode;
  }

  private routerFor(mode: RoutingMode): KvRouter {
    if (!this.core) {
      const config = this.eventsKind === 'none' ? { ...this.opts.config, useKvEvents: false } : this.opts.config;
      this.core = new KvRouter({ blockSize: this.opts.blockSize, mode, config, seed: this.opts.seed, clock: () => performance.now() });
      for (const id of this.workers.keys()) this.core.addWorker(id);
    }
    if (this.core.mode !== mode) this.core.mode = mode;
    return this.core;
  }

  private allRouters(): KvRouter[] {
    return this.core ? [this.core] : [];
  }

  // ---------------------------------------------------------------------------------------
  // Workers
  // ---------------------------------------------------------------------------------------

  addWorker(w: WorkerEndpoint): void {
    if (this.workers.has(w.id)) throw new Error(`worker ${w.id} is already registered`);
    if (w.dynamoWorkerId !== undefined && this.byDynamoId.has(w.dynamoWorkerId)) throw new Error(`Dynamo worker_id ${w.dynamoWorkerId} already belongs to worker ${this.byDynamoId.get(w.dynamoWorkerId)}`);
    const st: WorkerState = {
      ep: w,
      addedAt: Date.now(),
      healthy: true,
      healthFailures: 0,
      checking: false,
      breaker: new CircuitBreaker(this.opts.breaker),
      requests: 0,
      errors: 0,
      promptTokensWithUsage: 0,
      predictedCachedWithUsage: 0,
      achievedCached: 0,
    };
    this.workers.set(w.id, st);
    if (w.dynamoWorkerId !== undefined) this.byDynamoId.set(w.dynamoWorkerId, w.id);
    this.routerFor(this.modeNow);
    for (const r of this.allRouters()) r.addWorker(w.id);
    if (this.eventsKind === 'inproc' && w.onKvEvent) st.unsubscribe = w.onKvEvent((ev) => this.applyEvent(ev));
    if (this.eventsKind === 'zmq' && w.zmq) {
      st.zmq = new ZmqEventSource({
        workerId: w.id,
        endpoint: w.zmq,
        replayEndpoint: w.replay,
        blockSize: this.opts.blockSize,
        replayTimeoutMs: this.opts.replayTimeoutMs,
        resyncIdleMs: this.opts.zmqResyncIdleMs,
        onEvents: (evs) => {
          for (const ev of evs) this.applyEvent(ev);
        },
        onReset: (reason) => {
          for (const r of this.allRouters()) r.resetWorkerCache(w.id);
          this.metrics.inc('dynamo_lab_router_worker_cache_resets_total', 'Times a worker\'s indexed blocks were dropped (restart, lost event history)', { worker_id: w.id, reason });
        },
        log: this.opts.log,
      }).start();
    }
  }

  /** Add a worker from a spec (admin API): the id defaults to the next free worker-N. */
  addWorkerSpec(spec: WorkerSpec): WorkerEndpoint {
    let id = spec.id;
    if (!id) {
      let i = this.workers.size;
      while (this.workers.has(`worker-${i}`)) i++;
      id = `worker-${i}`;
    }
    if (this.workers.has(id)) throw new HttpError(409, `worker ${id} is already registered`, 'invalid_request_error', 'worker_exists');
    const ep: WorkerEndpoint = { id, url: spec.url, zmq: spec.zmq, replay: spec.replay, dynamoWorkerId: spec.dynamoWorkerId, totalKvBlocks: spec.totalKvBlocks, maxNumBatchedTokens: spec.maxNumBatchedTokens };
    try {
      this.addWorker(ep);
    } catch (err) {
      throw new HttpError(409, (err as Error).message, 'invalid_request_error', 'worker_conflict');
    }
    return ep;
  }

  removeWorker(id: string): boolean {
    const st = this.workers.get(id);
    if (!st) return false;
    st.unsubscribe?.();
    void st.zmq?.close();
    this.workers.delete(id);
    if (st.ep.dynamoWorkerId !== undefined) this.byDynamoId.delete(st.ep.dynamoWorkerId);
    for (const r of this.allRouters()) r.removeWorker(id);
    for (const [sid, s] of this.sessions) if (s.worker === id) this.sessions.delete(sid);
    return true;
  }

  workerIds(): string[] {
    return [...this.workers.keys()];
  }

  /** Feed one KV event to the router core's index. */
  applyEvent(ev: RouterEvent): void {
    let status = 'ok';
    let gap: { expected: number; got: number } | undefined;
    const current = this.core;
    for (const r of this.allRouters()) {
      const res = r.applyEvent(ev, Date.now());
      if (r === current) {
        status = res.status;
        gap = res.gap;
      }
    }
    this.metrics.inc('dynamo_component_kv_cache_events_applied', 'KV cache events applied to the indexer, by status and event type', { status, event_type: ev.data.type });
    if (gap) this.metrics.inc('dynamo_lab_router_event_id_gaps_total', 'KV event id gaps seen per worker (events lost on the way)', { worker_id: ev.workerId });
  }

  decisions(limit = 50): DecisionRecord[] {
    return this.decisionsLog.slice(0, Math.max(0, limit));
  }

  /** Wait until every ZMQ source has finished its replay (tests, startup). */
  async eventsIdle(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.zmq?.idle()));
  }

  natsStats(): NatsSourceStats | undefined {
    return this.nats?.stats;
  }

  // ---------------------------------------------------------------------------------------
  // Health
  // ---------------------------------------------------------------------------------------

  private startHealthChecks(): void {
    const h = this.opts.health;
    if (h === false) return;
    const interval = h?.intervalMs ?? 2000;
    this.healthTimer = setInterval(() => {
      for (const st of this.workers.values()) void this.checkWorker(st);
    }, interval);
    this.healthTimer.unref();
  }

  /** Run one health check of a worker now (also used after a failed proxy attempt). */
  async checkWorker(st: WorkerState): Promise<boolean> {
    if (st.checking || this.closed) return st.healthy;
    st.checking = true;
    const h = this.opts.health || {};
    const timeout = h.timeoutMs ?? 1000;
    let ok = false;
    let error = '';
    try {
      const r = await request(`${st.ep.url}/health`, { dispatcher: this.agent, headersTimeout: timeout, bodyTimeout: timeout, signal: AbortSignal.timeout(timeout) });
      await r.body.dump();
      ok = r.statusCode === 200;
      if (!ok) error = `GET /health answered ${r.statusCode}`;
    } catch (err) {
      error = (err as Error).message || String(err);
    } finally {
      st.checking = false;
    }
    st.lastCheckMs = Date.now();
    if (!this.workers.has(st.ep.id)) return ok;
    if (ok) {
      st.healthFailures = 0;
      st.lastHealthError = undefined;
      if (!st.healthy) {
        st.healthy = true;
        st.breaker.reset();
        this.opts.log?.(`worker ${st.ep.id} is healthy again: back in routing`);
        this.metrics.inc('dynamo_lab_router_worker_health_transitions_total', 'Workers taken out of / put back into routing by health checks', { worker_id: st.ep.id, to: 'up' });
      }
    } else {
      st.healthFailures++;
      st.lastHealthError = error;
      if (st.healthy && st.healthFailures >= (h.failuresToDown ?? 2)) {
        st.healthy = false;
        this.opts.log?.(`worker ${st.ep.id} failed ${st.healthFailures} health checks (${error}): taken out of routing`);
        this.metrics.inc('dynamo_lab_router_worker_health_transitions_total', 'Workers taken out of / put back into routing by health checks', { worker_id: st.ep.id, to: 'down' });
      }
    }
    return ok;
  }

  /** Run a health check of every worker now and wait for the results. */
  async checkAll(): Promise<void> {
    await Promise.all([...this.workers.values()].map((st) => this.checkWorker(st)));
  }

  private isBusy(st: WorkerState, snap: Map<string, { active_blocks: number; active_prefill_tokens: number }>): string | undefined {
    const b = this.opts.busy;
    if (!b) return undefined;
    const s = snap.get(st.ep.id);
    if (!s) return undefined;
    if (b.activeDecodeBlocksThreshold !== undefined) {
      const total = st.ep.totalKvBlocks ?? b.defaultTotalKvBlocks ?? 16384;
      if (s.active_blocks > b.activeDecodeBlocksThreshold * total) return `active decode blocks ${s.active_blocks} > ${b.activeDecodeBlocksThreshold} x ${total}`;
    }
    if (b.activePrefillTokensThreshold !== undefined && s.active_prefill_tokens > b.activePrefillTokensThreshold) {
      return `active prefill tokens ${s.active_prefill_tokens} > ${b.activePrefillTokensThreshold}`;
    }
    if (b.activePrefillTokensThresholdFrac !== undefined) {
      const mnbt = st.ep.maxNumBatchedTokens ?? b.defaultMaxNumBatchedTokens ?? 8192;
      if (s.active_prefill_tokens > b.activePrefillTokensThresholdFrac * mnbt) return `active prefill tokens ${s.active_prefill_tokens} > ${b.activePrefillTokensThresholdFrac} x ${mnbt}`;
    }
    return undefined;
  }

  /** Candidates for a request now; throws 503 / 529 with a reason when there are none. */
  private eligible(router: KvRouter, tried: ReadonlySet<string>): { ids: string[]; excluded: Array<{ id: string; reason: string }> } {
    if (this.workers.size === 0) throw new HttpError(503, 'no workers are registered with the router (add some with --worker or POST /admin/workers)', 'server_error', 'no_workers');
    const now = Date.now();
    const ids: string[] = [];
    const excluded: Array<{ id: string; reason: string }> = [];
    const snap = this.opts.busy ? new Map(router.snapshot().workers.map((w) => [w.id, w])) : undefined;
    let busyCount = 0;
    let downCount = 0;
    for (const st of this.workers.values()) {
      const id = st.ep.id;
      if (tried.has(id)) excluded.push({ id, reason: 'tried' });
      else if (!st.healthy) {
        downCount++;
        excluded.push({ id, reason: `down (${st.lastHealthError ?? 'health check failed'})` });
      } else if (!st.breaker.allows(now)) {
        downCount++;
        excluded.push({ id, reason: `circuit open after ${st.breaker.consecutiveFailures} failures (retry in ${Math.ceil(st.breaker.retryInMs(now) / 1000)} s)` });
      } else {
        const busy = snap ? this.isBusy(st, snap) : undefined;
        if (busy) {
          busyCount++;
          excluded.push({ id, reason: `busy: ${busy}` });
        } else ids.push(id);
      }
    }
    if (ids.length > 0) return { ids, excluded };
    const detail = excluded.map((e) => `${e.id}: ${e.reason}`).join('; ');
    if (busyCount > 0) {
      this.metrics.inc('dynamo_lab_router_rejected_total', 'Requests rejected because no worker could take them', { reason: 'busy' });
      throw new HttpError(this.opts.overloadStatus ?? 529, `all workers are busy; retry later (${detail})`, 'server_error', 'all_workers_busy');
    }
    if (tried.size > 0 && downCount === 0) {
      throw new HttpError(503, `every worker failed for this request (tried ${[...tried].join(', ')})`, 'server_error', 'all_workers_failed');
    }
    this.metrics.inc('dynamo_lab_router_rejected_total', 'Requests rejected because no worker could take them', { reason: 'down' });
    throw new HttpError(503, `no healthy workers (${detail})`, 'server_error', 'no_healthy_workers');
  }

  // ---------------------------------------------------------------------------------------
  // HTTP
  // ---------------------------------------------------------------------------------------

  private async listen(host: string, port: number): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        const headers: Record<string, string> = {};
        if (err instanceof HttpError && (err.status === 529 || err.status === 503)) headers['retry-after'] = '1';
        sendError(res, err, headers);
      });
    });
    this.server.keepAliveTimeout = 30_000;
    const addr = await listenOn(this.server, port, host);
    this.port = addr.port;
    this.url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  }

  private async shutdownSources(): Promise<void> {
    const closing: Array<Promise<void> | undefined> = [];
    for (const st of this.workers.values()) {
      st.unsubscribe?.();
      st.unsubscribe = undefined;
      closing.push(st.zmq?.close());
    }
    closing.push(this.nats?.close());
    await Promise.allSettled(closing);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    for (const c of this.inflight) c.abort();
    await this.shutdownSources();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.agent.close();
  }

  private checkAuth(req: IncomingMessage): void {
    if (!this.opts.apiKey) return;
    const auth = req.headers.authorization ?? '';
    if (auth !== `Bearer ${this.opts.apiKey}`) throw new HttpError(401, 'missing or wrong API key: send "Authorization: Bearer <key>"', 'authentication_error', 'invalid_api_key');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (path.startsWith('/v1/') || path.startsWith('/admin/')) this.checkAuth(req);
    if (req.method === 'POST' && (path === '/v1/chat/completions' || path === '/v1/completions')) return this.proxyCompletion(req, res, path);
    if (req.method === 'GET' && path === '/v1/models') return this.models(res);
    if (req.method === 'GET' && path === '/health') {
      const healthy = [...this.workers.values()].filter((w) => w.healthy).length;
      return sendJson(res, healthy > 0 ? 200 : 503, { status: healthy > 0 ? 'ok' : 'no_healthy_workers', mode: this.modeNow, events: this.eventsKind, workers: this.workers.size, healthy_workers: healthy });
    }
    if (req.method === 'GET' && path === '/metrics') {
      this.publishGauges();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(this.metrics.render());
      return;
    }
    if (req.method === 'GET' && path === '/debug/decisions') {
      const limit = Number(url.searchParams.get('limit') ?? 50);
      return sendJson(res, 200, { decisions: this.decisions(Number.isFinite(limit) ? limit : 50) });
    }
    if (req.method === 'GET' && (path === '/debug/workers' || path === '/admin/workers')) return sendJson(res, 200, this.workersView());
    if (req.method === 'POST' && path === '/admin/workers') {
      const body = parseJsonBody(await readBody(req, 64 * 1024));
      let spec: WorkerSpec;
      try {
        spec = workerSpecFromObject(body);
      } catch (err) {
        if (err instanceof WorkerSpecError) throw new HttpError(400, err.message, 'invalid_request_error', 'invalid_worker');
        throw err;
      }
      const ep = this.addWorkerSpec(spec);
      this.opts.log?.(`worker ${ep.id} added at ${ep.url} (admin API)`);
      void this.checkWorker(this.workers.get(ep.id)!);
      return sendJson(res, 201, { worker: this.workersView().workers.find((w) => w.id === ep.id) });
    }
    const m = /^\/admin\/workers\/([^/]+)$/.exec(path);
    if (req.method === 'DELETE' && m) {
      const id = decodeURIComponent(m[1]!);
      if (!this.removeWorker(id)) throw new HttpError(404, `no worker ${id} (known: ${this.workerIds().join(', ') || 'none'})`, 'invalid_request_error', 'unknown_worker');
      this.opts.log?.(`worker ${id} removed (admin API)`);
      return sendJson(res, 200, { removed: id, workers: this.workerIds() });
    }
    throw new HttpError(404, `no route for ${req.method} ${path}`, 'invalid_request_error', 'not_found');
  }

  workersView(): { mode: RoutingMode; events: EventSourceKind; workers: WorkerView[]; nats?: NatsSourceStats; totals: { requests: number; errors: number; rejected: number; predicted_hit_rate: number | null; achieved_hit_rate: number | null } } {
    const router = this.routerFor(this.modeNow);
    const snap = router.snapshot();
    const byId = new Map(snap.workers.map((w) => [w.id, w]));
    const now = Date.now();
    const workers: WorkerView[] = [];
    for (const w of snap.workers) {
      const st = this.workers.get(w.id);
      if (!st) continue;
      const v: WorkerView = {
        id: w.id,
        url: st.ep.url,
        dpRank: w.dpRank,
        healthy: st.healthy,
        circuit: st.breaker.state(now),
        busy: this.isBusy(st, byId) !== undefined,
        cached_blocks: w.cached_blocks,
        active_blocks: w.active_blocks,
        active_prefill_tokens: w.active_prefill_tokens,
        active_requests: w.active_requests,
        requests: st.requests,
        errors: st.errors,
        predicted_hit_rate: st.promptTokensWithUsage > 0 ? st.predictedCachedWithUsage / st.promptTokensWithUsage : null,
        achieved_hit_rate: st.promptTokensWithUsage > 0 ? st.achievedCached / st.promptTokensWithUsage : null,
      };
      if (st.lastHealthError) v.health_error = st.lastHealthError;
      if (st.ep.dynamoWorkerId) v.dynamo_worker_id = st.ep.dynamoWorkerId;
      if (st.zmq) v.events = st.zmq.stats;
      workers.push(v);
    }
    const t = this.totals;
    const view: ReturnType<RouterServer['workersView']> = {
      mode: this.modeNow,
      events: this.eventsKind,
      workers,
      totals: {
        requests: t.requests,
        errors: t.errors,
        rejected: t.rejected,
        predicted_hit_rate: t.promptTokensWithUsage > 0 ? t.predictedCachedWithUsage / t.promptTokensWithUsage : null,
        achieved_hit_rate: t.promptTokensWithUsage > 0 ? t.achievedCached / t.promptTokensWithUsage : null,
      },
    };
    if (this.nats) view.nats = this.nats.stats;
    return view;
  }

  private publishGauges(): void {
    const view = this.workersView();
    for (const name of ['dynamo_frontend_worker_active_decode_blocks', 'dynamo_frontend_worker_active_prefill_tokens', 'dynamo_lab_router_worker_cached_blocks', 'dynamo_lab_router_worker_healthy', 'dynamo_lab_router_worker_circuit_open', 'dynamo_frontend_worker_last_time_to_first_token_seconds', 'dynamo_frontend_worker_last_inter_token_latency_seconds', 'dynamo_frontend_worker_last_input_sequence_tokens', 'dynamo_lab_router_worker_achieved_hit_rate', 'dynamo_lab_router_worker_predicted_hit_rate']) {
      this.metrics.resetGauge(name);
    }
    for (const w of view.workers) {
      const labels = { worker_id: w.id, dp_rank: String(w.dpRank), worker_type: 'decode' };
      const st = this.workers.get(w.id)!;
      this.metrics.set('dynamo_frontend_worker_active_decode_blocks', 'Active KV blocks the router books on each worker', labels, w.active_blocks);
      this.metrics.set('dynamo_frontend_worker_active_prefill_tokens', 'Prefill tokens in flight on each worker', labels, w.active_prefill_tokens);
      this.metrics.set('dynamo_lab_router_worker_cached_blocks', 'Blocks the indexer believes each worker has cached', labels, w.cached_blocks);
      this.metrics.set('dynamo_lab_router_worker_healthy', '1 when the worker passes health checks', { worker_id: w.id }, w.healthy ? 1 : 0);
      this.metrics.set('dynamo_lab_router_worker_circuit_open', '1 when the worker\'s circuit breaker is open', { worker_id: w.id }, w.circuit === 'open' ? 1 : 0);
      if (st.lastTtftS !== undefined) this.metrics.set('dynamo_frontend_worker_last_time_to_first_token_seconds', 'Last TTFT seen from each worker (router view)', labels, st.lastTtftS);
      if (st.lastItlS !== undefined) this.metrics.set('dynamo_frontend_worker_last_inter_token_latency_seconds', 'Last mean ITL seen from each worker (router view)', labels, st.lastItlS);
      if (st.lastIsl !== undefined) this.metrics.set('dynamo_frontend_worker_last_input_sequence_tokens', 'Input tokens of the last request sent to each worker', labels, st.lastIsl);
      if (w.achieved_hit_rate !== null) this.metrics.set('dynamo_lab_router_worker_achieved_hit_rate', 'Cached prompt tokens / prompt tokens, as the worker reported (requests with usage)', { worker_id: w.id }, w.achieved_hit_rate);
      if (w.predicted_hit_rate !== null) this.metrics.set('dynamo_lab_router_worker_predicted_hit_rate', 'Cached prompt tokens the router predicted / prompt tokens (same requests)', { worker_id: w.id }, w.predicted_hit_rate);
    }
    if (view.totals.achieved_hit_rate !== null) this.metrics.set('dynamo_lab_router_achieved_hit_rate', 'Cached prompt tokens / prompt tokens over all requests with usage, as the workers reported', {}, view.totals.achieved_hit_rate);
    if (view.totals.predicted_hit_rate !== null) this.metrics.set('dynamo_lab_router_predicted_hit_rate', 'Predicted cached prompt tokens / prompt tokens over the same requests', {}, view.totals.predicted_hit_rate);
    const stats = this.routerFor(this.modeNow).stats();
    this.metrics.set('dynamo_lab_router_indexed_blocks', 'Blocks in the router\'s radix index (all workers)', {}, stats.indexed_blocks);
    this.metrics.set('dynamo_lab_router_active_requests', 'Requests the router has booked on workers', {}, stats.active_requests);
    this.metrics.set('dynamo_lab_router_sessions', 'Live session-affinity entries', {}, this.sessions.size);
  }

  private async models(res: ServerResponse): Promise<void> {
    const ids = new Map<string, Record<string, unknown>>();
    await Promise.all(
      [...this.workers.values()].map(async ({ ep: w }) => {
        try {
          const r = await request(`${w.url}/v1/models`, { dispatcher: this.agent, headersTimeout: 3000, bodyTimeout: 3000 });
          const body = (await r.body.json()) as { data?: Array<Record<string, unknown>> };
          for (const m of body.data ?? []) if (typeof m.id === 'string') ids.set(m.id, m);
        } catch {
          // an unreachable worker contributes no models
        }
      }),
    );
    sendJson(res, 200, { object: 'list', data: [...ids.values()] });
  }

  private tokenize(path: string, body: Record<string, unknown>): number[] {
    if (path === '/v1/chat/completions') {
      const messages = body.messages;
      if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, '"messages" must be a non-empty array of {role, content}', 'invalid_request_error', 'invalid_messages');
      for (const m of messages) {
        if (!m || typeof m !== 'object' || typeof (m as ChatMessage).role !== 'string') throw new HttpError(400, 'each message needs a string "role" and a "content"', 'invalid_request_error', 'invalid_messages');
      }
      return this.tokenizer.encode(applyChatTemplate(messages as ChatMessage[]));
    }
    const prompt = body.prompt;
    if (typeof prompt === 'string') return this.tokenizer.encode(prompt);
    if (Array.isArray(prompt) && prompt.length > 0 && isTokenIds(prompt)) return prompt;
    throw new HttpError(400, '"prompt" must be a string or a non-empty array of token ids', 'invalid_request_error', 'invalid_prompt');
  }

  private sessionOf(req: IncomingMessage): string | undefined {
    if ((this.opts.sessionAffinityTtlMs ?? 600_000) <= 0) return undefined;
    const raw = req.headers['x-dynamo-session-id'] ?? req.headers['x-dynamo-lab-session'];
    const v = Array.isArray(raw) ? raw[0] : raw;
    return v && v.length <= 256 ? v : undefined;
  }

  private pinnedWorker(session: string | undefined, eligible: readonly string[], now: number): string | undefined {
    if (!session) return undefined;
    const s = this.sessions.get(session);
    if (!s) return undefined;
    if (s.expiresAt <= now) {
      this.sessions.delete(session);
      return undefined;
    }
    return eligible.includes(s.worker) ? s.worker : undefined;
  }

  private rememberSession(session: string, worker: string, now: number): void {
    const ttl = this.opts.sessionAffinityTtlMs ?? 600_000;
    this.sessions.delete(session); // re-insert: the Map stays ordered by last use
    this.sessions.set(session, { worker, expiresAt: now + ttl });
    if (this.sessions.size > 100_000) {
      for (const [k, v] of this.sessions) {
        if (this.sessions.size <= 90_000 && v.expiresAt > now) break;
        this.sessions.delete(k);
      }
    }
  }

  private async proxyCompletion(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const started = performance.now();
    this.metrics.inc('dynamo_component_router_requests_started_total', 'Requests received by the router');
    const raw = await readBody(req, this.opts.bodyLimitBytes ?? 8 * 1024 * 1024);
    const body = parseJsonBody(raw);
    const tokens = this.tokenize(path, body);
    const tokenizedAt = performance.now();
    const stream = body.stream === true;
    const mode = this.modeNow;
    const router = this.routerFor(mode);
    const requestId = `${path.includes('chat') ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '').slice(0, 24)}`;
    const overrides = readOverrides(body);
    const session = this.sessionOf(req);
    const tried = new Set<string>();
    const client = new AbortController();
    this.inflight.add(client);
    let clientGone = false;
    res.on('close', () => {
      if (!res.writableFinished) {
        clientGone = true;
        client.abort();
      }
    });
    this.metrics.observe('dynamo_component_router_input_sequence_tokens', 'Input tokens per request', TOKEN_BUCKETS, tokens.length);
    this.metrics.observe('dynamo_lab_router_overhead_tokenize_ms', 'Router time to read, parse and tokenise the request (ms)', MS_BUCKETS, tokenizedAt - started);

    try {
      // Retry before the first byte: a worker that cannot be reached or answers 5xx is skipped.
      for (let attempt = 1; ; attempt++) {
        let eligible;
        try {
          eligible = this.eligible(router, tried);
        } catch (err) {
          this.totals.rejected++;
          throw err;
        }
        const now = Date.now();
        const pinned = this.pinnedWorker(session, eligible.ids, now);
        const decision = router.route({ requestId, tokens, nowMs: now, overrides, allowedWorkers: pinned ? [pinned] : eligible.ids });
        const record: DecisionRecord = { ...decision, at_ms: now, attempt };
        if (session) record.session = session;
        if (pinned) record.pinned = true;
        if (eligible.excluded.length) record.excluded = eligible.excluded;
        this.recordDecision(record, attempt === 1 ? started : undefined);
        if (session) this.rememberSession(session, decision.chosen, now);
        const st = this.workers.get(decision.chosen)!;
        tried.add(st.ep.id);
        st.requests++;
        st.lastIsl = decision.isl_tokens;
        st.breaker.onAttempt(now);
        let upstream;
        try {
          upstream = await request(`${st.ep.url}${path}`, {
            method: 'POST',
            body: raw,
            headers: { 'content-type': 'application/json', 'x-request-id': requestId, ...(stream ? { accept: 'text/event-stream' } : {}) },
            dispatcher: this.agent,
            signal: client.signal,
            headersTimeout: 300_000,
            bodyTimeout: 300_000,
          });
        } catch (err) {
          router.free(requestId, Date.now());
          if (clientGone) {
            record.status = 'aborted';
            return;
          }
          record.status = 'retried';
          this.noteFailure(st, `failed before the first byte (${(err as Error).message})`);
          continue;
        }
        if (upstream.statusCode >= 500 && upstream.statusCode !== 529) {
          await upstream.body.dump().catch(() => {});
          router.free(requestId, Date.now());
          record.status = 'retried';
          this.noteFailure(st, `answered ${upstream.statusCode}`);
          continue;
        }
        st.breaker.onSuccess();
        await this.relay(upstream, res, record, router, stream, st, started);
        return;
      }
    } catch (err) {
      this.totals.errors++;
      throw err;
    } finally {
      this.inflight.delete(client);
      if (clientGone) router.free(requestId, Date.now());
    }
  }

  private noteFailure(st: WorkerState, what: string): void {
    st.errors++;
    st.breaker.onFailure(Date.now());
    this.metrics.inc('dynamo_lab_router_retries_total', 'Requests retried on another worker before the first byte', { worker_id: st.ep.id });
    this.opts.log?.(`worker ${st.ep.id} ${what}; trying another worker${st.breaker.state(Date.now()) === 'open' ? ' (circuit opened)' : ''}`);
    void this.checkWorker(st);
  }

  private recordDecision(record: DecisionRecord, started: number | undefined): void {
    this.decisionsLog.unshift(record);
    const cap = this.opts.decisionHistory ?? 256;
    if (this.decisionsLog.length > cap) this.decisionsLog.length = cap;
    if (started !== undefined) {
      const predicted = record.isl_tokens > 0 ? Math.min(1, record.cached_tokens / record.isl_tokens) : 0;
      this.totals.requests++;
      this.metrics.inc('dynamo_component_router_requests_total', 'Requests routed', { mode: record.mode });
      this.metrics.observe('dynamo_component_router_kv_hit_rate', 'Predicted KV hit rate at routing time (0-1)', HIT_BUCKETS, predicted);
      this.metrics.observe('dynamo_router_overhead_total_ms', 'Router overhead from request receipt to worker choice (ms)', MS_BUCKETS, performance.now() - started);
      if (record.timings_us) {
        for (const [phase, us] of Object.entries(record.timings_us)) {
          this.metrics.observe(`dynamo_router_overhead_${PHASE_NAMES[phase] ?? phase}_ms`, `Router overhead in ${PHASE_NAMES[phase] ?? phase} (ms)`, MS_BUCKETS, us / 1000);
        }
      }
      const best = Math.max(0, ...record.workers.map((w) => w.overlap_blocks));
      if (record.overlap_blocks < best) this.metrics.inc('dynamo_component_router_non_max_overlap_selections_total', 'Decisions that chose a worker without the largest overlap');
    }
    if (!this.opts.log) return;
    const chosen = record.workers.find((w) => w.id === record.chosen);
    this.opts.log(
      `route ${record.request_id} mode=${record.mode} -> ${record.chosen} overlap=${record.overlap_blocks}/${Math.floor(record.isl_tokens / record.block_size)} blocks isl=${record.isl_tokens}` +
        (chosen ? ` cost=${round(chosen.cost)}` : '') +
        (record.attempt > 1 ? ` attempt=${record.attempt}` : '') +
        (record.pinned ? ` session=${record.session} (pinned)` : '') +
        ` | ${record.workers.map((w) => `${w.id}: overlap ${w.overlap_blocks} cost ${round(w.cost)}`).join(', ')}` +
        (record.excluded?.length ? ` | left out: ${record.excluded.map((e) => `${e.id} ${e.reason}`).join(', ')}` : ''),
    );
  }

  private async relay(upstream: Awaited<ReturnType<typeof request>>, res: ServerResponse, record: DecisionRecord, router: KvRouter, stream: boolean, st: WorkerState, started: number): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': String(upstream.headers['content-type'] ?? (stream ? 'text/event-stream' : 'application/json')),
      'x-dynamo-lab-worker': record.chosen,
      'x-dynamo-lab-overlap-blocks': String(record.overlap_blocks),
      'x-dynamo-lab-mode': record.mode,
      'x-request-id': record.request_id,
    };
    if (stream) headers['cache-control'] = 'no-cache';
    const retryAfter = upstream.headers['retry-after'];
    if (typeof retryAfter === 'string') headers['retry-after'] = retryAfter;
    res.writeHead(upstream.statusCode, headers);
    res.flushHeaders();
    let first = true;
    let firstAt = 0;
    let lastAt = 0;
    let events = 0;
    // The last chunks (<= 8 KiB) hold `usage` (the final SSE chunk or the end of the JSON body).
    const tail: Buffer[] = [];
    let tailBytes = 0;
    try {
      for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
        const t = performance.now();
        if (first) {
          first = false;
          firstAt = t;
          router.markPrefillCompleted(record.request_id, Date.now());
        }
        lastAt = t;
        if (stream) events += countSseEvents(chunk);
        tail.push(chunk);
        tailBytes += chunk.length;
        while (tail.length > 1 && tailBytes - tail[0]!.length >= 8192) tailBytes -= tail.shift()!.length;
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
      record.status = upstream.statusCode < 400 ? 'ok' : 'error';
      if (record.status === 'error') {
        st.errors++;
        this.totals.errors++;
      }
      if (stream && firstAt > 0) {
        record.ttft_ms = round(firstAt - started);
        st.lastTtftS = (firstAt - started) / 1000;
        this.metrics.observe('dynamo_component_router_time_to_first_token_seconds', 'Time to first token as the router sees it (s)', SECONDS_BUCKETS, st.lastTtftS);
        // SSE events after the first, minus the usage chunk and [DONE], approximate the tokens.
        const gaps = events - 3;
        if (gaps > 0) {
          st.lastItlS = (lastAt - firstAt) / gaps / 1000;
          this.metrics.observe('dynamo_component_router_inter_token_latency_seconds', 'Mean inter-token latency per request as the router sees it (s)', SECONDS_BUCKETS, st.lastItlS);
        }
      }
      const usage = extractUsage(Buffer.concat(tail).toString('utf8'));
      if (usage.completion !== undefined) this.metrics.observe('dynamo_component_router_output_sequence_tokens', 'Output tokens per request (worker usage)', TOKEN_BUCKETS, usage.completion);
      if (usage.cached !== undefined) {
        const cached = usage.cached;
        record.achieved_cached_tokens = cached;
        const prompt = usage.prompt ?? record.isl_tokens;
        st.achievedCached += cached;
        st.promptTokensWithUsage += prompt;
        st.predictedCachedWithUsage += record.cached_tokens;
        this.totals.achievedCached += cached;
        this.totals.promptTokensWithUsage += prompt;
        this.totals.predictedCachedWithUsage += record.cached_tokens;
        this.metrics.observe('dynamo_frontend_cached_tokens', 'Cached prompt tokens reported by the worker', [0, 16, 64, 256, 1024, 4096, 16384, 65536], cached);
        this.metrics.inc('dynamo_lab_router_achieved_cached_tokens_total', 'Cached tokens the workers reported', {}, cached);
        this.metrics.inc('dynamo_lab_router_predicted_cached_tokens_total', 'Cached tokens the router predicted', {}, record.cached_tokens);
        this.metrics.inc('dynamo_lab_router_prompt_tokens_total', 'Prompt tokens routed', {}, prompt);
      }
    } catch (err) {
      record.status = 'aborted';
      st.errors++;
      res.destroy(err as Error);
    } finally {
      router.free(record.request_id, Date.now());
    }
  }

  /** Everything the live dashboard shows, in one plain object. */
  dashboardState(limit = 8): DashboardState {
    const v = this.workersView();
    return { url: this.url, mode: v.mode, events: v.events, workers: v.workers, totals: v.totals, decisions: this.decisions(limit), nats: v.nats };
  }
}

export interface DashboardState {
  url: string;
  mode: RoutingMode;
  events: EventSourceKind;
  workers: WorkerView[];
  totals: ReturnType<RouterServer['workersView']>['totals'];
  decisions: DecisionRecord[];
  nats?: NatsSourceStats;
}

function isTokenIds(a: unknown[]): a is number[] {
  for (let i = 0; i < a.length; i++) {
    const t = a[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) return false;
  }
  return true;
}

const DATA = Buffer.from('data:');
function countSseEvents(chunk: Buffer): number {
  let n = 0;
  let i = chunk.indexOf(DATA);
  while (i >= 0) {
    n++;
    i = chunk.indexOf(DATA, i + 5);
  }
  return n;
}

function readOverrides(body: Record<string, unknown>): { overlapScoreCredit?: number; prefillLoadScale?: number; temperature?: number } | undefined {
  const nvext = body.nvext as { router_config_override?: Record<string, unknown> } | undefined;
  const o = nvext?.router_config_override;
  if (!o || typeof o !== 'object') return undefined;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  return { overlapScoreCredit: num(o.overlap_score_credit), prefillLoadScale: num(o.prefill_load_scale), temperature: num(o.router_temperature) };
}

/** Find `usage.prompt_tokens_details.cached_tokens` in the tail of a JSON body or SSE stream. */
export function extractCachedTokens(tail: string): number | undefined {
  return extractUsage(tail).cached;
}

function lastNumber(tail: string, key: string): number | undefined {
  const i = tail.lastIndexOf(`"${key}"`);
  if (i < 0) return undefined;
  const m = new RegExp(`"${key}"\\s*:\\s*(\\d+)`).exec(tail.slice(i));
  return m ? Number(m[1]) : undefined;
}

export function extractUsage(tail: string): { cached?: number; prompt?: number; completion?: number } {
  return { cached: lastNumber(tail, 'cached_tokens'), prompt: lastNumber(tail, 'prompt_tokens'), completion: lastNumber(tail, 'completion_tokens') };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
