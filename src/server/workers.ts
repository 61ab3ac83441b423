/**
 * The worker registry and the wiring of KV event sources: workers come from the options and
 * from the admin API; each one's events reach the router core's index in-process (simulated
 * workers), over ZeroMQ (vLLM PUB + replay) or, for all workers at once, over NATS (Dynamo).
 */
import { nowMs } from '../base/clock.js';
import type { KvRouter } from '../router/index.js';
import type { RouterEvent } from '../router/types.js';
import { HttpError } from '../base/http.js';
import { CircuitBreaker } from './breaker.js';
import type { Metrics } from './metrics.js';
import { NatsEventSource, type NatsSourceStats } from './nats-events.js';
import type { WorkerSpec } from './worker-spec.js';
import { ZmqEventSource } from './zmq-events.js';
import type { EventSourceKind, RouterServerOptions, WorkerEndpoint, WorkerState } from './types.js';

/**
 * How a worker gets the prompt's token ids from the router (tokenize once), in place of the
 * prompt's text: handed over in process (threaded sims), or in the body as `nvext.token_data` when
 * its /health reported the router's tokenizer fingerprint and `token_data_without_text` (as
 * `nvext.token_data_b64` when it also listed that form, see tokenizer/token-data.ts); or not at all
 * (the worker gets the client's prompt and tokenizes it itself).
 */
export function promptIdsRoute(
  st: WorkerState,
  routerTokenizer: string,
): 'in-process' | 'nvext.token_data' | 'nvext.token_data_b64' | 'none' {
  if (st.ep.provideTokens) return 'in-process';
  if (st.tokenizerFingerprint !== routerTokenizer || !st.tokenDataWithoutText) return 'none';
  return st.tokenDataB64 ? 'nvext.token_data_b64' : 'nvext.token_data';
}

export class WorkerRegistry {
  readonly states = new Map<string, WorkerState>();
  private readonly byDynamoId = new Map<string, string>();
  private nats?: NatsEventSource;
  /** Called after a worker is added (the server asks its /health who it is). */
  onAdded?: (st: WorkerState) => void;

  constructor(
    private readonly opts: RouterServerOptions,
    private readonly events: EventSourceKind,
    private readonly core: KvRouter,
    private readonly metrics: Metrics,
    /** Called after a worker is removed (sessions pinned to it are dropped). */
    private readonly onRemoved: (id: string) => void,
  ) {}

  get size(): number {
    return this.states.size;
  }

  get(id: string): WorkerState | undefined {
    return this.states.get(id);
  }

  has(id: string): boolean {
    return this.states.has(id);
  }

  ids(): string[] {
    return [...this.states.keys()];
  }

  values(): IterableIterator<WorkerState> {
    return this.states.values();
  }

  /**
   * The worker a client named (direct mode): its id, or its Dynamo worker_id (decimal; 0x hex
   * accepted), as Dynamo's nvext.backend_instance_id carries it.
   */
  resolve(name: string): string | undefined {
    if (this.states.has(name)) return name;
    if (/^(0x[0-9a-f]+|\d+)$/i.test(name)) {
      const dec = BigInt(name).toString();
      return this.byDynamoId.get(dec) ?? (this.states.has(dec) ? dec : undefined);
    }
    return undefined;
  }

  /** Connect to NATS when the events come from there (one subscription for every worker). */
  async startNats(): Promise<void> {
    if (this.events !== 'nats') return;
    const nats = this.opts.nats;
    if (!nats?.servers.length) throw new Error('events "nats" needs nats.servers (nats://host:port)');
    this.nats = await NatsEventSource.start({
      servers: nats.servers,
      namespace: nats.namespace,
      component: nats.component,
      resolveWorker: (id) => this.byDynamoId.get(id) ?? (this.states.has(id) ? id : undefined),
      onEvents: (evs) => {
        for (const ev of evs) this.applyEvent(ev);
      },
      log: this.opts.log,
    });
  }

  natsStats(): NatsSourceStats | undefined {
    return this.nats?.stats;
  }

