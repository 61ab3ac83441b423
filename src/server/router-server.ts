/**
 * The embedded router: an OpenAI-compatible HTTP front that tokenises each request the same
 * way the workers do, asks the router core which worker to use, and proxies the request
 * there (SSE passed through unbuffered).
 *
 *   client ──HTTP──▶ RouterServer ──route()──▶ KvRouter (src/router, pure)
 *                        │  ▲                       ▲
 *                        │  └── KV events ──────────┘ (in-process listener per worker)
 *                        └──undici──▶ worker /v1/...
 *
 * Every routed response carries x-dynamo-lab-worker / -overlap-blocks / -mode headers, and
 * /debug/decisions shows the per-worker overlap / load / cost table behind each choice.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { KvRouter, type KvRouterConfig, type RoutingDecision, type RoutingMode } from '../router/index.js';
import type { RouterEvent } from '../router/types.js';
import { applyChatTemplate, loadTokenizer, type ChatMessage, type Tokenizer } from '../tokenizer/index.js';
import { HttpError, parseJsonBody, readBody, sendError, sendJson } from './http-util.js';
import { Metrics } from './metrics.js';

export const ROUTING_MODES: readonly RoutingMode[] = ['kv', 'round-robin', 'random', 'least-loaded', 'power-of-two'];

export interface WorkerEndpoint {
  readonly id: string;
  /** Base URL of the worker's OpenAI server, e.g. http://127.0.0.1:8100 */
  readonly url: string;
  /** In-process KV event feed (simulated workers). Returns an unsubscribe function. */
  readonly onKvEvent?: (listener: (ev: RouterEvent) => void) => () => void;
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
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string;
  readonly bodyLimitBytes?: number;
  /** One line per routing decision (non-interactive logging). */
  readonly log?: (line: string) => void;
  readonly decisionHistory?: number;
}

export interface DecisionRecord extends RoutingDecision {
  readonly at_ms: number;
  /** Filled in when the worker reports usage: the cached tokens it actually reused. */
  achieved_cached_tokens?: number;
  status?: 'ok' | 'error' | 'aborted';
}

export class RouterServer {
  private server!: Server;
  private readonly agent = new Agent({ keepAliveTimeout: 30_000, connections: 512, pipelining: 0 });
  private readonly routers = new Map<RoutingMode, KvRouter>();
  private readonly workers = new Map<string, WorkerEndpoint>();
  private readonly unsubscribers = new Map<string, () => void>();
  private readonly decisionsLog: DecisionRecord[] = [];
  private readonly metrics = new Metrics();
  private readonly inflight = new Set<AbortController>();
  private tokenizer!: Tokenizer;
  private modeNow: RoutingMode;
  private closed = false;
  url = '';
  port = 0;

  private constructor(private readonly opts: RouterServerOptions) {
    this.modeNow = opts.mode ?? 'kv';
  }

  static async start(opts: RouterServerOptions): Promise<RouterServer> {
    const s = new RouterServer(opts);
    s.tokenizer = await loadTokenizer();
    for (const w of opts.workers) s.addWorker(w);
    await s.listen(opts.host ?? '127.0.0.1', opts.port ?? 8000);
    return s;
  }

  get mode(): RoutingMode {
    return this.modeNow;
  }

  /** Switch the routing policy. Every policy's router is fed the same KV events all along. */
  setMode(mode: RoutingMode): void {
    this.routerFor(mode);
    this.modeNow = mode;
  }

  private routerFor(mode: RoutingMode): KvRouter {
    let r = this.routers.get(mode);
    if (!r) {
      r = new KvRouter({ blockSize: this.opts.blockSize, mode, config: this.opts.config, seed: this.opts.seed });
      for (const id of this.workers.keys()) r.addWorker(id);
      this.routers.set(mode, r);
    }
    return r;
  }

  addWorker(w: WorkerEndpoint): void {
    if (this.workers.has(w.id)) throw new Error(`worker ${w.id} is already registered`);
    this.workers.set(w.id, w);
    this.routerFor(this.modeNow);
    for (const r of this.routers.values()) r.addWorker(w.id);
    if (w.onKvEvent) this.unsubscribers.set(w.id, w.onKvEvent((ev) => this.applyEvent(ev)));
  }

  removeWorker(id: string): void {
    this.unsubscribers.get(id)?.();
    this.unsubscribers.delete(id);
    this.workers.delete(id);
    for (const r of this.routers.values()) r.removeWorker(id);
  }

