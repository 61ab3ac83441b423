/**
 * The HTTP app: the routing table of the router server (OpenAI endpoints, health, metrics,
 * /debug/* and the worker admin API), API-key checks and OpenAI-shaped errors.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request } from 'undici';
import {
  checkJsonContentType,
  guardedServerOptions,
  decodePathSegment,
  guardServer,
  HttpError,
  methodNotAllowed,
  parseJsonBody,
  readBody,
  sendError,
  sendJson,
  splitTarget,
} from '../base/http.js';
import type { ServerContext } from './context.js';
import { publishGauges, workersView } from './observability.js';
import { overlapOf } from './overlap.js';
import { proxyCompletion } from './proxy.js';
import { workerSpecFromObject, WorkerSpecError, type WorkerSpec } from './worker-spec.js';

/** An http.Server answering with the app; errors become OpenAI-shaped JSON (503/529 with retry-after). */
export function createApp(ctx: ServerContext): Server {
  const timeouts = { keepAliveTimeoutMs: CLIENT_KEEPALIVE_MS, ...ctx.opts.timeouts };
  const server = createServer(guardedServerOptions(timeouts), (req, res) => {
    handle(ctx, req, res).catch((err) => {
      const headers: Record<string, string> = {};
      if (err instanceof HttpError && (err.status === 529 || err.status === 503)) headers['retry-after'] = '1';
      if (!(err instanceof HttpError)) ctx.opts.log?.(`internal error on ${req.method} ${req.url}: ${(err as Error)?.stack ?? err}`);
      sendError(res, err, headers);
    });
  });
  guardServer(server, timeouts);
  return server;
}

/**
 * How long the router keeps an idle client connection open (Node's default is 5 s). A server
 * that closes an idle connection at the moment its client sends a request on it resets that
 * request (ECONNRESET at the client, and the router never sees it). Client pools keep idle
 * connections for up to 5 s (httpx, so the openai client) or 15 s (aiohttp, so aiperf), and
 * mostly do not read the Keep-Alive header: a bench:peers run lost one of 300 trace requests that
 * way. The server must outlast them, as a load balancer in front of such clients does; the idle
 * bound (120 s) still closes connections nobody uses.
 */
const CLIENT_KEEPALIVE_MS = 65_000;

/** sha256 of the configured key, compared in constant time with the presented one's. */
function checkAuth(ctx: ServerContext, req: IncomingMessage): void {
  const key = ctx.opts.apiKey;
  if (!key) return;
  const auth = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
  const want = createHash('sha256').update(key).digest();
  const got = createHash('sha256')
    .update(m ? m[1]! : '')
    .digest();
  if (!m || !timingSafeEqual(want, got)) {
    req.resume();
    throw new HttpError(401, 'missing or wrong API key: send "Authorization: Bearer <key>"', 'authentication_error', 'invalid_api_key');
  }
}

