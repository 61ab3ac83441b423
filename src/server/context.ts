/**
 * The state the server's concerns share: one router core (every policy uses it, so switching
 * the mode keeps the index and the booked load), the worker registry, health, sessions, the
 * decision log and metrics. Built once by the composition root (router-server.ts).
 */
import type { IntervalHistogram } from 'node:perf_hooks';
import type { Agent } from 'undici';
import type { KvRouter, RoutingMode } from '../router/index.js';
import type { ChatTokenizer } from '../tokenizer/index.js';
import type { HealthChecker } from './eligibility.js';
import type { Metrics } from './metrics.js';
import type { DecisionLog } from './observability.js';
import type { TurnPacer } from './pacer.js';
import type { RouterQueue } from './queue.js';
import type { ReplicaSync } from './replica-sync.js';
import type { SessionAffinity } from './sessions.js';
import type { EventSourceKind, RouterServerOptions, Totals } from './types.js';
import type { WorkerRegistry } from './workers.js';

export interface ServerContext {
  readonly opts: RouterServerOptions;
  readonly core: KvRouter;
  readonly events: EventSourceKind;
  /** The routing policy now (RouterServer.setMode changes it). */
  mode: RoutingMode;
  readonly registry: WorkerRegistry;
  readonly health: HealthChecker;
  readonly sessions: SessionAffinity;
  readonly decisions: DecisionLog;
  readonly metrics: Metrics;
  readonly agent: Agent;
  readonly tokenizer: ChatTokenizer;
  readonly totals: Totals;
  /** Router queueing (--router-queue-threshold), when on. */
  readonly queue?: RouterQueue;
  /** Router replica sync, when on (set once at start). */
  replicas?: ReplicaSync;
  /** Upstream requests in flight, aborted on close. */
  readonly inflight: Set<AbortController>;
  /** Requests take turns for their synchronous work (pacer.ts). */
  readonly pacer: TurnPacer;
  /** Event-loop delay since the previous /metrics scrape (dynamo_lab_router_event_loop_delay_*_seconds). */
  readonly loopDelay: IntervalHistogram;
}
