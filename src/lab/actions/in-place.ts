/**
 * `router.in-place`: dynamo-lab's router decides, and the workers' own reports show whether it was
 * obeyed and whether it predicted their caches right. Per request: the worker the router chose
 * and the cached tokens it predicted (its index's overlap × block size), next to the worker that
 * served the request and the cached tokens that worker reported.
 *
 * - embedded engine: the router is already dynamo-lab's; the serving simulated worker is the one
 *   whose log has the request id (`request chatcmpl-… prefix cache hit: …`).
 * - dynamo engine: Dynamo's frontend restarts with `--router-mode direct`, where it only forwards
 *   to the worker a request names (`nvext.backend_instance_id`) over Dynamo's request plane, and
 *   dynamo-lab's router takes its place in front of the same mocker workers: it indexes their KV
 *   events from NATS, chooses, and names the choice. The frontend's `Selected worker
 *   router_mode="direct"` log line (matched by x_request_id) and the mocker's `decode_worker_id`
 *   in the response say where each request went.
 */
import { DEFAULT_MODEL } from '../../tokenizer/index.js';
import { checkExpectation, sendDemoRequest, type ChatTurn, type DemoRequest, type DemoResult } from '../demo.js';
import type { CheckResult, TableResult } from '../results.js';
import { scenarioRequests } from '../scenarios.js';
import type { LocalSession } from '../session.js';
import { startShadowRouter, waitIndexed, workerName } from './dynamo-shared.js';
import { str, type ActionContext, type ActionDef, type ActionResult } from './types.js';

interface Row {
  label: string;
  chose: string;
  predicted: number | null;
  /** Dynamo only: where the frontend sent it (its Selected worker line). */
  forwarded?: string | null;
  served: string | null;
  cached: number | null;
}

/** What both in-place actions take: the scenarios' requests, the model, the expectation. */
interface InPlaceParams {
  requests: DemoRequest[];
  model: string;
  expect?: string;
}

function inPlaceParams(params: Readonly<Record<string, unknown>>): InPlaceParams | { error: string } {
  const list = Array.isArray(params.scenarios) ? (params.scenarios as string[]) : [];
  let requests: DemoRequest[];
  try {
    requests = scenarioRequests(list);
  } catch (err) {
    return { error: (err as Error).message }; // an unknown scenario name
  }
  if (!requests.length) return { error: 'router.in-place needs "scenarios": a list of scenario names from labs/scenarios.yaml' };
  return { requests, model: str(params.model, DEFAULT_MODEL), expect: typeof params.expect === 'string' ? params.expect : undefined };
}

/** Poll `find` for up to `ms` (log lines are written asynchronously). */
async function eventually<T>(find: () => T | undefined, ms: number, signal: AbortSignal): Promise<T | undefined> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = find();
    if (v !== undefined || performance.now() > deadline || signal.aborted) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The table and the pass/fail checks: chosen = forwarded = served, predicted = reported cached tokens. */
