/** Requests through the router: the scripted demo scenarios and background traffic. */
import type { RoutingMode } from '../../router/index.js';
import { DEFAULT_MODEL } from '../../tokenizer/index.js';
import { checkExpectation, sendDemoRequest, type DemoRequest, type DemoResult } from '../demo.js';
import { formatDemoTable, formatTraffic, formatTtftComparison } from '../format.js';
import { scenarioRequests } from '../scenarios.js';
import { DEFAULT_TRAFFIC_PROMPT, sendTraffic } from '../traffic.js';
import { num, str, type ActionDef } from './types.js';

export const TRAFFIC_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'demo.run': {
    describe: (p) => `send the ${((p.scenarios as string[] | undefined) ?? []).join(' + ')} requests (streaming chat) through the router in ${str(p.mode, 'kv')} mode${p.reset_cache ? ', after emptying the workers\' prefix caches' : ''}`,
    requires: ['workers', 'router'],
    async run(params, { session, out, signal }) {
      const router = session.router!;
      const mode = str(params.mode, 'kv') as RoutingMode;
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
        const res = await sendDemoRequest(router.url, r, { model: str(params.model, DEFAULT_MODEL), mode, signal, history });
        results.push(res);
        session.demo.push(res);
      }
      for (const line of formatDemoTable(results, session.workers.map((w) => w.id))) out(line);
      const problem = checkExpectation(results, typeof params.expect === 'string' ? params.expect : undefined);
      if (problem) return { ok: false, error: problem };
      return { ok: true };
    },
  },

  'demo.compare': {
    describe: () => 'compare TTFT and cached tokens of the kv and round-robin runs',
    async run(_p, { session, out }) {
      const lines = formatTtftComparison(session.demo);
      if (!lines.length) {
        out('No demo results in this session yet: run the two demo steps first (or `dynamo-lab start --from demo`).');
        return { ok: true };
      }
      for (const l of lines) out(l);
      return { ok: true };
    },
  },

  'traffic.run': {
    describe: (p) => `send ${num(p.requests, 30)} chat requests, ${num(p.concurrency, 3)} at a time, through the router${p.mode ? ` in ${str(p.mode, 'kv')} mode` : ''}`,
    requires: ['workers', 'router'],
    async run(params, { session, out, signal }) {
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
      for (const l of formatTraffic(results, session.workers.map((w) => w.id), wallSeconds)) out(l);
      session.traffic.push(...results);
      if (errors.length) return { ok: false, error: `${errors.length} of ${total} requests failed; first: ${errors[0]}` };
      return { ok: true };
    },
  },
};
