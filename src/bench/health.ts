/**
 * The equal-health checkpoint (seed 004, "Verify All Workers Are Healthy"): before a mode is
 * measured against a URL, every endpoint must be up and every compared target must have the
 * same number of healthy workers, or the A/B comparison is meaningless.
 *
 * What is checked, per target URL:
 * 1. `GET /health` answers 2xx.
 * 2. `GET /v1/models` lists at least one model (its id is used in the requests unless --model).
 * 3. Workers behind it:
 *    - a dynamo-lab router (`/health` has `workers`; `/debug/workers` lists each worker's url):
 *      every worker's own `GET /health` must answer 2xx;
 *    - a Dynamo frontend (`/health` has an `instances` array): the distinct generate-endpoint
 *      instances are counted as its workers;
 *    - anything else (a single vLLM): one worker, the endpoint itself.
 * Then across targets: equal healthy-worker counts, and equal to --workers when given.
 */
import { request } from 'undici';

export interface TargetHealth {
  url: string;
  ok: boolean;
  kind: 'dynamo-lab-router' | 'dynamo-frontend' | 'openai';
  /** Routing mode the target reports (dynamo-lab router). */
  mode?: string;
  models: string[];
  /** Healthy workers (undefined when it cannot be told). */
  healthyWorkers?: number;
  totalWorkers?: number;
  problems: string[];
}

async function getJson(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const res = await request(url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const text = await res.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.statusCode, body };
}

async function checkTarget(url: string, timeoutMs = 5000): Promise<TargetHealth> {
  const base = url.replace(/\/+$/, '').replace(/\/v1$/, '');
  const h: TargetHealth = { url: base, ok: false, kind: 'openai', models: [], problems: [] };
  let health: unknown;
  try {
    const r = await getJson(`${base}/health`, timeoutMs);
    if (r.status < 200 || r.status >= 300) h.problems.push(`GET ${base}/health answered ${r.status}`);
    health = r.body;
  } catch (err) {
    h.problems.push(`GET ${base}/health failed: ${(err as Error).message}`);
    return h;
  }
  try {
    const r = await getJson(`${base}/v1/models`, timeoutMs);
    const data = (r.body as { data?: Array<{ id?: unknown }> })?.data;
    if (r.status >= 300 || !Array.isArray(data)) h.problems.push(`GET ${base}/v1/models answered ${r.status} without a model list`);
    else for (const m of data) if (typeof m.id === 'string') h.models.push(m.id);
    if (Array.isArray(data) && h.models.length === 0) h.problems.push(`${base}/v1/models lists no model (are the workers registered?)`);
  } catch (err) {
    h.problems.push(`GET ${base}/v1/models failed: ${(err as Error).message}`);
  }
  const hb = health && typeof health === 'object' ? (health as Record<string, unknown>) : {};
  if (typeof hb.workers === 'number') {
    h.kind = 'dynamo-lab-router';
    if (typeof hb.mode === 'string') h.mode = hb.mode;
    try {
      const r = await getJson(`${base}/debug/workers`, timeoutMs);
      const ws = ((r.body as { workers?: Array<{ id?: string; url?: string; dpRank?: number }> })?.workers ?? []).filter(
        (w) => (w.dpRank ?? 0) === 0,
      );
      h.totalWorkers = ws.length;
      let healthy = 0;
      await Promise.all(
        ws.map(async (w) => {
          if (!w.url) {
            h.problems.push(`worker ${w.id ?? '?'} has no url in /debug/workers`);
            return;
          }
          try {
            const wr = await getJson(`${w.url.replace(/\/+$/, '')}/health`, timeoutMs);
            if (wr.status >= 200 && wr.status < 300) healthy++;
            else h.problems.push(`worker ${w.id} (${w.url}) /health answered ${wr.status}`);
          } catch (err) {
            h.problems.push(`worker ${w.id} (${w.url}) /health failed: ${(err as Error).message}`);
          }
        }),
      );
      h.healthyWorkers = healthy;
    } catch (err) {
      h.problems.push(`GET ${base}/debug/workers failed: ${(err as Error).message}`);
    }
  } else if (Array.isArray(hb.instances)) {
    h.kind = 'dynamo-frontend';
    const ids = new Set<string>();
    for (const inst of hb.instances as Array<Record<string, unknown>>) {
      const ep = String(inst.endpoint ?? '');
      if (ep && !/generate/.test(ep)) continue;
      ids.add(String(inst.instance_id ?? inst.id ?? JSON.stringify(inst)));
    }
    h.totalWorkers = ids.size;
    h.healthyWorkers = ids.size;
  } else {
    h.totalWorkers = 1;
    h.healthyWorkers = h.problems.length === 0 ? 1 : 0;
  }
  h.ok = h.problems.length === 0;
  return h;
}

export interface EqualityVerdict {
  ok: boolean;
  problems: string[];
  targets: TargetHealth[];
}

/** Check every target and that they are equal (and match `expectedWorkers` if given). */
export async function checkEqualHealth(urls: readonly string[], expectedWorkers?: number, timeoutMs?: number): Promise<EqualityVerdict> {
  const targets = await Promise.all(urls.map((u) => checkTarget(u, timeoutMs)));
  const problems: string[] = [];
  for (const t of targets) for (const p of t.problems) problems.push(`${t.url}: ${p}`);
  const counts = targets.map((t) => t.healthyWorkers);
  if (expectedWorkers !== undefined) {
    for (const t of targets) {
      if (t.healthyWorkers !== undefined && t.healthyWorkers !== expectedWorkers)
        problems.push(`${t.url}: ${t.healthyWorkers}/${expectedWorkers} workers healthy`);
    }
  }
  const known = counts.filter((c): c is number => c !== undefined);
  if (new Set(known).size > 1)
    problems.push(`unequal healthy workers: ${targets.map((t) => `${t.url} ${t.healthyWorkers ?? '?'}`).join(', ')}`);
  return { ok: problems.length === 0, problems, targets };
}
