/**
 * The engine's built-in local operations. Lab data names them (`run: {action: sim.start,
 * with: {...}}`); nothing here knows about a particular lab or step.
 *
 * Each action says, before it runs, what it will do (`describe`), which session resources it
 * needs (`requires`) and which it creates (`provides`), so a resumed lab can bring back what
 * an earlier process had started.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { envPort, freePort, portIsFree } from '../base/net.js';
import { SimWorker } from '../sim/index.js';
import { RouterServer } from '../server/router-server.js';
import { configFromFlags, type RoutingMode } from '../router/index.js';
import { DEFAULT_MODEL } from '../tokenizer/index.js';
import { checkExpectation, sendDemoRequest, type DemoRequest, type DemoResult } from './demo.js';
import { formatDemoTable, formatTraffic, formatTtftComparison, formatWorkerBars, type WorkerBar } from './format.js';
import { scenarioRequests } from './scenarios.js';
import type { LocalSession } from './session.js';

export interface ActionContext {
  readonly session: LocalSession;
  readonly signal: AbortSignal;
  /** Progress lines for the person (bounded view + log). */
  readonly out: (line: string) => void;
}

export type ActionResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

export interface ActionDef {
  describe(params: Readonly<Record<string, unknown>>): string;
  readonly requires?: readonly string[];
  readonly provides?: readonly string[];
  run(params: Readonly<Record<string, unknown>>, ctx: ActionContext): Promise<ActionResult>;
}

const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const str = (v: unknown, d: string) => (typeof v === 'string' ? v : d);