function report(
  rows: readonly Row[],
  results: readonly DemoResult[],
  expect: string | undefined,
  dynamo: boolean,
  ctx: ActionContext,
): ActionResult {
  const table: TableResult = {
    kind: 'table',
    title: dynamo
      ? "dynamo-lab's router chose, Dynamo's frontend (--router-mode direct) forwarded, the mocker served"
      : "dynamo-lab's router chose, the simulated worker served",
    columns: [
      { header: '#', align: 'right' },
      { header: 'prompt' },
      { header: 'router chose' },
      ...(dynamo ? [{ header: 'frontend sent to' }] : []),
      { header: 'served by' },
      { header: 'predicted', align: 'right' as const },
      { header: 'cached', align: 'right' as const },
    ],
    rows: rows.map((r, i) => [
      String(i + 1),
      r.label.length > 36 ? `${r.label.slice(0, 35)}…` : r.label,
      r.chose,
      ...(dynamo ? [r.forwarded ?? '?'] : []),
      r.served ?? '?',
      r.predicted === null ? '?' : String(r.predicted),
      r.cached === null ? '?' : String(r.cached),
    ]),
    notes: ['predicted: cached tokens the router expected (its index overlap × block size); cached: what the worker reported'],
  };
  ctx.emit(table);
  const wrongWorker = rows.filter((r) => r.served !== r.chose || (dynamo && r.forwarded !== r.chose));
  const wrongCache = rows.filter((r) => r.predicted === null || r.predicted !== r.cached);
  const checks: CheckResult[] = [
    {
      kind: 'check',
      ok: wrongWorker.length === 0,
      text: wrongWorker.length
        ? `${wrongWorker.length} request(s) were served elsewhere than the router chose: ${wrongWorker.map((r) => `"${r.label}" chose ${r.chose}, ${dynamo ? `forwarded to ${r.forwarded ?? '?'}, ` : ''}served by ${r.served ?? '?'}`).join('; ')}`
        : `every request was served by the worker dynamo-lab's router chose${dynamo ? ' (the frontend only forwarded it)' : ''}`,
    },
    {
      kind: 'check',
      ok: wrongCache.length === 0,
      text: wrongCache.length
        ? `${wrongCache.length} request(s) reported other cached tokens than the router predicted: ${wrongCache.map((r) => `"${r.label}" predicted ${r.predicted ?? '?'}, reported ${r.cached ?? '?'}`).join('; ')}`
        : "the router's predicted cached tokens equal the worker's reported cached tokens on every request",
    },
  ];
  const problem = checkExpectation(results, expect);
  if (expect) checks.push({ kind: 'check', ok: !problem, text: problem ?? 'requests after the first of each scenario followed it' });
  for (const c of checks) ctx.emit(c);
  const failed = checks.find((c) => !c.ok);
  return failed ? { ok: false, error: failed.text } : { ok: true };
}

/** Send the scenario's requests one by one (follow-ups carry the conversation), through `url`. */
async function sendAll(
  url: string,
  requests: readonly DemoRequest[],
  opts: { model: string; signal: AbortSignal; dynamoWorkerName?: (id: string) => string; after?: (r: DemoResult) => Promise<void> },
): Promise<DemoResult[]> {
  const results: DemoResult[] = [];
  for (const r of requests) {
    if (opts.signal.aborted) break;
    const prev = results.at(-1);
    const history: ChatTurn[] = r.follow_up && prev ? [...prev.messages, { role: 'assistant', content: prev.output_text }] : [];
    const res = await sendDemoRequest(url, r, {
      model: opts.model,
      mode: 'kv',
      signal: opts.signal,
      history,
      dynamoWorkerName: opts.dynamoWorkerName,
    });
    results.push(res);
    await opts.after?.(res);
  }
  return results;
}

function decisionOf(session: LocalSession, requestId: string | null | undefined) {
  return requestId ? session.router?.decisions(500).find((d) => d.request_id === requestId) : undefined;
}

const describeScenarios = (p: Readonly<Record<string, unknown>>) => ((p.scenarios as string[] | undefined) ?? []).join(' + ');

export const ROUTER_IN_PLACE: ActionDef = {
  describe: (p) =>
    `send the ${describeScenarios(p)} requests through dynamo-lab's router (kv)${p.reset_cache ? " after emptying the workers' prefix caches" : ''}, and check each decision against the simulated worker that served it and the cached tokens it reported`,
  requires: ['workers', 'router'],
  async run(params, ctx) {
    const { session, out, signal } = ctx;
    const p = inPlaceParams(params);
    if ('error' in p) return { ok: false, error: p.error };
    const router = session.router!;
    router.setMode('kv');
    if (params.reset_cache) {
      for (const w of session.workers) {
        const r = await fetch(`${w.url}/reset_prefix_cache`, { method: 'POST', signal });
        if (!r.ok) return { ok: false, error: `${w.id} did not reset its prefix cache (HTTP ${r.status})` };
      }
      out('prefix caches emptied on every worker');
    }
    const results = await sendAll(router.url, p.requests, { model: p.model, signal });
    const rows: Row[] = [];
    for (const res of results) {
      const d = decisionOf(session, res.request_id);
      // The serving worker logs the request id with its prefix-cache hit.
      const seen = await eventually(
        () => {
          for (const w of session.workers) {
            const line = session.logsOf(w.id).find((l) => l.includes(`request ${res.request_id} prefix cache hit:`));
            const m = line && /\((\d+)\/\d+ tokens\)/.exec(line);
            if (m) return { worker: w.id, cached: Number(m[1]) };
          }
          return undefined;
        },
        5000,
        signal,
      );
      rows.push({
        label: res.prompt,
        chose: d?.chosen ?? res.worker ?? '?',
        predicted: d ? d.cached_tokens : null,
        served: seen?.worker ?? null,
        cached: seen?.cached ?? res.cached_tokens,
      });
    }
    return report(rows, results, p.expect, false, ctx);
  },
};