type Handler = (ctx: ServerContext, req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => Promise<void> | void;

/** The routing table: path -> method -> handler. Paths not here are 404; other methods are 405 with Allow. */
const ROUTES: Record<string, Record<string, Handler>> = {
  '/v1/chat/completions': { POST: (ctx, req, res) => proxyCompletion(ctx, req, res, '/v1/chat/completions') },
  '/v1/completions': { POST: (ctx, req, res) => proxyCompletion(ctx, req, res, '/v1/completions') },
  '/v1/models': { GET: (ctx, _req, res) => models(ctx, res) },
  '/health': { GET: (ctx, _req, res) => health(ctx, res) },
  '/metrics': {
    GET: async (ctx, _req, res) => {
      publishGauges(ctx);
      const text = await ctx.metrics.render();
      res.writeHead(200, { 'content-type': ctx.metrics.contentType });
      res.end(text);
    },
  },
  '/debug/decisions': {
    GET: (ctx, _req, res, query) => {
      const limit = Number(query.get('limit') ?? 50);
      sendJson(res, 200, { decisions: ctx.decisions.recent(Number.isFinite(limit) ? limit : 50) });
    },
  },
  '/debug/workers': { GET: (ctx, _req, res) => sendJson(res, 200, workersView(ctx)) },
  '/debug/overlap': {
    POST: async (ctx, req, res) =>
      sendJson(res, 200, await overlapOf(ctx, parseJsonBody(await readBody(req, ctx.opts.bodyLimitBytes ?? 8 * 1024 * 1024)))),
  },
  '/admin/workers': { GET: (ctx, _req, res) => sendJson(res, 200, workersView(ctx)), POST: addWorker },
};

/** Paths that are open without the API key (liveness and Prometheus scrapes). */
const OPEN_PATHS = new Set(['/health', '/metrics']);

async function handle(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { path: rawPath, query } = splitTarget(req.url);
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  const method = req.method ?? 'GET';
  if (!OPEN_PATHS.has(path)) checkAuth(ctx, req);
  const routes = ROUTES[path];
  if (routes) {
    const h = routes[method] ?? (method === 'HEAD' ? routes.GET : undefined);
    if (!h) {
      req.resume();
      throw methodNotAllowed(path, method, Object.keys(routes));
    }
    if (method === 'POST') checkJsonContentType(req);
    return h(ctx, req, res, query);
  }
  const m = /^\/admin\/workers\/([^/]+)$/.exec(path);
  if (m) {
    if (method !== 'DELETE') {
      req.resume();
      throw methodNotAllowed(path, method, ['DELETE']);
    }
    return removeWorker(ctx, res, decodePathSegment(m[1]!));
  }
  req.resume();
  throw new HttpError(
    404,
    `no route for ${method} ${path.slice(0, 200)}: the router serves /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics, /debug/decisions, /debug/workers, /debug/overlap and /admin/workers`,
    'invalid_request_error',
    'not_found',
  );
}

function health(ctx: ServerContext, res: ServerResponse): void {
  const { registry } = ctx;
  const healthy = [...registry.values()].filter((w) => w.healthy).length;
  sendJson(res, healthy > 0 ? 200 : 503, {
    status: healthy > 0 ? 'ok' : 'no_healthy_workers',
    mode: ctx.mode,
    events: ctx.events,
    workers: registry.size,
    healthy_workers: healthy,
  });
}

async function addWorker(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { registry } = ctx;
  const body = parseJsonBody(await readBody(req, 64 * 1024));
  let spec: WorkerSpec;
  try {
    spec = workerSpecFromObject(body);
  } catch (err) {
    if (err instanceof WorkerSpecError) throw new HttpError(400, err.message, 'invalid_request_error', 'invalid_worker');
    throw err;
  }
  const ep = registry.addSpec(spec);
  ctx.opts.log?.(`worker ${ep.id} added at ${ep.url} (admin API)`);
  void ctx.health.check(registry.get(ep.id)!);
  sendJson(res, 201, { worker: workersView(ctx).workers.find((w) => w.id === ep.id) });
}

function removeWorker(ctx: ServerContext, res: ServerResponse, id: string): void {
  const { registry } = ctx;
  if (!registry.remove(id))
    throw new HttpError(
      404,
      `no worker ${id.slice(0, 200)} (known: ${registry.ids().join(', ') || 'none'})`,
      'invalid_request_error',
      'unknown_worker',
    );
  ctx.opts.log?.(`worker ${id} removed (admin API)`);
  sendJson(res, 200, { removed: id, workers: registry.ids() });
}

/** The union of the workers' /v1/models (an unreachable worker contributes none). */
async function models(ctx: ServerContext, res: ServerResponse): Promise<void> {
  const ids = new Map<string, Record<string, unknown>>();
  await Promise.all(
    [...ctx.registry.values()].map(async ({ ep: w }) => {
      try {
        const r = await request(`${w.url}/v1/models`, { dispatcher: ctx.agent, headersTimeout: 3000, bodyTimeout: 3000 });
        const body = (await r.body.json()) as { data?: Array<Record<string, unknown>> };
        for (const m of body.data ?? []) if (typeof m.id === 'string') ids.set(m.id, m);
      } catch {
        // an unreachable worker contributes no models
      }
    }),
  );
  sendJson(res, 200, { object: 'list', data: [...ids.values()] });
}
