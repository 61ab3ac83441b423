/**
 * Which workers may take a request now: active health checks (GET /health) take a worker out
 * and put it back, a circuit breaker per worker (breaker.ts) opens after failures before the
 * first byte, and Dynamo's busy thresholds leave out workers that are full.
 */
import { nowMs } from '../base/clock.js';
import { request, type Agent } from 'undici';
import type { KvRouter } from '../router/index.js';
import { HttpError } from '../base/http.js';
import type { Metrics } from './metrics.js';
import type { BusyThresholds, RouterServerOptions, WorkerState } from './types.js';
import type { WorkerRegistry } from './workers.js';
import { TOKEN_DATA_B64 } from '../tokenizer/index.js';

/**
 * Active and passive health. Passive: any byte a worker sends for a request proves it alive
 * (a worker marked down is put back at once). Active: GET /health every interval, every 500 ms
 * for a worker that is down, so a worker that comes back is re-admitted within ~0.5 s. The check
 * timeout adapts to the worker's answer times (4 x the smoothed round trip, at least the
 * configured timeout, doubling after each timeout up to 30 s), and a timed-out check does not
 * count against a worker that answered a request recently: a slow answer is not a dead worker.
 * Refused or reset connections count at once. A worker that comes back after its process was
 * gone (refused connections), or whose /health reports a new instance id, has restarted: its
 * indexed blocks are dropped (and its ZMQ events replayed from the new process's start).
 */
