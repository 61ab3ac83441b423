/**
 * The router server's shapes: its options, the workers it proxies to and their live state,
 * and the decision records and views it serves on /debug/*.
 */
import type { KvRouterConfig, RoutingDecision, RoutingMode } from '../router/index.js';
import type { RouterEvent } from '../router/types.js';
import type { PromptLimits } from '../tokenizer/index.js';
import type { HttpGuardOptions } from '../base/http.js';
import type { BreakerOptions, BreakerState, CircuitBreaker } from './breaker.js';
import type { NatsSourceStats } from './nats-events.js';
import type { ReplicaSyncStats } from './replica-sync.js';
import type { ZmqEventSource, ZmqSourceStats } from './zmq-events.js';

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
  /** Device class for device-aware-weighted routing (default cuda, Dynamo's non-CPU class). */
  readonly device?: 'cpu' | 'cuda';
  /**
   * Co-located simulated worker: takes the prompt's token ids for a request id (its x-request-id)
   * so it does not tokenize the text again. The router calls it before forwarding; the array
   * stays the router's (copy it before transferring it).
   */
  readonly provideTokens?: (requestId: string, ids: Uint32Array) => void;
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
  /** When set, every endpoint but /health and /metrics needs `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  readonly bodyLimitBytes?: number;
  /**
   * How long after the first request that goes on in one pass of the event loop others may still
   * go on at once before the rest take turns (pacer.ts); default 4 ms.
   */
  readonly turnBudgetMs?: number;
  /** HF tokenizer directory or tokenizer.json for chat templates and hashing (default: the shipped Qwen one). */
  readonly tokenizer?: string;
  /** Prompt limits applied when tokenizing (too many characters: 413; too many tokens: 400). */
  readonly promptLimits?: PromptLimits;
  /** Slow-client bounds (header, whole-request, keep-alive and idle timeouts). */
  readonly timeouts?: HttpGuardOptions;
  /** Most session-affinity entries kept (default 100000; the least recently used go first). */
  readonly maxSessions?: number;
  /** One line per routing decision and per worker state change (non-interactive logging). */
  readonly log?: (line: string) => void;
  readonly decisionHistory?: number;
  /** Where KV events come from (default inproc: each worker's onKvEvent). `none` = approximate mode. */
  readonly events?: EventSourceKind;
  /** NATS event plane (events: nats). */
  readonly nats?: { readonly servers: readonly string[]; readonly namespace?: string; readonly component?: string };
  /**
   * Router replica sync (Dynamo's --router-replica-sync): share active-sequence bookings and
   * session bindings with the other router replicas over this NATS server.
   */
  readonly replicaSync?: {
    readonly servers: readonly string[];
    readonly namespace?: string;
    readonly component?: string;
    readonly heartbeatMs?: number;
    readonly deadAfterMs?: number;
  };
  /** Active health checks; false turns them off. */
  readonly health?: HealthCheckOptions | false;
  readonly breaker?: BreakerOptions;
  readonly busy?: BusyThresholds;
  /** Session affinity TTL (X-Dynamo-Session-ID / x-dynamo-lab-session); 0 turns it off. Default 600 s. */
  readonly sessionAffinityTtlMs?: number;
  /**
   * Router queueing (Dynamo's --router-queue-threshold): while every eligible worker has more
   * than threshold * max_num_batched_tokens of active prefill, requests wait in the router
   * (FCFS, at most maxQueued; beyond that 529).
   */
  readonly queue?: { readonly threshold: number; readonly maxQueued: number };
  /** Status when every worker is busy (default 529, Dynamo's DYN_HTTP_OVERLOAD_STATUS_CODE). */
  readonly overloadStatus?: number;
  /** device-aware-weighted: non-CPU to CPU capacity ratio (Dynamo's DYN_ENCODER_CUDA_TO_CPU_RATIO, default 8). */
  readonly nonCpuToCpuRatio?: number;
  /**
   * The workers' url is a Dynamo frontend started with `--router-mode direct`, an HTTP gateway to
   * Dynamo's request plane: every forwarded request names the chosen worker in
   * `nvext.backend_instance_id` (its dynamoWorkerId), so the frontend sends it there and does not
   * choose again. Every worker then needs a dynamoWorkerId.
   */
  readonly dynamoDirect?: boolean;
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
  status?: 'ok' | 'error' | 'client_error' | 'aborted' | 'retried';
}

/** What the server knows about one worker, beyond the router core's view. */
export interface WorkerState {
  readonly ep: WorkerEndpoint;
  readonly addedAt: number;
  healthy: boolean;
  healthFailures: number;
  lastHealthError?: string;
  lastCheckMs?: number;
  checking: boolean;
  /** Last time the worker answered anything (a request byte or a health check). */
  lastOkAt: number;
  /** Smoothed health-check round trip (ms), for the adaptive check timeout. */
  healthRttMs?: number;
  /** The check timeout now (grows after timeouts, shrinks after quick answers). */
  healthTimeoutMs?: number;
  /** The last health failure was a refused/reset connection (the process was gone). */
  hardDown?: boolean;
  /** The instance id the worker's /health reported last (restart detection). */
  instanceId?: string;
  /**
   * The tokenizer fingerprint the worker's /health reported last (dynamo-lab sims). When it equals
   * the router's own and the worker takes ids without the text, requests carry the router's token
   * ids in place of the prompt (workers.ts promptIdsRoute).
   */
  tokenizerFingerprint?: string;
  /** Whether its /health also listed the compact form of the ids (`nvext.token_data_b64`, see request-body.ts). */
  tokenDataB64?: boolean;
  /** Whether its /health said it takes the ids in place of the prompt's text (`token_data_without_text`). */
  tokenDataWithoutText?: boolean;
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

/** Server-wide request counters (the per-worker ones live in WorkerState). */
export interface Totals {
  requests: number;
  errors: number;
  rejected: number;
  promptTokensWithUsage: number;
  predictedCachedWithUsage: number;
  achievedCached: number;
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
  /**
   * How the worker gets the prompt's token ids from the router: handed over in process (threaded
   * sims), sent as `nvext.token_data` (its /health reported the router's tokenizer) or as
   * `nvext.token_data_b64` (it also listed that form), or not at all (it tokenizes the prompt itself).
   */
  prompt_ids?: 'in-process' | 'nvext.token_data' | 'nvext.token_data_b64' | 'none';
  events?: ZmqSourceStats;
}

export interface TotalsView {
  requests: number;
  errors: number;
  rejected: number;
  predicted_hit_rate: number | null;
  achieved_hit_rate: number | null;
}

export interface WorkersView {
  mode: RoutingMode;
  events: EventSourceKind;
  workers: WorkerView[];
  nats?: NatsSourceStats;
  /** Router replica sync (--router-replica-sync): peers and message counts. */
  replica_sync?: ReplicaSyncStats;
  totals: TotalsView;
}

export interface DashboardState {
  url: string;
  mode: RoutingMode;
  events: EventSourceKind;
  workers: WorkerView[];
  totals: TotalsView;
  decisions: DecisionRecord[];
  nats?: NatsSourceStats;
}