  add(w: WorkerEndpoint): void {
    if (this.states.has(w.id)) throw new Error(`worker ${w.id} is already registered`);
    if (this.opts.dynamoDirect && !/^\d+$/.test(w.dynamoWorkerId ?? ''))
      throw new Error(
        `worker ${w.id} has no Dynamo worker_id: in front of a Dynamo frontend in --router-mode direct every worker needs worker_id=<instance id> (the frontend's /health lists them)`,
      );
    if (w.dynamoWorkerId !== undefined && this.byDynamoId.has(w.dynamoWorkerId))
      throw new Error(`Dynamo worker_id ${w.dynamoWorkerId} already belongs to worker ${this.byDynamoId.get(w.dynamoWorkerId)}`);
    const st: WorkerState = {
      ep: w,
      addedAt: nowMs(),
      healthy: true,
      healthFailures: 0,
      checking: false,
      lastOkAt: nowMs(),
      breaker: new CircuitBreaker(this.opts.breaker),
      requests: 0,
      errors: 0,
      promptTokensWithUsage: 0,
      predictedCachedWithUsage: 0,
      achievedCached: 0,
    };
    this.states.set(w.id, st);
    this.onAdded?.(st);
    if (w.dynamoWorkerId !== undefined) this.byDynamoId.set(w.dynamoWorkerId, w.id);
    this.core.addWorker(w.id);
    if (w.totalKvBlocks !== undefined) this.core.setWorkerCapacity(w.id, w.totalKvBlocks);
    if (w.device !== undefined) this.core.setWorkerDevice(w.id, w.device);
    if (this.events === 'inproc' && w.onKvEvent) st.unsubscribe = w.onKvEvent((ev) => this.applyEvent(ev));
    if (this.events === 'zmq' && w.zmq) {
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
          this.core.resetWorkerCache(w.id);
          this.metrics.inc(
            'dynamo_lab_router_worker_cache_resets_total',
            "Times a worker's indexed blocks were dropped (restart, lost event history)",
            { worker_id: w.id, reason },
          );
        },
        log: this.opts.log,
      }).start();
    }
  }

  /** The worker's process restarted: its old cache is gone (and its ZMQ events start over). */
  workerRestarted(id: string, why: string): void {
    const st = this.states.get(id);
    if (!st) return;
    this.core.resetWorkerCache(id);
    this.metrics.inc(
      'dynamo_lab_router_worker_cache_resets_total',
      "Times a worker's indexed blocks were dropped (restart, lost event history)",
      { worker_id: id, reason: 'restart detected by health check' },
    );
    this.opts.log?.(`worker ${id} restarted (${why}): its indexed blocks were dropped`);
    st.zmq?.resync();
  }

  /** Add a worker from a spec (admin API): the id defaults to the next free worker-N. */
  addSpec(spec: WorkerSpec): WorkerEndpoint {
    let id = spec.id;
    if (!id) {
      let i = this.states.size;
      while (this.states.has(`worker-${i}`)) i++;
      id = `worker-${i}`;
    }
    if (this.states.has(id)) throw new HttpError(409, `worker ${id} is already registered`, 'invalid_request_error', 'worker_exists');
    const ep: WorkerEndpoint = {
      id,
      url: spec.url,
      zmq: spec.zmq,
      replay: spec.replay,
      dynamoWorkerId: spec.dynamoWorkerId,
      totalKvBlocks: spec.totalKvBlocks,
      maxNumBatchedTokens: spec.maxNumBatchedTokens,
      device: spec.device,
    };
    try {
      this.add(ep);
    } catch (err) {
      throw new HttpError(409, (err as Error).message, 'invalid_request_error', 'worker_conflict');
    }
    return ep;
  }

  remove(id: string): boolean {
    const st = this.states.get(id);
    if (!st) return false;
    st.unsubscribe?.();
    void st.zmq?.close();
    this.states.delete(id);
    if (st.ep.dynamoWorkerId !== undefined) this.byDynamoId.delete(st.ep.dynamoWorkerId);
    this.core.removeWorker(id);
    this.onRemoved(id);
    return true;
  }

  /** Feed one KV event to the router core's index. */
  applyEvent(ev: RouterEvent): void {
    const res = this.core.applyEvent(ev, nowMs());
    this.metrics.inc('dynamo_component_kv_cache_events_applied', 'KV cache events applied to the indexer, by status and event type', {
      status: res.status,
      event_type: ev.data.type,
    });
    if (res.gap)
      this.metrics.inc('dynamo_lab_router_event_id_gaps_total', 'KV event id gaps seen per worker (events lost on the way)', {
        worker_id: ev.workerId,
      });
  }

  /** Wait until every ZMQ source has finished its replay (tests, startup). */
  async eventsIdle(): Promise<void> {
    await Promise.all([...this.states.values()].map((w) => w.zmq?.idle()));
  }

  /** Stop every event source (the workers stay registered). */
  async shutdownSources(): Promise<void> {
    const closing: Array<Promise<void> | undefined> = [];
    for (const st of this.states.values()) {
      st.unsubscribe?.();
      st.unsubscribe = undefined;
      closing.push(st.zmq?.close());
    }
    closing.push(this.nats?.close());
    await Promise.allSettled(closing);
  }
}