export class HealthChecker {
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly opts: RouterServerOptions,
    private readonly registry: WorkerRegistry,
    private readonly agent: Agent,
    private readonly metrics: Metrics,
    /** The worker restarted: forget what the index believes it holds. */
    private readonly onRestart: (st: WorkerState, why: string) => void = () => {},
  ) {}

  private get interval(): number {
    const h = this.opts.health;
    return (h && h.intervalMs) || 2000;
  }

  start(): void {
    const h = this.opts.health;
    if (h === false) return;
    const tick = Math.min(this.interval, DOWN_RECHECK_MS);
    this.timer = setInterval(() => {
      const now = nowMs();
      for (const st of this.registry.values()) {
        const due = st.healthy ? this.interval : DOWN_RECHECK_MS;
        if (now - (st.lastCheckMs ?? 0) >= due - tick / 2) void this.check(st);
      }
    }, tick);
    this.timer.unref();
  }

  stop(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Passive health: the worker answered a request (its first byte arrived). */
  onRequestOk(st: WorkerState): void {
    st.lastOkAt = nowMs();
    if (!st.healthy && !st.hardDown) this.markUp(st, 'it answered a request');
  }

  private markUp(st: WorkerState, why: string): void {
    st.healthy = true;
    st.healthFailures = 0;
    st.lastHealthError = undefined;
    st.breaker.reset();
    this.opts.log?.(`worker ${st.ep.id} is healthy again (${why}): back in routing`);
    this.metrics.inc('dynamo_lab_router_worker_health_transitions_total', 'Workers taken out of / put back into routing by health checks', {
      worker_id: st.ep.id,
      to: 'up',
    });
  }

  /**
   * Ask a newly added worker's /health who it is (instance id, tokenizer fingerprint), once, even
   * with periodic checks off; changes nothing about its health (a failure is left to the checks).
   */
  async identify(st: WorkerState): Promise<void> {
    try {
      const { status, info } = await this.getHealth(st, 3000);
      if (status !== 200 || this.registry.get(st.ep.id) !== st) return;
      st.instanceId ??= info.instance;
      st.tokenizerFingerprint ??= info.tokenizer;
      st.tokenDataB64 ??= info.b64;
      st.tokenDataWithoutText ??= info.withoutText;
    } catch {
      // Unreachable now: the periodic checks (when on) or the first request will tell.
    }
  }

  /** GET the worker's /health: its status and what its body says (throws what undici throws). */
  private async getHealth(st: WorkerState, timeoutMs: number): Promise<{ status: number; info: HealthInfo }> {
    const r = await request(`${st.ep.url}/health`, {
      dispatcher: this.agent,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await r.body.text();
    return { status: r.statusCode, info: r.statusCode === 200 ? healthInfo(text) : {} };
  }

  /** Run one health check of a worker now (also used after a failed proxy attempt). */
  async check(st: WorkerState): Promise<boolean> {
    if (st.checking || this.closed) return st.healthy;
    st.checking = true;
    const h = this.opts.health || {};
    const base = h.timeoutMs ?? 1000;
    const timeout = Math.round(Math.min(MAX_TIMEOUT_MS, Math.max(base, st.healthTimeoutMs ?? base, 4 * (st.healthRttMs ?? 0))));
    let ok = false;
    let timedOut = false;
    let hard = false;
    let error = '';
    let info: HealthInfo = {};
    const t0 = performance.now();
    try {
      const got = await this.getHealth(st, timeout);
      ok = got.status === 200;
      if (!ok) error = `GET /health answered ${got.status}`;
      else info = got.info;
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string } };
      const code = e.code ?? e.cause?.code ?? '';
      timedOut =
        e.name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_ABORTED';
      hard = !timedOut && /ECONNREFUSED|ECONNRESET|EPIPE|UND_ERR_SOCKET|EHOSTUNREACH/.test(code + ' ' + e.message);
      error = timedOut ? `GET /health took longer than ${timeout} ms` : e.message || String(err);
    } finally {
      st.checking = false;
    }
    const rtt = performance.now() - t0;
    const now = nowMs();
    st.lastCheckMs = now;
    if (!this.registry.has(st.ep.id)) return ok;
    if (ok) {
      const instance = info.instance;
      st.healthRttMs = st.healthRttMs === undefined ? rtt : 0.8 * st.healthRttMs + 0.2 * rtt;
      st.healthTimeoutMs = Math.max(base, (st.healthTimeoutMs ?? base) / 2);
      st.lastOkAt = now;
      const restarted = st.hardDown
        ? 'its process was gone and it answers again'
        : instance && st.instanceId && instance !== st.instanceId
          ? `its instance id changed from ${st.instanceId} to ${instance}`
          : undefined;
      if (instance) st.instanceId = instance;
      st.tokenizerFingerprint = info.tokenizer;
      st.tokenDataB64 = info.b64;
      st.tokenDataWithoutText = info.withoutText;
      st.hardDown = false;
      if (restarted) this.onRestart(st, restarted);
      st.healthFailures = 0;
      st.lastHealthError = undefined;
      if (!st.healthy) this.markUp(st, restarted ?? 'health check passed');
      return true;
    }
    if (timedOut) {
      st.healthTimeoutMs = Math.min(MAX_TIMEOUT_MS, timeout * 2);
      // Busy, not dead: the worker answered something recently, so this timeout does not count.
      if (now - st.lastOkAt < Math.max(3 * this.interval, 2 * timeout)) {
        st.lastHealthError = `${error} (slow, but it answered ${now - st.lastOkAt} ms ago: kept in routing)`;
        return false;
      }
    }
    if (hard) {
      st.hardDown = true;
      // Whatever comes back on this address may tokenize differently: ask it again first.
      st.tokenizerFingerprint = undefined;
      st.tokenDataB64 = undefined;
      st.tokenDataWithoutText = undefined;
    }
    st.healthFailures++;
    st.lastHealthError = error;
    // A refused connection is a dead process: take it out at once; timeouts need the threshold.
    const threshold = hard ? 1 : (h.failuresToDown ?? 2);
    if (st.healthy && st.healthFailures >= threshold) {
      st.healthy = false;
      this.opts.log?.(`worker ${st.ep.id} failed ${st.healthFailures} health check(s) (${error}): taken out of routing`);
      this.metrics.inc(
        'dynamo_lab_router_worker_health_transitions_total',
        'Workers taken out of / put back into routing by health checks',
        { worker_id: st.ep.id, to: 'down' },
      );
    }
    return false;
  }

  /** Run a health check of every worker now and wait for the results. */
  async checkAll(): Promise<void> {
    await Promise.all([...this.registry.values()].map((st) => this.check(st)));
  }
}

/** A worker that is down is checked this often, so it is back in routing soon after it is. */
const DOWN_RECHECK_MS = 500;
const MAX_TIMEOUT_MS = 30_000;

/** What a worker's /health body says about it (`{"instance_id": ..., "tokenizer": ...}`), when it says it. */
interface HealthInfo {
  /** The worker process's instance id (a new one means it restarted). */
  instance?: string;
  /** Its tokenizer's fingerprint (dynamo-lab sims): when it equals the router's, the router sends token ids. */
  tokenizer?: string;
  /** It takes the ids as base64 too (`token_data_encodings` lists `base64-u32le`). */
  b64?: boolean;
  /** It takes the ids in place of the prompt's text (`token_data_without_text: true`). */
  withoutText?: boolean;
}