export const ROUTER_IN_PLACE_DYNAMO: ActionDef = {
  describe: (p) =>
    `restart Dynamo's frontend with --router-mode direct (it forwards to the worker a request names, it does not choose)${p.reset_cache ? ' and the mocker workers with empty caches' : ''}, put dynamo-lab's router in front of the same workers (their KV events from NATS), send the ${describeScenarios(p)} requests through it, and check each decision against where the frontend sent it, which mocker worker served it and the cached tokens it reported`,
  requires: ['workers'],
  async run(params, ctx) {
    const { session, out, signal } = ctx;
    const p = inPlaceParams(params);
    if ('error' in p) return { ok: false, error: p.error };
    const stack = session.dynamo!;
    try {
      stack.frontendOptions = { mode: 'direct', args: [] };
      if (params.reset_cache) {
        out('restarting the mocker workers (empty prefix caches)…');
        await stack.resetCaches(signal);
      }
      if (!stack.frontendRunning || stack.frontendOptions.mode !== 'direct')
        await stack.startFrontend({ mode: 'direct', args: [] }, signal);
    } catch (err) {
      return { ok: false, error: `could not restart Dynamo: ${(err as Error).message}` };
    }
    if (!session.endpoints.some((e) => e.url === stack.frontendUrl)) session.endpoints.push({ id: 'frontend', url: stack.frontendUrl });
    out(
      `Dynamo frontend ${stack.frontendUrl} --router-mode direct: forwards each request to the worker named in nvext.backend_instance_id`,
    );
    try {
      await startShadowRouter(session, out, { direct: true });
    } catch (err) {
      return { ok: false, error: `dynamo-lab's router did not start: ${(err as Error).message}` };
    }
    const router = session.router!;
    const name = workerName(stack);
    const ids = stack.workerIds();
    for (const [i, id] of ids.entries()) out(`  worker-${i} = Dynamo instance ${id}`);
    const frontendLogStart = session.logsOf('frontend').length;
    const results = await sendAll(router.url, p.requests, {
      model: p.model,
      signal,
      dynamoWorkerName: name,
      // The next decision must see this request's blocks: wait until the router indexed them.
      after: async (res) => {
        const missing = await waitIndexed(router, [{ ...res, worker: res.served_by ?? res.worker }], { signal });
        if (missing.length)
          out(
            `(after 10 s the router holds ${missing[0]!.indexed} of ${missing[0]!.blocks} blocks of "${res.prompt}" on ${res.served_by}: KV events late or lost)`,
          );
      },
    });
    const rows: Row[] = [];
    for (const res of results) {
      const d = decisionOf(session, res.request_id);
      // The frontend logs x_request_id = the router's request id without its chatcmpl- prefix.
      const uuid = (res.request_id ?? '').replace(/^chatcmpl-/, '');
      const forwarded = await eventually(
        () => {
          const line = session
            .logsOf('frontend')
            .slice(frontendLogStart)
            .find((l) => /Selected worker router_mode="direct"/.test(l) && l.includes(`x_request_id="${uuid}"`));
          const m = line && /worker_id=(\d+)/.exec(line);
          return m ? name(m[1]!) : undefined;
        },
        5000,
        signal,
      );
      rows.push({
        label: res.prompt,
        chose: d?.chosen ?? res.worker ?? '?',
        predicted: d ? d.cached_tokens : null,
        forwarded: forwarded ?? null,
        served: res.served_by ?? null,
        cached: res.cached_tokens,
      });
    }
    out(`(every decision with each worker's overlap, load and cost: ${router.url}/debug/decisions; the frontend's lines: the log step)`);
    return report(rows, results, p.expect, true, ctx);
  },
};