  /** Feed one KV event to every policy's router. */
  applyEvent(ev: RouterEvent): void {
    let status = 'ok';
    for (const r of this.routers.values()) {
      const res = r.applyEvent(ev, Date.now());
      if (r === this.routers.get(this.modeNow)) status = res.status;
    }
    this.metrics.inc('dynamo_component_kv_cache_events_applied', 'KV cache events applied to the indexer, by status and event type', { status, event_type: ev.data.type });
  }

  decisions(limit = 50): DecisionRecord[] {
    return this.decisionsLog.slice(0, Math.max(0, limit));
  }

  private listen(host: string, port: number): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err) => sendError(res, err));
    });
    this.server.keepAliveTimeout = 30_000;
    return new Promise((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE' ? new Error(`port ${port} on ${host} is already in use`) : err);
      });
      this.server.listen(port, host, () => {
        const addr = this.server.address() as AddressInfo;
        this.port = addr.port;
        this.url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.inflight) c.abort();
    for (const u of this.unsubscribers.values()) u();
    this.unsubscribers.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.agent.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (this.opts.apiKey && path.startsWith('/v1/')) {
      const auth = req.headers.authorization ?? '';
      if (auth !== `Bearer ${this.opts.apiKey}`) throw new HttpError(401, 'missing or wrong API key: send "Authorization: Bearer <key>"', 'authentication_error', 'invalid_api_key');
    }
    if (req.method === 'POST' && (path === '/v1/chat/completions' || path === '/v1/completions')) return this.proxyCompletion(req, res, path);
    if (req.method === 'GET' && path === '/v1/models') return this.models(res);
    if (req.method === 'GET' && path === '/health') return sendJson(res, 200, { status: 'ok', mode: this.modeNow, workers: this.workers.size });
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
    if (req.method === 'GET' && path === '/debug/workers') return sendJson(res, 200, this.workersView());
    throw new HttpError(404, `no route for ${req.method} ${path}`, 'invalid_request_error', 'not_found');
  }

  workersView(): { mode: RoutingMode; workers: Array<Record<string, unknown>> } {
    const snap = this.routerFor(this.modeNow).snapshot();
    return {
      mode: this.modeNow,
      workers: snap.workers.map((w) => ({ ...w, url: this.workers.get(w.id)?.url })),
    };
  }

  private publishGauges(): void {
    const snap = this.routerFor(this.modeNow).snapshot();
    this.metrics.resetGauge('dynamo_frontend_worker_active_decode_blocks');
    this.metrics.resetGauge('dynamo_frontend_worker_active_prefill_tokens');
    for (const w of snap.workers) {
      const labels = { worker_id: w.id, dp_rank: String(w.dpRank), worker_type: 'decode' };
      this.metrics.set('dynamo_frontend_worker_active_decode_blocks', 'Active KV blocks the router books on each worker', labels, w.active_blocks);
      this.metrics.set('dynamo_frontend_worker_active_prefill_tokens', 'Prefill tokens in flight on each worker', labels, w.active_prefill_tokens);
    }
  }

  private async models(res: ServerResponse): Promise<void> {
    const ids = new Map<string, Record<string, unknown>>();
    await Promise.all(
      [...this.workers.values()].map(async (w) => {
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
    if (Array.isArray(prompt) && prompt.every((t) => Number.isInteger(t))) return prompt as number[];
    throw new HttpError(400, '"prompt" must be a string or an array of token ids', 'invalid_request_error', 'invalid_prompt');
  }

  private async proxyCompletion(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const started = performance.now();
    const raw = await readBody(req, this.opts.bodyLimitBytes ?? 8 * 1024 * 1024);
    const body = parseJsonBody(raw);
    const tokens = this.tokenize(path, body);
    const stream = body.stream === true;
    const mode = this.modeNow;
    const router = this.routerFor(mode);
    const requestId = `${path.includes('chat') ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '').slice(0, 24)}`;
    const overrides = readOverrides(body);
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

    try {
      // Retry before the first byte: a worker that cannot be reached or answers 5xx is skipped.
      for (;;) {
        if (this.workers.size === 0) throw new HttpError(503, 'no workers are registered with the router', 'server_error', 'no_workers');
        const allowed = [...this.workers.keys()].filter((id) => !tried.has(id));
        if (allowed.length === 0) throw new HttpError(503, `every worker failed for this request (tried ${[...tried].join(', ')})`, 'server_error', 'all_workers_failed');
        const decision = router.route({ requestId, tokens, nowMs: Date.now(), overrides, allowedWorkers: allowed });
        const record: DecisionRecord = { ...decision, at_ms: Date.now() };
        this.recordDecision(record, started);
        const worker = this.workers.get(decision.chosen)!;
        tried.add(worker.id);
        let upstream;
        try {
          upstream = await request(`${worker.url}${path}`, {
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
          record.status = 'error';
          if (clientGone) return;
          this.opts.log?.(`worker ${worker.id} failed before the first byte (${(err as Error).message}); trying another worker`);
          continue;
        }
        if (upstream.statusCode >= 500 && upstream.statusCode !== 529) {
          await upstream.body.dump();
          router.free(requestId, Date.now());
          record.status = 'error';
          this.opts.log?.(`worker ${worker.id} answered ${upstream.statusCode}; trying another worker`);
          continue;
        }
        await this.relay(upstream, res, record, router, stream);
        return;
      }
    } finally {
      this.inflight.delete(client);
      if (clientGone) router.free(requestId, Date.now());
    }
  }

  private recordDecision(record: DecisionRecord, started: number): void {
    this.decisionsLog.unshift(record);
    const cap = this.opts.decisionHistory ?? 256;
    if (this.decisionsLog.length > cap) this.decisionsLog.length = cap;
    const predicted = record.isl_tokens > 0 ? Math.min(1, record.cached_tokens / record.isl_tokens) : 0;
    this.metrics.inc('dynamo_component_router_requests_total', 'Requests routed', { mode: record.mode });
    this.metrics.observe('dynamo_component_router_kv_hit_rate', 'Predicted KV hit rate at routing time (0-1)', [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1], predicted);
    this.metrics.observe('dynamo_router_overhead_total_ms', 'Router overhead from request receipt to worker choice (ms)', [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25], performance.now() - started);
    if (record.timings_us) {
      for (const [phase, us] of Object.entries(record.timings_us)) {
        this.metrics.observe(`dynamo_router_overhead_${phase}_ms`, `Router overhead in ${phase} (ms)`, [0.01, 0.05, 0.1, 0.5, 1, 5], us / 1000);
      }
    }
    const chosen = record.workers.find((w) => w.id === record.chosen);
    this.opts.log?.(
      `route ${record.request_id} mode=${record.mode} -> ${record.chosen} overlap=${record.overlap_blocks}/${Math.floor(record.isl_tokens / record.block_size)} blocks isl=${record.isl_tokens}` +
        (chosen ? ` cost=${round(chosen.cost)}` : '') +
        ` | ${record.workers.map((w) => `${w.id}: overlap ${w.overlap_blocks} cost ${round(w.cost)}`).join(', ')}`,
    );
  }

  private async relay(upstream: Awaited<ReturnType<typeof request>>, res: ServerResponse, record: DecisionRecord, router: KvRouter, stream: boolean): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': String(upstream.headers['content-type'] ?? (stream ? 'text/event-stream' : 'application/json')),
      'x-dynamo-lab-worker': record.chosen,
      'x-dynamo-lab-overlap-blocks': String(record.overlap_blocks),
      'x-dynamo-lab-mode': record.mode,
      'x-request-id': record.request_id,
    };
    if (stream) headers['cache-control'] = 'no-cache';
    res.writeHead(upstream.statusCode, headers);
    res.flushHeaders();
    let first = true;
    let tail = '';
    try {
      for await (const chunk of upstream.body) {
        if (first) {
          first = false;
          router.markPrefillCompleted(record.request_id, Date.now());
        }
        // Keep a bounded tail of the body to read `usage` (the last SSE chunk or the JSON body).
        tail = (tail + (chunk as Buffer).toString('utf8')).slice(-8192);
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
      record.status = upstream.statusCode < 400 ? 'ok' : 'error';
      const cached = extractCachedTokens(tail);
      if (cached !== undefined) {
        record.achieved_cached_tokens = cached;
        this.metrics.observe('dynamo_frontend_cached_tokens', 'Cached prompt tokens reported by the worker', [0, 16, 64, 256, 1024, 4096, 16384, 65536], cached);
        this.metrics.inc('dynamo_lab_router_achieved_cached_tokens_total', 'Cached tokens the workers reported', {}, cached);
        this.metrics.inc('dynamo_lab_router_predicted_cached_tokens_total', 'Cached tokens the router predicted', {}, record.cached_tokens);
        this.metrics.inc('dynamo_lab_router_prompt_tokens_total', 'Prompt tokens routed', {}, record.isl_tokens);
      }
    } catch (err) {
      record.status = 'aborted';
      res.destroy(err as Error);
    } finally {
      router.free(record.request_id, Date.now());
    }
  }
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
  const i = tail.lastIndexOf('"cached_tokens"');
  if (i < 0) return undefined;
  const m = /"cached_tokens"\s*:\s*(\d+)/.exec(tail.slice(i));
  return m ? Number(m[1]) : undefined;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