function healthInfo(text: string): HealthInfo {
  if (!text.startsWith('{')) return {};
  try {
    const o = JSON.parse(text) as {
      instance_id?: unknown;
      tokenizer?: unknown;
      token_data_encodings?: unknown;
      token_data_without_text?: unknown;
    };
    const str = (v: unknown) => (typeof v === 'string' && v.length <= 128 ? v : undefined);
    const b64 = Array.isArray(o.token_data_encodings) && o.token_data_encodings.includes(TOKEN_DATA_B64);
    return { instance: str(o.instance_id), tokenizer: str(o.tokenizer), b64, withoutText: o.token_data_without_text === true };
  } catch {
    return {};
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
    if (s.active_blocks > b.activeDecodeBlocksThreshold * total)
      return `active decode blocks ${s.active_blocks} > ${b.activeDecodeBlocksThreshold} x ${total}`;
  }
  if (b.activePrefillTokensThreshold !== undefined && s.active_prefill_tokens > b.activePrefillTokensThreshold) {
    return `active prefill tokens ${s.active_prefill_tokens} > ${b.activePrefillTokensThreshold}`;
  }
  if (b.activePrefillTokensThresholdFrac !== undefined) {
    const mnbt = st.ep.maxNumBatchedTokens ?? b.defaultMaxNumBatchedTokens ?? 8192;
    if (s.active_prefill_tokens > b.activePrefillTokensThresholdFrac * mnbt)
      return `active prefill tokens ${s.active_prefill_tokens} > ${b.activePrefillTokensThresholdFrac} x ${mnbt}`;
  }
  return undefined;
}

export interface Eligible {
  ids: string[];
  excluded: Array<{ id: string; reason: string }>;
}

/** Candidates for a request now; throws 503 / 529 with a reason when there are none. */
export function eligibleWorkers(
  opts: RouterServerOptions,
  registry: WorkerRegistry,
  metrics: Metrics,
  router: KvRouter,
  tried: ReadonlySet<string>,
): Eligible {
  if (registry.size === 0)
    throw new HttpError(
      503,
      'no workers are registered with the router (add some with --worker or POST /admin/workers)',
      'server_error',
      'no_workers',
    );
  const now = nowMs();
  const ids: string[] = [];
  const excluded: Array<{ id: string; reason: string }> = [];
  const snap = opts.busy ? new Map(router.snapshot().workers.map((w) => [w.id, w])) : undefined;
  let busyCount = 0;
  let downCount = 0;
  let triedCount = 0;
  for (const st of registry.values()) {
    const id = st.ep.id;
    const isTried = tried.has(id);
    if (isTried) triedCount++;
    if (!st.healthy) {
      downCount++;
      excluded.push({ id, reason: `down (${st.lastHealthError ?? 'health check failed'})${isTried ? ', tried' : ''}` });
    } else if (isTried) excluded.push({ id, reason: 'tried' });
    else if (!st.breaker.allows(now)) {
      downCount++;
      excluded.push({
        id,
        reason: `circuit open after ${st.breaker.consecutiveFailures} failures (retry in ${Math.ceil(st.breaker.retryInMs(now) / 1000)} s)`,
      });
    } else {
      const busy = snap ? busyReason(st, snap, opts.busy) : undefined;
      if (busy) {
        busyCount++;
        excluded.push({ id, reason: `busy: ${busy}` });
      } else ids.push(id);
    }
  }
  if (ids.length > 0) return { ids, excluded };
  // Nothing passes the checks, but workers that are only marked down (not tried for this request,
  // not busy) may still answer: try them rather than answer 503 (a refused connection is quick).
  const lastResort = excluded.filter((e) => !tried.has(e.id) && !e.reason.startsWith('busy')).map((e) => e.id);
  if (lastResort.length > 0) {
    metrics.inc('dynamo_lab_router_last_resort_total', 'Requests sent to workers marked down because no other worker could take them');
    return { ids: lastResort, excluded: excluded.filter((e) => !lastResort.includes(e.id)) };
  }
  const detail = excluded.map((e) => `${e.id}: ${e.reason}`).join('; ');
  if (busyCount > 0) {
    metrics.inc('dynamo_lab_router_rejected_total', 'Requests rejected because no worker could take them', { reason: 'busy' });
    throw new HttpError(opts.overloadStatus ?? 529, `all workers are busy; retry later (${detail})`, 'server_error', 'all_workers_busy');
  }
  if (triedCount > 0 && downCount === 0) {
    throw new HttpError(503, `every worker failed for this request (tried ${[...tried].join(', ')})`, 'server_error', 'all_workers_failed');
  }
  metrics.inc('dynamo_lab_router_rejected_total', 'Requests rejected because no worker could take them', { reason: 'down' });
  throw new HttpError(503, `no healthy workers (${detail})`, 'server_error', 'no_healthy_workers');
}