export const ACTIONS: Readonly<Record<string, ActionDef>> = {
  'gpu.check': {
    describe: () => 'look for NVIDIA GPUs with nvidia-smi (the local target runs on the CPU, so none are required)',
    async run(params, { out, signal }) {
      const need = num(params.need, 0);
      try {
        const r = await execa('nvidia-smi', ['--query-gpu=index,name,memory.used,memory.total', '--format=csv,noheader'], { cancelSignal: signal, timeout: 10_000, reject: false });
        if (r.exitCode === 0) {
          const gpus = r.stdout.split('\n').filter(Boolean);
          out(`${gpus.length} GPU(s) found:`);
          for (const g of gpus) out(`  ${g}`);
          if (gpus.length < need) return { ok: false, error: `${gpus.length} GPU(s) found, the lab needs ${need}` };
          return { ok: true };
        }
      } catch {
        /* nvidia-smi missing */
      }
      out('nvidia-smi not found: no local GPU. That is fine here — the workers are simulated on the CPU.');
      return need > 0 ? { ok: false, error: `this step needs ${need} GPU(s) and none were found` } : { ok: true };
    },
  },

  'sim.start': {
    describe: (p) => `start ${num(p.workers, 2)} simulated vLLM-style workers on 127.0.0.1 (block size ${num(p.block_size, 16)}, Dynamo mocker timing)`,
    provides: ['workers'],
    async run(params, { session, out }) {
      if (session.workers.length) {
        out(`${session.workers.length} workers already running: ${session.workers.map((w) => `${w.id} ${w.url}`).join(', ')}`);
        return { ok: true };
      }
      const count = num(params.workers, 2);
      const blockSize = num(params.block_size, 16);
      const basePort = envPort('DYNAMO_LAB_WORKER_PORT');
      const workers: SimWorker[] = [];
      try {
        for (let i = 0; i < count; i++) {
          const id = `worker-${i}`;
          workers.push(
            await SimWorker.start({ id, blockSize, speedup: num(params.speedup, 1), model: str(params.model, DEFAULT_MODEL), port: basePort ? basePort + i : 0, log: session.logger(id) }),
          );
        }
      } catch (err) {
        await Promise.all(workers.map((w) => w.close()));
        return { ok: false, error: `could not start the simulated workers: ${(err as Error).message}` };
      }
      session.blockSize = blockSize;
      session.workers = workers;
      for (const w of workers) {
        session.endpoints.push({ id: w.id, url: w.url });
        out(`${w.id}  ${w.url}  (OpenAI API, KV events in-process)`);
      }
      return { ok: true };
    },
  },

  'workers.healthy': {
    describe: () => 'check every worker answers GET /health',
    requires: ['workers'],
    async run(_p, { session, out, signal }) {
      for (const w of session.workers) {
        const r = await fetch(`${w.url}/health`, { signal }).catch((e: Error) => ({ ok: false, status: e.message }));
        if (!r.ok) return { ok: false, error: `${w.id} at ${w.url} did not answer /health (${r.status})` };
        out(`${w.id} healthy`);
      }
      return { ok: true };
    },
  },

  'router.start': {
    describe: (p) =>
      `start the embedded router in ${str(p.mode, 'kv')} mode on 127.0.0.1 in front of the workers (KV events in-process)` +
      (p.kv_overlap_score_weight !== undefined ? `, --kv-overlap-score-weight ${String(p.kv_overlap_score_weight)}` : '') +
      (p.router_temperature !== undefined ? `, --router-temperature ${String(p.router_temperature)}` : ''),
    requires: ['workers'],
    provides: ['router'],
    async run(params, { session, out }) {
      const mode = str(params.mode, 'kv') as RoutingMode;
      const weight = params.kv_overlap_score_weight === undefined ? undefined : num(params.kv_overlap_score_weight, 1);
      const temperature = params.router_temperature === undefined ? undefined : num(params.router_temperature, 0);
      const config = configFromFlags({ kvOverlapScoreWeight: weight, temperature });
      const configKey = JSON.stringify(config);
      const port = envPort('DYNAMO_LAB_ROUTER_PORT');
      if (session.router) {
        if (session.routerConfigKey === configKey) {
          session.router.setMode(mode);
          out(`router already running at ${session.router.url}; mode set to ${mode}`);
          return { ok: true };
        }
        // New scoring parameters: restart with a fresh index, like redeploying the frontend. A new
        // port (unless pinned) so no client reuses a keep-alive connection to the old server.
        await session.router.close();
        session.router = undefined;
        out('restarting the router with the new scoring parameters');
      }
      const log = session.logger('router');
      session.router = await RouterServer.start({
        workers: session.workers.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) })),
        blockSize: session.blockSize,
        mode,
        port,
        config,
        seed: num(params.seed, 7),
        log,
      });
      session.routerConfigKey = configKey;
      session.endpoints.push({ id: 'router', url: session.router.url });
      out(`router  ${session.router.url}  mode=${mode}  overlap credit=${config.overlapScoreCredit} prefill load scale=${config.prefillLoadScale} temperature=${config.temperature}`);
      out(`        try: curl -s ${session.router.url}/v1/models   ·   ${session.router.url}/debug/decisions`);
      return { ok: true };
    },
  },

  'router.healthy': {
    describe: () => 'check the router answers GET /health and lists the workers\' model',
    requires: ['router'],
    async run(_p, { session, out, signal }) {
      const url = session.router!.url;
      const h = await fetch(`${url}/health`, { signal });
      if (!h.ok) return { ok: false, error: `router /health answered ${h.status}` };
      const models = (await (await fetch(`${url}/v1/models`, { signal })).json()) as { data?: Array<{ id: string }> };
      const ids = (models.data ?? []).map((m) => m.id);
      if (!ids.length) return { ok: false, error: 'the router lists no models: are the workers up?' };
      out(`router healthy; serving ${ids.join(', ')}`);
      return { ok: true };
    },
  },

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
      const concurrency = Math.max(1, num(params.concurrency, 3));
      const template = str(params.prompt, 'Request {i}: explain one idea from distributed systems in two sentences.');
      const results: DemoResult[] = [];
      const errors: string[] = [];
      let next = 0;
      const worker = async () => {
        while (next < total && !signal.aborted) {
          const i = next++;
          try {
            const r = await sendDemoRequest(router.url, { prompt: template.replaceAll('{i}', String(i + 1)), max_tokens: num(params.max_tokens, 20), group: 'traffic' }, { model: str(params.model, DEFAULT_MODEL), mode: router.mode, signal });
            results.push(r);
          } catch (err) {
            errors.push((err as Error).message);
          }
        }
      };
      const started = performance.now();
      await Promise.all(Array.from({ length: concurrency }, worker));
      const wall = (performance.now() - started) / 1000;
      for (const l of formatTraffic(results, session.workers.map((w) => w.id), wall)) out(l);
      session.traffic.push(...results);
      if (errors.length) return { ok: false, error: `${errors.length} of ${total} requests failed; first: ${errors[0]}` };
      return { ok: true };
    },
  },

  'workers.status': {
    describe: () => 'show, per worker, the blocks the router believes are cached and the load it has booked',
    requires: ['router'],
    async run(_p, { session, out }) {
      for (const l of formatWorkerBars(session.router!.workersView().workers as unknown as WorkerBar[])) out(l);
      return { ok: true };
    },
  },

  'metrics.show': {
    describe: (p) => `read the router's and workers' /metrics and show lines matching /${str(p.pattern, '.')}/`,
    requires: ['workers'],
    async run(params, { session, out, signal }) {
      let re: RegExp;
      try {
        re = new RegExp(str(params.pattern, '.'));
      } catch (err) {
        return { ok: false, error: `bad pattern: ${(err as Error).message}` };
      }
      const targets = [...(session.router ? [{ id: 'router', url: session.router.url }] : []), ...session.workers.map((w) => ({ id: w.id, url: w.url }))];
      for (const t of targets) {
        const text = await (await fetch(`${t.url}/metrics`, { signal })).text();
        const lines = text.split('\n').filter((l) => l && !l.startsWith('#') && re.test(l));
        out(`=== ${t.id} ${t.url}/metrics (${lines.length} matching)`);
        for (const l of lines.slice(0, num(params.max_lines, 20))) out(`  ${l}`);
      }
      return { ok: true };
    },
  },

  'nats.start': {
    describe: () => 'start a local nats-server with JetStream on a free loopback port if one is installed; otherwise use the in-process event bus',
    async run(_p, { session, out, signal }) {
      if (session.nats) {
        out(`nats-server already running at ${session.nats.url}`);
        return { ok: true };
      }
      const found = await execa('nats-server', ['--version'], { reject: false, cancelSignal: signal }).catch(() => undefined);
      if (!found || found.exitCode !== 0) {
        out('nats-server is not installed: the simulated workers hand their KV events to the router in-process instead.');
        out('(On Debian/Ubuntu: apt-get install nats-server. On a cluster: helm install nats.)');
        return { ok: true };
      }
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-nats-'));
      const proc = execa('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { reject: false, cleanup: true, stdin: 'ignore' });
      const log = session.logger('nats');
      proc.stderr?.on('data', (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach(log));
      for (let i = 0; i < 50 && (await portIsFree(port)); i++) await new Promise((r) => setTimeout(r, 100));
      if (await portIsFree(port)) {
        proc.kill();
        return { ok: false, error: 'nats-server did not start listening within 5 s (see the log)' };
      }
      session.nats = { url: `nats://127.0.0.1:${port}`, stop: async () => {
        proc.kill('SIGTERM');
        await proc;
        rmSync(dir, { recursive: true, force: true });
      } };
      session.endpoints.push({ id: 'nats', url: `http://127.0.0.1:${port}` });
      out(`${found.stdout.trim()} listening on nats://127.0.0.1:${port} with JetStream (storage ${dir})`);
      out('The simulated workers still hand their events to the router in-process; `dynamo-lab router --events nats://…` consumes Dynamo event envelopes from a NATS server.');
      return { ok: true };
    },
  },

  'health.check': {
    describe: () => 'check the workers, the router and the local NATS server (if any) answer',
    async run(_p, { session, out, signal }) {
      const problems: string[] = [];
      for (const w of session.workers) {
        const r = await fetch(`${w.url}/health`, { signal }).catch(() => undefined);
        out(`${r?.ok ? '✓' : '✗'} ${w.id} ${w.url}/health`);
        if (!r?.ok) problems.push(w.id);
      }
      if (session.router) {
        const r = await fetch(`${session.router.url}/health`, { signal }).catch(() => undefined);
        out(`${r?.ok ? '✓' : '✗'} router ${session.router.url}/health`);
        if (!r?.ok) problems.push('router');
      }
      if (session.nats) {
        const port = Number(new URL(session.nats.url.replace('nats:', 'http:')).port);
        const up = !(await portIsFree(port));
        out(`${up ? '✓' : '✗'} nats ${session.nats.url}`);
        if (!up) problems.push('nats');
      }
      if (!session.workers.length && !session.router) out('nothing is running in this session yet');
      return problems.length ? { ok: false, error: `not healthy: ${problems.join(', ')}` } : { ok: true };
    },
  },

  'bench.run': {
    describe: (p) =>
      `replay the synthetic "${str(p.synthetic, 'multi-turn')}" workload in virtual time through ${num(p.workers, 8)} simulated workers with ${((p.modes as string[] | undefined) ?? ['round-robin', 'kv']).join(' vs ')} routing (the real router core; seconds, not minutes)`,
    async run(params, { out, signal }) {
      const { generateWorkload } = await import('../bench/generators.js');
      const { runBench } = await import('../bench/run.js');
      const { renderReport } = await import('../bench/report.js');
      const modes = ((params.modes as string[] | undefined) ?? ['round-robin', 'kv']) as RoutingMode[];
      let workload;
      try {
        workload = generateWorkload(str(params.synthetic, 'multi-turn'), num(params.seed, 1));
      } catch (err) {
        return { ok: false, error: `bad synthetic workload spec: ${(err as Error).message}` };
      }
      const { json } = await runBench(workload, {
        modes,
        workers: num(params.workers, 8),
        blockSize: num(params.block_size, 64),
        gpuBlocks: num(params.gpu_blocks, 16384),
        speedups: [num(params.speedup, 1)],
        seed: num(params.seed, 1),
        target: { kind: 'virtual' },
        signal,
        log: out,
      });
      for (const l of renderReport(json).split('\n')) out(l);
      return { ok: true };
    },
  },

  'logs.grep': {
    describe: (p) => `show ${str(p.component, 'workers') === 'workers' ? "each worker's" : `${str(p.component, '')}'s`} log lines matching /${str(p.pattern, '.')}/i (last ${num(p.tail, 30)})`,
    requires: ['workers'],
    async run(params, { session, out }) {
      let re: RegExp;
      try {
        re = new RegExp(str(params.pattern, '.'), 'i');
      } catch (err) {
        return { ok: false, error: `bad pattern: ${(err as Error).message}` };
      }
      const tail = num(params.tail, 30);
      // component: a worker id, "router", "nats", or "workers" (default: every worker).
      const component = str(params.component, 'workers');
      const ids = component === 'workers' ? session.workers.map((w) => w.id) : [component];
      for (const id of ids) {
        const lines = session.logsOf(id).filter((l) => re.test(l)).slice(-tail);
        out(`=== ${id} (${lines.length} matching line${lines.length === 1 ? '' : 's'})`);
        for (const l of lines) out(`  ${l}`);
        if (!lines.length) out('  (no matching lines yet)');
      }
      if (session.logFile) out(`Full logs: ${session.logFile}`);
      return { ok: true };
    },
  },

  'session.stop': {
    describe: () => 'stop the embedded router and every simulated worker, releasing their ports',
    async run(_p, { session, out }) {
      const lines = await session.stop();
      for (const l of lines) out(l);
      if (!lines.length) out('nothing was running');
      return { ok: true };
    },
  },

  'ports.free': {
    describe: () => 'check that every port the lab used is free again',
    async run(_p, { session, out }) {
      const ports = session.endpoints.map((e) => Number(new URL(e.url).port));
      for (const port of ports) {
        if (!(await portIsFree(port))) return { ok: false, error: `port ${port} is still in use` };
      }
      out(ports.length ? `ports ${ports.join(', ')} are free` : 'no ports were used');
      return { ok: true };
    },
  },
};

export function actionFor(name: string): ActionDef | undefined {
  return ACTIONS[name];
}
