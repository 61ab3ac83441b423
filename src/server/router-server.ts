/**
 * The embedded router: an OpenAI-compatible HTTP front that tokenises each request the same
 * way the workers do, asks the router core which worker to use, and proxies the request
 * there (SSE passed through unbuffered). It can run in place of Dynamo's frontend.
 *
 *   client ──HTTP──▶ app.ts ──proxy.ts──▶ KvRouter (src/router, pure; one core for every policy)
 *                      │         │            ▲
 *                      │         │            └── KV events: workers.ts (in-process | ZMQ | NATS)
 *                      │         ├── eligibility.ts (health checks, circuit breakers, busy) + sessions.ts
 *                      │         └──undici──▶ worker /v1/...  (retry on another worker before the first byte)
 *                      └── observability.ts (/metrics, /debug/*) + usage.ts (achieved vs predicted hits)
 *
 * This file is the composition root: it builds the shared context and keeps the public API.
 * Every routed response carries x-dynamo-lab-worker / -overlap-blocks / -mode headers, and
 * /debug/decisions shows the per-worker overlap / load / cost table behind each choice.
 * Workers come from the constructor options and at runtime from POST/DELETE /admin/workers.
 */
import { nowMs } from '../base/clock.js';
import type { Server } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Agent } from 'undici';
import { KvRouter, type RoutingMode } from '../router/index.js';
import type { RouterEvent } from '../router/types.js';
import { describeBackend, loadChatTokenizer } from '../tokenizer/index.js';
import { listenOn } from '../base/net.js';
import { createApp } from './app.js';
import { overlapOf, type OverlapView } from './overlap.js';
import type { ServerContext } from './context.js';
import { HealthChecker } from './eligibility.js';
import { Metrics } from './metrics.js';
import type { NatsSourceStats } from './nats-events.js';
import { DecisionLog, LOOP_DELAY_RESOLUTION_MS, workersView } from './observability.js';
import { TurnPacer } from './pacer.js';
import { RouterQueue } from './queue.js';
import { ReplicaSync, replicaWorkerU64, type ReplicaSyncStats } from './replica-sync.js';
import { SessionAffinity } from './sessions.js';
import type { DashboardState, DecisionRecord, EventSourceKind, RouterServerOptions, WorkerEndpoint, WorkersView } from './types.js';
import type { WorkerSpec } from './worker-spec.js';
import { WorkerRegistry } from './workers.js';

export { extractUsage } from './usage.js';
export type {
  BusyThresholds,
  DashboardState,
  DecisionRecord,
  EventSourceKind,
  HealthCheckOptions,
  RouterServerOptions,
  WorkerEndpoint,
  WorkerView,
  WorkersView,
} from './types.js';

export class RouterServer {
  private server?: Server;
  private readonly ctx: ServerContext;
  private closed = false;
  private expiryTimer?: NodeJS.Timeout;
  url = '';
  port = 0;

