/**
 * What the server shows about itself: the decision log behind /debug/decisions (and the log
 * lines), the per-worker view behind /debug/workers and the dashboard, and the Prometheus
 * gauges published on each /metrics scrape.
 */
import { nowMs } from '../base/clock.js';
import type { ServerContext } from './context.js';
import { busyReason } from './eligibility.js';
import type { Metrics } from './metrics.js';
import { promptIdsRoute } from './workers.js';
import type { DecisionRecord, RouterServerOptions, WorkerState, WorkerView, WorkersView } from './types.js';

const HIT_BUCKETS = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1];
/**
 * Router overhead (ms): from microseconds (a cached route) up to a second (tokenizing a long prompt
 * on a loaded machine took 70 ms on average in a bench:peers run, which a top bucket of 25 ms hid).
 */
export const MS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000];
export const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const PHASE_NAMES: Record<string, string> = {
  block_hashing: 'block_hashing',
  find_matches: 'indexer_find_matches',
  seq_hashing: 'seq_hashing',
  scheduling: 'scheduling',
};

export function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The last routing decisions, newest first, with their metrics and log line. */
export class DecisionLog {
  private readonly log: DecisionRecord[] = [];

  constructor(
    private readonly opts: RouterServerOptions,
    private readonly metrics: Metrics,
    private readonly onFirstAttempt: () => void,
  ) {}

  get size(): number {
    return this.log.length;
  }

  recent(limit = 50): DecisionRecord[] {
    return this.log.slice(0, Math.max(0, limit));
  }

