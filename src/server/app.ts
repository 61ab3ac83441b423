/**
 * The HTTP app: the routing table of the router server (OpenAI endpoints, health, metrics,
 * /debug/* and the worker admin API), API-key checks and OpenAI-shaped errors.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request } from 'undici';
import { HttpError, parseJsonBody, readBody, sendError, sendJson } from '../base/http.js';
import type { ServerContext } from './context.js';
import { publishGauges, workersView } from './observability.js';
import { proxyCompletion } from './proxy.js';
import { workerSpecFromObject, WorkerSpecError, type WorkerSpec } from './worker-spec.js';

/** An http.Server answering with the app; errors become OpenAI-shaped JSON (503/529 with retry-after). */
export function createApp(ctx: ServerContext): Server {
  const server = createServer((req, res) => {
    handle(ctx, req, res).catch((err) => {
      const headers: Record<string, string> = {};
      if (err instanceof HttpError && (err.status === 529 || err.status === 503)) headers['retry-after'] = '1';
      sendError(res, err, headers);
    });
  });
  server.keepAliveTimeout = 30_000;
  return server;
}

function checkAuth(ctx: ServerContext, req: IncomingMessage): void {
  if (!ctx.opts.apiKey) return;
  const auth = req.headers.authorization ?? '';
  if (auth !== `Bearer ${ctx.opts.apiKey}`) throw new HttpError(401, 'missing or wrong API key: send "Authorization: Bearer <key>"', 'authentication_error', 'invalid_api_key');
}

async function handle(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { registry } = ctx;
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname;
  if (path.startsWith('/v1/') || path.startsWith('/admin/')) checkAuth(ctx, req);
  if (req.method === 'POST' && (path === '/v1/chat/completions' || path === '/v1/completions')) return proxyCompletion(ctx, req, res, path);
  if (req.method === 'GET' && path === '/v1/models') return models(ctx, res);
  if (req.method === 'GET' && path === '/health') {
    const healthy = [...registry.values()].filter((w) => w.healthy).length;
    return sendJson(res, healthy > 0 ? 200 : 503, { status: healthy > 0 ? 'ok' : 'no_healthy_workers', mode: ctx.mode, events: ctx.events, workers: registry.size, healthy_workers: healthy });
  }
  if (req.method === 'GET' && path === '/metrics') {
    publishGauges(ctx);
    const text = await ctx.metrics.render();
    res.writeHead(200, { 'content-type': ctx.metrics.contentType });
    res.end(text);
    return;
  }
  if (req.method === 'GET' && path === '/debug/decisions') {
    const limit = Number(url.searchParams.get('limit') ?? 50);
    return sendJson(res, 200, { decisions: ctx.decisions.recent(Number.isFinite(limit) ? limit : 50) });
  }
  if (req.method === 'GET' && (path === '/debug/workers' || path === '/admin/workers')) return sendJson(res, 200, workersView(ctx));
  if (req.method === 'POST' && path === '/admin/workers') {
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
    return sendJson(res, 201, { worker: workersView(ctx).workers.find((w) => w.id === ep.id) });
  }
  const m = /^\/admin\/workers\/([^/]+)$/.exec(path);
  if (req.method === 'DELETE' && m) {
    const id = decodeURIComponent(m[1]!);
    if (!registry.remove(id)) throw new HttpError(404, `no worker ${id} (known: ${registry.ids().join(', ') || 'none'})`, 'invalid_request_error', 'unknown_worker');
    ctx.opts.log?.(`worker ${id} removed (admin API)`);
    return sendJson(res, 200, { removed: id, workers: registry.ids() });
  }
  throw new HttpError(404, `no route for ${req.method} ${path}`, 'invalid_request_error', 'not_found');
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