  private constructor(opts: RouterServerOptions, tokenizer: ServerContext['tokenizer']) {
    const events = opts.events ?? 'inproc';
    const mode = opts.mode ?? 'kv';
    const config = events === 'none' ? { ...opts.config, useKvEvents: false } : opts.config;
    const core = new KvRouter({
      blockSize: opts.blockSize,
      mode,
      config,
      seed: opts.seed,
      clock: () => performance.now(),
      nonCpuToCpuRatio: opts.nonCpuToCpuRatio,
    });
    const metrics = new Metrics();
    // pipelining 1 (undici's default): keep-alive connections to the workers; 0 would close every connection
    // after one request (a TCP connect per proxied request on both sides).
    const agent = new Agent({ keepAliveTimeout: 30_000, connections: 1024, pipelining: 1 });
    const sessions = new SessionAffinity(opts.sessionAffinityTtlMs ?? 600_000, opts.maxSessions);
    const registry = new WorkerRegistry(opts, events, core, metrics, (id) => sessions.forgetWorker(id));
    const q = opts.queue;
    const queue = q
      ? new RouterQueue(q.maxQueued, () => {
          // Admissible when some healthy worker is at or under threshold * max_num_batched_tokens.
          const snap = new Map(core.snapshot().workers.map((w) => [w.id, w]));
          for (const st of registry.values()) {
            if (!st.healthy) continue;
            const w = snap.get(st.ep.id);
            const cap = q.threshold * (st.ep.maxNumBatchedTokens ?? opts.busy?.defaultMaxNumBatchedTokens ?? 8192);
            if (!w || w.active_prefill_tokens <= cap) return true;
          }
          return registry.size === 0;
        })
      : undefined;
    const totals = { requests: 0, errors: 0, rejected: 0, promptTokensWithUsage: 0, predictedCachedWithUsage: 0, achievedCached: 0 };
    const health = new HealthChecker(opts, registry, agent, metrics, (st, why) => {
      registry.workerRestarted(st.ep.id, why);
    });
    registry.onAdded = (st) => void health.identify(st);
    this.ctx = {
      opts,
      core,
      events,
      mode,
      registry,
      health,
      sessions,
      decisions: new DecisionLog(opts, metrics, () => totals.requests++),
      metrics,
      agent,
      tokenizer,
      totals,
      inflight: new Set(),
      pacer: new TurnPacer(opts.turnBudgetMs),
      queue,
      loopDelay: monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS }),
    };
  }

  static async start(opts: RouterServerOptions): Promise<RouterServer> {
    const s = new RouterServer(opts, await loadChatTokenizer(opts.tokenizer, { limits: opts.promptLimits }));
    // The fast tokenizer threads build (~1 s) while the rest starts; requests use them from the start.
    const tokenizerReady = s.ctx.tokenizer.backendReady();
    try {
      await s.ctx.registry.startNats();
      for (const w of opts.workers) s.addWorker(w);
      if (opts.replicaSync) {
        const reg = s.ctx.registry;
        const wire = (id: string) => {
          const st = reg.get(id);
          return st ? replicaWorkerU64(id, st.ep.dynamoWorkerId) : undefined;
        };
        const workerOf = (u: bigint) => {
          for (const st of reg.values()) if (replicaWorkerU64(st.ep.id, st.ep.dynamoWorkerId) === u) return st.ep.id;
          return undefined;
        };
        s.ctx.replicas = await ReplicaSync.start(
          { ...opts.replicaSync, log: opts.log },
          s.ctx.core,
          s.ctx.sessions,
          opts.sessionAffinityTtlMs ?? 600_000,
          wire,
          workerOf,
        );
      }
      const host = opts.host ?? '127.0.0.1';
      s.server = createApp(s.ctx);
      const addr = await listenOn(s.server, opts.port ?? 8000, host);
      s.port = addr.port;
      s.url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
      const backend = await tokenizerReady;
      opts.log?.(`tokenizer: ${describeBackend(backend)}`);
    } catch (err) {
      await s.ctx.replicas?.close();
      await s.ctx.registry.shutdownSources();
      await s.ctx.agent.close();
      throw err;
    }
    s.ctx.health.start();
    s.ctx.loopDelay.enable();
    if (s.ctx.events === 'none') {
      // Approximate mode: expire routed blocks (TTL) and stale bookings even when no request comes.
      s.expiryTimer = setInterval(() => s.ctx.core.expire(nowMs()), 1000);
      s.expiryTimer.unref();
    }
    return s;
  }

  get mode(): RoutingMode {
    return this.ctx.mode;
  }

  get events(): EventSourceKind {
    return this.ctx.events;
  }

  /**
   * Switch the routing policy. The index keeps every KV event seen so far, so switching to kv
   * later routes on the full picture (a router created at switch time would have missed the
   * events of earlier requests, and then drop their children as parent_block_not_found).
   */
  setMode(mode: RoutingMode): void {
    this.ctx.core.mode = mode;
    this.ctx.mode = mode;
  }

  addWorker(w: WorkerEndpoint): void {
    this.ctx.registry.add(w);
  }

  /** Add a worker from a spec (admin API): the id defaults to the next free worker-N. */
  addWorkerSpec(spec: WorkerSpec): WorkerEndpoint {
    return this.ctx.registry.addSpec(spec);
  }

  removeWorker(id: string): boolean {
    return this.ctx.registry.remove(id);
  }

  workerIds(): string[] {
    return this.ctx.registry.ids();
  }

  /** Feed one KV event to the router core's index. */
  applyEvent(ev: RouterEvent): void {
    this.ctx.registry.applyEvent(ev);
  }

  decisions(limit = 50): DecisionRecord[] {
    return this.ctx.decisions.recent(limit);
  }

  /**
   * How many leading blocks of a request's prompt each worker holds in the index now (chat
   * `messages` or completions `prompt`, tokenised as the proxy does); nothing is booked. For
   * waiting until a served request's KV events have arrived. Also POST /debug/overlap.
   */
  overlapOf(body: Record<string, unknown>): Promise<OverlapView> {
    return overlapOf(this.ctx, body);
  }

  /** Wait until every ZMQ source has finished its replay (tests, startup). */
  eventsIdle(): Promise<void> {
    return this.ctx.registry.eventsIdle();
  }

  natsStats(): NatsSourceStats | undefined {
    return this.ctx.registry.natsStats();
  }

  /** Replica sync state (peers, counts), when --router-replica-sync is on. */
  replicaSyncStats(): ReplicaSyncStats | undefined {
    return this.ctx.replicas?.view();
  }

  /** Tests: stop as a crashed replica would (no goodbye, no frees published), then close. */
  async crashForTest(): Promise<void> {
    await this.ctx.replicas?.crash();
    await this.close();
  }

  /** Run a health check of every worker now and wait for the results. */
  checkAll(): Promise<void> {
    return this.ctx.health.checkAll();
  }

  workersView(): WorkersView {
    return workersView(this.ctx);
  }

  /** Everything the live dashboard shows, in one plain object. */
  dashboardState(limit = 8): DashboardState {
    const v = this.workersView();
    return {
      url: this.url,
      mode: v.mode,
      events: v.events,
      workers: v.workers,
      totals: v.totals,
      decisions: this.decisions(limit),
      nats: v.nats,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ctx.health.stop();
    this.ctx.loopDelay.disable();
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.ctx.queue?.close();
    // Peers free our bookings on the goodbye; the aborts below then publish nothing more.
    await this.ctx.replicas?.close();
    for (const c of this.ctx.inflight) c.abort();
    await this.ctx.registry.shutdownSources();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.ctx.agent.close();
  }
}
