/**
 * Which workers may take a request now: active health checks (GET /health) take a worker out
 * and put it back, a circuit breaker per worker (breaker.ts) opens after failures before the
 * first byte, and Dynamo's busy thresholds leave out workers that are full.
 */
import { request, type Agent } from 'undici';
import type { KvRouter } from '../router/index.js';
import { HttpError } from '../base/http.js';
import type { Metrics } from './metrics.js';
import type { BusyThresholds, RouterServerOptions, WorkerState } from './types.js';
import type { WorkerRegistry } from './workers.js';

export class HealthChecker {
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly opts: RouterServerOptions,
    private readonly registry: WorkerRegistry,
    private readonly agent: Agent,
    private readonly metrics: Metrics,
  ) {}

  start(): void {
    const h = this.opts.health;
    if (h === false) return;
    const interval = h?.intervalMs ?? 2000;
    this.timer = setInterval(() => {
      for (const st of this.registry.values()) void this.check(st);
    }, interval);
    this.timer.unref();
  }

  stop(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Run one health check of a worker now (also used after a failed proxy attempt). */
  async check(st: WorkerState): Promise<boolean> {
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
    if (!this.registry.has(st.ep.id)) return ok;
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
    await Promise.all([...this.registry.values()].map((st) => this.check(st)));
  }
}

type LoadSnapshot = ReadonlyMap<string, { active_blocks: number; active_prefill_tokens: number }>;

/** Why a worker is busy by Dynamo's thresholds, or undefined when it is not (or none are set). */
export function busyReason(st: WorkerState, snap: LoadSnapshot, b: BusyThresholds | undefined): string | undefined {
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

export interface Eligible {
  ids: string[];
  excluded: Array<{ id: string; reason: string }>;
}

/** Candidates for a request now; throws 503 / 529 with a reason when there are none. */
export function eligibleWorkers(opts: RouterServerOptions, registry: WorkerRegistry, metrics: Metrics, router: KvRouter, tried: ReadonlySet<string>): Eligible {
  if (registry.size === 0) throw new HttpError(503, 'no workers are registered with the router (add some with --worker or POST /admin/workers)', 'server_error', 'no_workers');
  const now = Date.now();
  const ids: string[] = [];
  const excluded: Array<{ id: string; reason: string }> = [];
  const snap = opts.busy ? new Map(router.snapshot().workers.map((w) => [w.id, w])) : undefined;
  let busyCount = 0;
  let downCount = 0;
  for (const st of registry.values()) {
    const id = st.ep.id;
    if (tried.has(id)) excluded.push({ id, reason: 'tried' });
    else if (!st.healthy) {
      downCount++;
      excluded.push({ id, reason: `down (${st.lastHealthError ?? 'health check failed'})` });
    } else if (!st.breaker.allows(now)) {
      downCount++;
      excluded.push({ id, reason: `circuit open after ${st.breaker.consecutiveFailures} failures (retry in ${Math.ceil(st.breaker.retryInMs(now) / 1000)} s)` });
    } else {
      const busy = snap ? busyReason(st, snap, opts.busy) : undefined;
      if (busy) {
        busyCount++;
        excluded.push({ id, reason: `busy: ${busy}` });
      } else ids.push(id);
    }
  }
  if (ids.length > 0) return { ids, excluded };
  const detail = excluded.map((e) => `${e.id}: ${e.reason}`).join('; ');
  if (busyCount > 0) {
    metrics.inc('dynamo_lab_router_rejected_total', 'Requests rejected because no worker could take them', { reason: 'busy' });
    throw new HttpError(opts.overloadStatus ?? 529, `all workers are busy; retry later (${detail})`, 'server_error', 'all_workers_busy');
  }
  if (tried.size > 0 && downCount === 0) {
    throw new HttpError(503, `every worker failed for this request (tried ${[...tried].join(', ')})`, 'server_error', 'all_workers_failed');
  }
  metrics.inc('dynamo_lab_router_rejected_total', 'Requests rejected because no worker could take them', { reason: 'down' });
  throw new HttpError(503, `no healthy workers (${detail})`, 'server_error', 'no_healthy_workers');
}
