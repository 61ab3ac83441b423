/** Requests through the router: the scripted demo scenarios and background traffic. */
import type { RoutingMode } from '../../router/index.js';
import { DEFAULT_MODEL } from '../../tokenizer/index.js';
import { expectationCheck, sendDemoRequest, type DemoRequest, type DemoResult } from '../demo.js';
import { demoTable, formatTraffic, trafficTable } from '../format.js';
import { loadScenarios, scenarioRequests } from '../scenarios.js';
import { compareModes, latestRun, percentile } from '../compare.js';
import type { TableResult } from '../results.js';
import { DEFAULT_TRAFFIC_PROMPT, sendTraffic } from '../traffic.js';
import { num, str, type ActionDef } from './types.js';

/**
 * What a traffic step says about the spread, as a pass/fail line: `even` (round-robin: per-worker
 * counts differ by at most one), `spread` (more than one worker, none took more than half),
 * `cached` (every request read prompt tokens from the cache).
 */
export function trafficCheck(results: readonly DemoResult[], expect: string | undefined): { ok: boolean; text: string } | undefined {
  if (!expect) return undefined;
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.worker ?? '?', (counts.get(r.worker ?? '?') ?? 0) + 1);
  const spread = [...counts.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([w, n]) => `${w} ${n}`)
    .join(', ');
  if (expect === 'even') {
    const ns = [...counts.values()];
    const ok = Math.max(...ns) - Math.min(...ns) <= 1;
    return { ok, text: `${ok ? 'the requests were split evenly' : 'the requests were not split evenly'} over the workers (${spread})` };
  }
  if (expect === 'spread') {
    const top = Math.max(...counts.values());
    const ok = counts.size > 1 && top <= results.length / 2;
    return {
      ok,
      text: `${counts.size} workers served requests, the busiest ${top} of ${results.length}${ok ? '' : ' (expected more than one worker and none above half)'} (${spread})`,
    };
  }
  if (expect === 'cached') {
    const none = results.filter((r) => !r.cached_tokens).length;
    return {
      ok: none === 0,
      text:
        none === 0
          ? `all ${results.length} requests read prompt tokens from the cache`
          : `${none} of ${results.length} requests read nothing from the cache`,
    };
  }
  return { ok: false, text: `unknown traffic expectation "${expect}" (use even, spread or cached)` };
}