  /** Keep a decision; `started` (first attempts only) is when the request arrived. */
  record(record: DecisionRecord, started: number | undefined): void {
    this.log.unshift(record);
    const cap = this.opts.decisionHistory ?? 256;
    if (this.log.length > cap) this.log.length = cap;
    if (started !== undefined) {
      const predicted = record.isl_tokens > 0 ? Math.min(1, record.cached_tokens / record.isl_tokens) : 0;
      this.onFirstAttempt();
      this.metrics.inc('dynamo_component_router_requests_total', 'Requests routed', { mode: record.mode });
      this.metrics.observe('dynamo_component_router_kv_hit_rate', 'Predicted KV hit rate at routing time (0-1)', HIT_BUCKETS, predicted);
      this.metrics.observe(
        'dynamo_router_overhead_total_ms',
        'Router overhead from request receipt to worker choice (ms)',
        MS_BUCKETS,
        performance.now() - started,
      );
      if (record.timings_us) {
        for (const [phase, us] of Object.entries(record.timings_us)) {
          this.metrics.observe(
            `dynamo_router_overhead_${PHASE_NAMES[phase] ?? phase}_ms`,
            `Router overhead in ${PHASE_NAMES[phase] ?? phase} (ms)`,
            MS_BUCKETS,
            us / 1000,
          );
        }
      }
      const best = Math.max(0, ...record.workers.map((w) => w.overlap_blocks));
      if (record.overlap_blocks < best)
        this.metrics.inc(
          'dynamo_component_router_non_max_overlap_selections_total',
          'Decisions that chose a worker without the largest overlap',
        );
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
}

/** Every worker as the router sees it (load, cache, health, hit rates), plus the totals. */
export function workersView(ctx: ServerContext): WorkersView {
  const snap = ctx.core.snapshot();
  const byId = new Map(snap.workers.map((w) => [w.id, w]));
  const now = nowMs();
  const workers: WorkerView[] = [];
  for (const w of snap.workers) {
    const st = ctx.registry.get(w.id);
    if (!st) continue;
    const v: WorkerView = {
      id: w.id,
      url: st.ep.url,
      dpRank: w.dpRank,
      healthy: st.healthy,
      circuit: st.breaker.state(now),
      busy: busyReason(st, byId, ctx.opts.busy) !== undefined,
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
    v.prompt_ids = promptIdsRoute(st, ctx.tokenizer.fingerprint);
    if (st.zmq) v.events = st.zmq.stats;
    workers.push(v);
  }
  const t = ctx.totals;
  const view: WorkersView = {
    mode: ctx.mode,
    events: ctx.events,
    workers,
    totals: {
      requests: t.requests,
      errors: t.errors,
      rejected: t.rejected,
      predicted_hit_rate: t.promptTokensWithUsage > 0 ? t.predictedCachedWithUsage / t.promptTokensWithUsage : null,
      achieved_hit_rate: t.promptTokensWithUsage > 0 ? t.achievedCached / t.promptTokensWithUsage : null,
    },
  };
  const nats = ctx.registry.natsStats();
  if (nats) view.nats = nats;
  if (ctx.replicas) view.replica_sync = ctx.replicas.view();
  return view;
}

/**
 * Per-worker gauges: name, help, labels (`rank`: worker_id, dp_rank and worker_type as Dynamo's
 * frontend labels them; `id`: worker_id only) and the value (undefined or null: no sample yet).
 */
const WORKER_GAUGES: ReadonlyArray<[string, string, 'rank' | 'id', (w: WorkerView, st: WorkerState) => number | null | undefined]> = [
  ['dynamo_frontend_worker_active_decode_blocks', 'Active KV blocks the router books on each worker', 'rank', (w) => w.active_blocks],
  ['dynamo_frontend_worker_active_prefill_tokens', 'Prefill tokens in flight on each worker', 'rank', (w) => w.active_prefill_tokens],
  ['dynamo_lab_router_worker_cached_blocks', 'Blocks the indexer believes each worker has cached', 'rank', (w) => w.cached_blocks],
  ['dynamo_lab_router_worker_healthy', '1 when the worker passes health checks', 'id', (w) => (w.healthy ? 1 : 0)],
  ['dynamo_lab_router_worker_circuit_open', "1 when the worker's circuit breaker is open", 'id', (w) => (w.circuit === 'open' ? 1 : 0)],
  [
    'dynamo_frontend_worker_last_time_to_first_token_seconds',
    'Last TTFT seen from each worker (router view)',
    'rank',
    (_, st) => st.lastTtftS,
  ],
  [
    'dynamo_frontend_worker_last_inter_token_latency_seconds',
    'Last mean ITL seen from each worker (router view)',
    'rank',
    (_, st) => st.lastItlS,
  ],
  [
    'dynamo_frontend_worker_last_input_sequence_tokens',
    'Input tokens of the last request sent to each worker',
    'rank',
    (_, st) => st.lastIsl,
  ],
  [
    'dynamo_lab_router_worker_achieved_hit_rate',
    'Cached prompt tokens / prompt tokens, as the worker reported (requests with usage)',
    'id',
    (w) => w.achieved_hit_rate,
  ],
  [
    'dynamo_lab_router_worker_predicted_hit_rate',
    'Cached prompt tokens the router predicted / prompt tokens (same requests)',
    'id',
    (w) => w.predicted_hit_rate,
  ],
];

/** Router-wide gauges (no labels): name, help, value (undefined or null: not published). */
const ROUTER_GAUGES: ReadonlyArray<[string, string, (ctx: ServerContext, view: WorkersView) => number | null | undefined]> = [
  [
    'dynamo_lab_router_achieved_hit_rate',
    'Cached prompt tokens / prompt tokens over all requests with usage, as the workers reported',
    (_, v) => v.totals.achieved_hit_rate,
  ],
  [
    'dynamo_lab_router_predicted_hit_rate',
    'Predicted cached prompt tokens / prompt tokens over the same requests',
    (_, v) => v.totals.predicted_hit_rate,
  ],
  ['dynamo_lab_router_indexed_blocks', "Blocks in the router's radix index (all workers)", (ctx) => ctx.core.stats().indexed_blocks],
  ['dynamo_lab_router_active_requests', 'Requests the router has booked on workers', (ctx) => ctx.core.stats().active_requests],
  ['dynamo_lab_router_radix_nodes', "Nodes in the router's radix index", (ctx) => ctx.core.stats().radix_nodes],
  ['dynamo_lab_router_sessions', 'Live session-affinity entries', (ctx) => ctx.sessions.size],
  ['dynamo_lab_router_decisions_held', 'Routing decisions kept for /debug/decisions', (ctx) => ctx.decisions.size],
  ['dynamo_lab_router_token_cache_entries', 'Pieces in the per-piece token cache', (ctx) => ctx.tokenizer.cacheStats().entries],
  [
    'dynamo_lab_router_token_cache_bytes',
    'Bytes the per-piece token cache holds (text and ids; bounded)',
    (ctx) => ctx.tokenizer.cacheStats().bytes,
  ],
  [
    'dynamo_lab_router_tokenized_pieces_fast',
    'Prompt pieces tokenized by the fast byte-level BPE threads (total)',
    (ctx) => ctx.tokenizer.piecesBy.tiktoken,
  ],
  [
    'dynamo_lab_router_tokenized_pieces_hf',
    'Prompt pieces tokenized by the HF tokenizers library (total)',
    (ctx) => ctx.tokenizer.piecesBy.hf,
  ],
  [
    'dynamo_frontend_router_queue_pending_requests',
    'Requests waiting in the router queue (--router-queue-threshold)',
    (ctx) => ctx.queue?.depth,
  ],
  ['dynamo_lab_router_queue_requests_queued', 'Requests that had to wait in the router queue (total)', (ctx) => ctx.queue?.queuedTotal],
  ['dynamo_lab_router_queue_rejected', 'Requests refused because the router queue was full (total)', (ctx) => ctx.queue?.rejectedTotal],
];

/** Set the gauges from the current state (called on each /metrics scrape). */
export function publishGauges(ctx: ServerContext): void {
  const { metrics } = ctx;
  const view = workersView(ctx);
  for (const [name] of WORKER_GAUGES) metrics.resetGauge(name);
  for (const w of view.workers) {
    const st = ctx.registry.get(w.id)!;
    const byRank = { worker_id: w.id, dp_rank: String(w.dpRank), worker_type: 'decode' };
    for (const [name, help, labels, value] of WORKER_GAUGES) {
      const v = value(w, st);
      if (v !== undefined && v !== null) metrics.set(name, help, labels === 'rank' ? byRank : { worker_id: w.id }, v);
    }
  }
  for (const [name, help, value] of ROUTER_GAUGES) {
    const v = value(ctx, view);
    if (v !== undefined && v !== null) metrics.set(name, help, {}, v);
  }
  publishLoopDelay(ctx);
}

/**
 * The router's event-loop delay since the previous scrape: a timer due every 10 ms is sampled, and
 * how late it ran is how long a request (/health included) could wait before the router's thread got
 * to it, whether the thread was busy or waiting for a CPU.
 */
function publishLoopDelay(ctx: ServerContext): void {
  const h = ctx.loopDelay;
  if (h.count === 0) return;
  const late = (ns: number) => Math.max(0, ns - LOOP_DELAY_RESOLUTION_MS * 1e6) / 1e9;
  const help = (what: string) => `Event-loop delay, ${what} since the previous /metrics scrape (s)`;
  ctx.metrics.set('dynamo_lab_router_event_loop_delay_p50_seconds', help('median'), {}, late(h.percentile(50)));
  ctx.metrics.set('dynamo_lab_router_event_loop_delay_p99_seconds', help('99th percentile'), {}, late(h.percentile(99)));
  ctx.metrics.set('dynamo_lab_router_event_loop_delay_max_seconds', help('maximum'), {}, late(h.max));
  h.reset();
}

/** Sampling interval of the event-loop delay monitor (ms). */
export const LOOP_DELAY_RESOLUTION_MS = 10;