export const TRAFFIC_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'demo.run': {
    describe: (p) =>
      `send the ${((p.scenarios as string[] | undefined) ?? []).join(' + ')} requests (streaming chat) through the router in ${str(p.mode, 'kv')} mode${p.reset_cache ? ", after emptying the workers' prefix caches" : ''}`,
    requires: ['workers', 'router'],
    async run(params, { session, out, emit, signal }) {
      const router = session.router!;
      const mode = str(params.mode, 'kv') as RoutingMode;
      const run = ++session.demoRuns;
      let requests: DemoRequest[];
      try {
        requests = scenarioRequests(Array.isArray(params.scenarios) ? (params.scenarios as string[]) : []);
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
      if (!requests.length) return { ok: false, error: 'demo.run needs "scenarios": a list of scenario names from labs/scenarios.yaml' };
      router.setMode(mode);
      if (params.reset_cache) {
        // One unmeasured request first, so the first measured TTFT is not paying for JIT warm-up.
        await sendDemoRequest(router.url, { prompt: 'warm-up', max_tokens: 2 }, { model: str(params.model, DEFAULT_MODEL), mode, signal });
        for (const w of session.workers) {
          const r = await fetch(`${w.url}/reset_prefix_cache`, { method: 'POST', signal });
          if (!r.ok) return { ok: false, error: `${w.id} did not reset its prefix cache (HTTP ${r.status})` };
        }
        out('prefix caches emptied on every worker (the router saw the workers\' "all blocks cleared" events)');
      }
      const results: DemoResult[] = [];
      for (const r of requests) {
        if (signal.aborted) break;
        const prev = results.at(-1);
        const history = r.follow_up && prev ? [...prev.messages, { role: 'assistant', content: prev.output_text }] : [];
        const res = { ...(await sendDemoRequest(router.url, r, { model: str(params.model, DEFAULT_MODEL), mode, signal, history })), run };
        results.push(res);
        session.demo.push(res);
        out(
          `${results.length}/${requests.length}  ${res.worker ?? '?'}  ${res.cached_tokens ?? 0}/${res.prompt_tokens ?? 0} cached  ${res.ttft_ms.toFixed(1)} ms`,
        );
      }
      emit(
        demoTable(
          results,
          session.workers.map((w) => w.id),
          `${mode} routing: one row per request`,
        ),
      );
      const check = expectationCheck(results, typeof params.expect === 'string' ? params.expect : undefined, {
        minCachedShare: typeof params.min_cached_share === 'number' ? params.min_cached_share : undefined,
        blockSize: session.blockSize,
      });
      if (check) emit({ kind: 'check', ...check });
      if (check && !check.ok) return { ok: false, error: check.text };
      return { ok: true };
    },
  },

  'demo.compare': {
    describe: (p) =>
      `compare TTFT and cached tokens of the latest kv run with the latest ${str(p.other, 'round-robin')} run${p.min_ratio !== undefined ? `; on long-prefix scenarios kv must be at least ${num(p.min_ratio, 3)}x faster to first token` : ''}`,
    async run(params, { session, out, emit }) {
      const other = str(params.other, 'round-robin');
      // The modes whose latest run sent the same scenarios as the latest kv run (all modes when kv never ran).
      const kvGroups = new Set(latestRun(session.demo, 'kv').map((r) => r.group));
      const modes = [...new Set(session.demo.map((r) => r.mode))].filter(
        (m) => !kvGroups.size || latestRun(session.demo, m).some((r) => kvGroups.has(r.group)),
      );
      if (!modes.length) {
        out('No demo results in this session yet: run the two demo steps first (or `dynamo-lab start --from demo`).');
        return { ok: true };
      }
      // All requests of the latest run of each mode.
      const overall: TableResult = {
        kind: 'table',
        title: 'latest run per mode on the same scenarios, all requests',
        columns: [
          { header: 'mode' },
          { header: 'requests', align: 'right' },
          { header: 'TTFT avg ms', align: 'right' },
          { header: 'p50', align: 'right' },
          { header: 'p99', align: 'right' },
          { header: 'cached/prompt', align: 'right' },
          { header: 'hit %', align: 'right' },
        ],
        rows: modes.map((m) => {
          const rs = latestRun(session.demo, m);
          const t = rs.map((r) => r.ttft_ms);
          const cached = rs.reduce((a, r) => a + (r.cached_tokens ?? 0), 0);
          const prompt = rs.reduce((a, r) => a + (r.prompt_tokens ?? 0), 0);
          return [
            m,
            String(rs.length),
            (t.reduce((a, b) => a + b, 0) / Math.max(1, t.length)).toFixed(1),
            percentile(t, 50).toFixed(1),
            percentile(t, 99).toFixed(1),
            `${cached}/${prompt}`,
            prompt ? ((100 * cached) / prompt).toFixed(0) : '0',
          ];
        }),
      };
      emit(overall);
      const scenarios = loadScenarios();
      const cmp = compareModes(session.demo, other);
      if (!cmp.some((c) => c.kv && c.other)) {
        out(`Run both a kv and a ${other} demo step to compare them per scenario.`);
        return { ok: true };
      }
      // One group of rows per scenario (its name, then one row per mode), so the table fits 76 columns.
      emit({
        kind: 'table',
        title: 'per scenario, requests 2 onwards (the ones that can reuse a prefix)',
        columns: [
          { header: 'scenario / mode' },
          { header: 'requests', align: 'right' },
          { header: 'TTFT avg ms', align: 'right' },
          { header: 'p50', align: 'right' },
          { header: 'cached/prompt', align: 'right' },
          { header: 'TTFT ÷ kv', align: 'right' },
        ],
        rows: cmp.flatMap((c) => [
          [c.group, '', '', '', '', ''],
          ...[c.kv, c.other]
            .filter((x) => x !== undefined)
            .map((m) => [
              `  ${m.mode}`,
              String(m.n),
              m.ttft_avg_ms.toFixed(1),
              m.ttft_p50_ms.toFixed(1),
              `${m.cached_tokens}/${m.prompt_tokens}`,
              m.mode !== 'kv' && c.ratio !== undefined ? `${c.ratio.toFixed(2)}x` : '',
            ]),
        ]),
        notes: [`TTFT ÷ kv: the mode's average TTFT divided by kv's on the same requests (above 1: kv was faster).`],
      });
      const minRatio = params.min_ratio === undefined ? undefined : num(params.min_ratio, 3);
      const failed: string[] = [];
      for (const c of cmp) {
        if (!c.kv || !c.other) continue;
        if (scenarios[c.group]?.long && minRatio !== undefined) {
          const ok = c.ratio !== undefined && c.ratio >= minRatio;
          if (!ok) failed.push(c.group);
          emit({
            kind: 'check',
            ok,
            text: `${c.group}: kv ${c.kv.ttft_avg_ms.toFixed(1)} ms vs ${other} ${c.other.ttft_avg_ms.toFixed(1)} ms on the same ${c.kv.n} requests = ${c.ratio?.toFixed(2) ?? '?'}x lower TTFT (expected at least ${minRatio}x)`,
          });
        } else {
          const ok = c.kv.cached_tokens > c.other.cached_tokens;
          emit({
            kind: 'check',
            ok,
            text: `${c.group}: kv served ${c.kv.cached_tokens} prompt tokens from cache, ${other} ${c.other.cached_tokens}${ok ? '' : ' (expected kv to reuse more)'}`,
          });
          if (!ok) failed.push(c.group);
        }
      }
      if (failed.length)
        return { ok: false, error: `the comparison did not show what the step says for ${failed.join(', ')} (see the check lines above)` };
      return { ok: true };
    },
  },

  'traffic.run': {
    describe: (p) =>
      `send ${num(p.requests, 30)} chat requests, ${num(p.concurrency, 3)} at a time, through the router${p.mode ? ` in ${str(p.mode, 'kv')} mode` : ''}`,
    requires: ['workers', 'router'],
    async run(params, { session, out, emit, signal }) {
      const router = session.router!;
      if (typeof params.mode === 'string') router.setMode(params.mode as RoutingMode);
      const total = num(params.requests, 30);
      const { results, errors, wallSeconds } = await sendTraffic(router.url, {
        total,
        concurrency: num(params.concurrency, 3),
        prompt: str(params.prompt, DEFAULT_TRAFFIC_PROMPT),
        maxTokens: num(params.max_tokens, 20),
        model: str(params.model, DEFAULT_MODEL),
        mode: router.mode,
        signal,
      });
      const ids = session.workers.map((w) => w.id);
      for (const l of formatTraffic(results, ids, wallSeconds)) out(l);
      emit(
        trafficTable(
          results,
          ids,
          wallSeconds,
          `${router.mode} routing: ${results.length} requests, ${num(params.concurrency, 3)} at a time`,
        ),
      );
      const check = trafficCheck(results, typeof params.expect === 'string' ? params.expect : undefined);
      if (check) emit({ kind: 'check', ...check });
      session.traffic.push(...results);
      if (errors.length) return { ok: false, error: `${errors.length} of ${total} requests failed; first: ${errors[0]}` };
      if (check && !check.ok) return { ok: false, error: check.text };
      return { ok: true };
    },
  },
};
