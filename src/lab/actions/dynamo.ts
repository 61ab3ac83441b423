/**
 * The dynamo engine (`dynamo-lab start --target local --engine dynamo`): the same action names
 * as the embedded engine, backed by the real NVIDIA Dynamo 1.6.1 from the peers venv —
 * `dynamo.mocker` workers, `dynamo.frontend` with its Rust KV router, a private nats-server as
 * the event plane, all on 127.0.0.1. Lab data does not change: which implementation runs is
 * chosen by the session's engine (actionFor).
 *
 * The embedded router also runs, beside the frontend, in front of the same mocker workers: it
 * builds its index from the mocker's KV events on NATS (what "in place of the frontend" means on
 * a laptop) and forwards to the frontend, since mocker workers speak Dynamo's TCP request plane,
 * not HTTP.
 */
import { checkServing, logsGrepParams, showLogLines, showMetrics } from './observe.js';
import { DynamoStack } from '../../engine/dynamo.js';
import { ensureVenv } from '../../engine/venv.js';
import { DEFAULT_MODEL } from '../../tokenizer/index.js';
import { checkExpectation, sendDemoRequest, type DemoRequest, type DemoResult } from '../demo.js';
import { demoTable, workerTable, type WorkerBar } from '../format.js';
import { scenarioRequests } from '../scenarios.js';
import { indexedSince, startShadowRouter, waitIndexed, workerName } from './dynamo-shared.js';
import { ROUTER_IN_PLACE_DYNAMO } from './in-place.js';
import { num, patternParam, str, type ActionDef } from './types.js';

/** Dynamo's --router-mode for a lab mode. */
function dynamoMode(mode: string): string {
  if (mode === 'kv' || mode === 'round-robin' || mode === 'random') return mode;
  throw new Error(`routing mode "${mode}" has no Dynamo 1.6 equivalent (use kv, round-robin or random)`);
}

/** Real frontend flags from the step's parameters. */
function frontendArgs(p: Readonly<Record<string, unknown>>): string[] {
  const args: string[] = [];
  if (p.kv_overlap_score_weight !== undefined) args.push('--router-kv-overlap-score-credit', String(num(p.kv_overlap_score_weight, 1)));
  if (p.router_temperature !== undefined) args.push('--router-temperature', String(num(p.router_temperature, 0)));
  if (Array.isArray(p.frontend_args)) args.push(...p.frontend_args.map(String));
  return args;
}

/** A frontend `Selected worker` line without the fields that do not explain the choice, with the lab's worker name. */
function condenseSelected(line: string, stack: DynamoStack): string {
  const name = workerName(stack);
  return line
    .replace(/^\S+Z\s+/, '')
    .replace(/^INFO\s+(?:http-request:\s+)?\S*?(\w+)::?\s+(?=Selected)/, '$1: ')
    .replace(/ (?:request_id|model)=(?:"[^"]*"|\S+)/g, '')
    .replace(/ (?:method|uri|version)=\S+/g, '')
    .replace(/ host_pinned_blocks=0 disk_blocks=0/, '')
    .replace(/ worker_type=decode dp_rank=0/, '')
    .replace(/ x_request_id="([0-9a-f]{8})[0-9a-f]*"/, ' x_request_id=$1…')
    .replace(/worker_id=(\d+)/, (_m, id: string) => `worker_id=${id} (${name(id)})`);
}

export const DYNAMO_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'nats.start': {
    describe: () =>
      "nothing yet: the Dynamo engine starts its own nats-server on 127.0.0.1 with the mocker workers (Dynamo's NATS event plane)",
    async run(_p, { session, out }) {
      out(
        session.dynamo?.natsUrl
          ? `Dynamo's event plane: nats-server at ${session.dynamo.natsUrl}`
          : "Dynamo's nats-server starts with the mocker workers (next step), bound to 127.0.0.1.",
      );
      return { ok: true };
    },
  },

  'sim.start': {
    describe: (p) =>
      `start ${num(p.workers, 2)} real Dynamo 1.6.1 mocker workers (python -m dynamo.mocker, block size ${num(p.block_size, 16)}) and a nats-server event plane on 127.0.0.1`,
    provides: ['workers'],
    async run(params, { session, out, signal }) {
      const shape = {
        workers: num(params.workers, 2),
        blockSize: num(params.block_size, 16),
        speedup: num(params.speedup, 1),
        decodeSpeedup: num(params.decode_speedup, 1),
        gpuBlocks: num(params.gpu_blocks, 16384),
      };
      if (session.dynamo?.workersRunning) {
        if (params.replace !== true) {
          out(`${session.dynamo.shape.workers} mocker workers already running: ${session.dynamo.workerIds().join(', ')}`);
          return { ok: true };
        }
        // A new set of workers (other count or speed): the mocker restarts, the frontend follows.
        try {
          out(
            `restarting the mocker: ${shape.workers} workers, --speedup-ratio ${shape.speedup} --decode-speedup-ratio ${shape.decodeSpeedup}`,
          );
          await session.dynamo.restartWorkers(shape, signal);
        } catch (err) {
          return { ok: false, error: `the Dynamo mocker did not restart: ${(err as Error).message}` };
        }
        session.blockSize = shape.blockSize;
        for (const [i, id] of session.dynamo.workerIds().entries())
          out(`worker-${i}  Dynamo instance ${id}  (mocker, TCP request plane, KV events on ${session.dynamo.natsUrl})`);
        return { ok: true };
      }
      let venv;
      try {
        venv = await ensureVenv({ create: false });
      } catch (err) {
        return {
          ok: false,
          error: `${(err as Error).message}\n(or run dynamo-lab start --engine dynamo without --json to be asked to create it)`,
        };
      }
      const stack = new DynamoStack(venv, shape, (c) => session.logger(c));
      session.dynamo = stack;
      session.blockSize = stack.shape.blockSize;
      try {
        out(
          `starting nats-server and python -m dynamo.mocker from ${venv.dir} (ai-dynamo ${venv.versions['ai-dynamo'] ?? '?'}); the first start takes a few seconds`,
        );
        await stack.startWorkers(signal);
      } catch (err) {
        await stack.close();
        session.dynamo = undefined;
        return { ok: false, error: `the Dynamo mocker did not start: ${(err as Error).message}` };
      }
      session.endpoints.push({ id: 'nats', url: stack.natsUrl.replace('nats:', 'http:') });
      for (const [i, id] of stack.workerIds().entries())
        out(`worker-${i}  Dynamo instance ${id}  (mocker, TCP request plane, KV events on ${stack.natsUrl})`);
      return { ok: true };
    },
  },

  'workers.healthy': {
    describe: () => 'check every mocker worker has registered (Dynamo file discovery)',
    requires: ['workers'],
    async run(_p, { session, out }) {
      const stack = session.dynamo!;
      const ids = stack.workerIds();
      if (ids.length < stack.shape.workers)
        return { ok: false, error: `${ids.length} of ${stack.shape.workers} mocker workers registered` };
      for (const [i, id] of ids.entries()) out(`worker-${i} (Dynamo instance ${id}) registered`);
      return { ok: true };
    },
  },

  'router.start': {
    describe: (p) =>
      `start Dynamo's frontend (python -m dynamo.frontend --router-mode ${str(p.mode, 'kv')}${frontendArgs(p).length ? ' ' + frontendArgs(p).join(' ') : ''}) on 127.0.0.1, and dynamo-lab's router beside it on the same workers' NATS KV events`,
    requires: ['workers'],
    provides: ['router'],
    async run(params, { session, out, signal }) {
      const stack = session.dynamo!;
      let mode: string;
      try {
        mode = dynamoMode(str(params.mode, 'kv'));
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
      const args = frontendArgs(params);
      if (
        stack.frontendRunning &&
        stack.frontendOptions.mode === mode &&
        JSON.stringify(stack.frontendOptions.args) === JSON.stringify(args)
      ) {
        out(`Dynamo frontend already running at ${stack.frontendUrl} (--router-mode ${mode})`);
        return { ok: true };
      }
      try {
        await stack.startFrontend({ mode, args }, signal);
      } catch (err) {
        return { ok: false, error: `Dynamo's frontend did not start: ${(err as Error).message}` };
      }
      session.endpoints.push({ id: 'frontend', url: stack.frontendUrl });
      out(`Dynamo frontend  ${stack.frontendUrl}  --router-mode ${mode}${args.length ? ' ' + args.join(' ') : ''}`);
      out(`        try: curl -s ${stack.frontendUrl}/v1/models   ·   ${stack.frontendUrl}/metrics`);
      await startShadowRouter(session, out);
      return { ok: true };
    },
  },

  'router.healthy': {
    describe: () => "check Dynamo's frontend answers GET /health and lists the model",
    requires: ['router'],
    run: (_p, { session, out, signal }) => checkServing(session.dynamo!.frontendUrl, 'Dynamo frontend', 'mocker workers', out, signal),
  },

  'demo.run': {
    describe: (p) =>
      `send the ${((p.scenarios as string[] | undefined) ?? []).join(' + ')} requests (streaming chat) through Dynamo's frontend with --router-mode ${str(p.mode, 'kv')}${p.reset_cache ? ', after restarting the mocker workers with empty caches' : ''}`,
    requires: ['workers', 'router'],
    async run(params, { session, out, emit, signal }) {
      const stack = session.dynamo!;
      const model = str(params.model, DEFAULT_MODEL);
      let requests: DemoRequest[];
      let mode: string;
      try {
        requests = scenarioRequests(Array.isArray(params.scenarios) ? (params.scenarios as string[]) : []);
        mode = dynamoMode(str(params.mode, 'kv'));
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
      if (!requests.length) return { ok: false, error: 'demo.run needs "scenarios": a list of scenario names from labs/scenarios.yaml' };
      try {
        if (params.reset_cache) {
          out('restarting the mocker workers (empty prefix caches) and the frontend…');
          stack.frontendOptions = { mode, args: stack.frontendOptions.args };
          await stack.resetCaches(signal);
          await startShadowRouter(session, out);
        } else if (stack.frontendOptions.mode !== mode) {
          await stack.startFrontend({ mode, args: stack.frontendOptions.args }, signal);
        }
      } catch (err) {
        return { ok: false, error: `could not restart Dynamo: ${(err as Error).message}` };
      }
      out(`Dynamo frontend ${stack.frontendUrl} --router-mode ${mode}`);
      const name = workerName(stack);
      const run = ++session.demoRuns;
      const results: DemoResult[] = [];
      for (const r of requests) {
        if (signal.aborted) break;
        const prev = results.at(-1);
        const history = r.follow_up && prev ? [...prev.messages, { role: 'assistant', content: prev.output_text }] : [];
        const res = {
          ...(await sendDemoRequest(stack.frontendUrl, r, {
            model,
            mode: str(params.mode, 'kv'),
            signal,
            history,
            dynamoWorkerName: name,
          })),
          run,
        };
        results.push(res);
        session.demo.push(res);
      }
      emit(
        demoTable(
          results,
          stack.workerIds().map((_, i) => `worker-${i}`),
          `${str(params.mode, 'kv')} routing (Dynamo frontend): one row per request`,
        ),
      );
      const problem = checkExpectation(results, typeof params.expect === 'string' ? params.expect : undefined, {
        minCachedShare: typeof params.min_cached_share === 'number' ? params.min_cached_share : undefined,
      });
      if (problem) return { ok: false, error: problem };
      return { ok: true };
    },
  },

  'workers.status': {
    describe: () => "show, per mocker worker, the blocks dynamo-lab's router indexed from the real KV events on NATS",
    requires: ['router'],
    async run(_p, { session, out, emit, signal }) {
      if (!session.router) return { ok: false, error: "dynamo-lab's router is not running beside the frontend" };
      // KV events reach the router over NATS on their own: wait until it holds every prompt block of
      // each request served since it started, on the worker that served it.
      const missing = await waitIndexed(session.router, indexedSince(session), { signal });
      for (const m of missing)
        out(
          `(after 10 s the router holds ${m.indexed} of ${m.blocks} blocks of "${m.result.prompt}" on ${m.result.worker}: KV events late or lost)`,
        );
      emit(workerTable(session.router.workersView().workers as unknown as WorkerBar[]));
      out(`(built from the mocker's KV events on ${session.dynamo!.natsUrl}; Dynamo's frontend keeps its own index from the same events)`);
      return { ok: true };
    },
  },

  'router.in-place': ROUTER_IN_PLACE_DYNAMO,

  'metrics.show': {
    describe: (p) =>
      `read Dynamo's frontend /metrics (dynamo_component_router_* and dynamo_frontend_*) and show lines matching /${str(p.pattern, '.')}/`,
    requires: ['router'],
    async run(params, { session, out, signal }) {
      const re = patternParam(params.pattern, '');
      if (!(re instanceof RegExp)) return re;
      const targets = [
        { id: 'Dynamo frontend', url: session.dynamo!.frontendUrl },
        ...(session.router ? [{ id: 'dynamo-lab router', url: session.router.url }] : []),
      ];
      await showMetrics(targets, re, num(params.max_lines, 20), out, signal);
      return { ok: true };
    },
  },

  'logs.grep': {
    describe: (p) =>
      `show Dynamo's frontend "Selected worker" lines and the mocker's log lines matching /${str(p.pattern, '.')}/i (last ${num(p.tail, 30)})`,
    requires: ['workers'],
    async run(params, { session, out }) {
      const p = logsGrepParams(params);
      if (!('re' in p)) return p;
      const { re, component } = p;
      const stack = session.dynamo!;
      // The real frontend logs each routing decision: "Selected worker router_mode=… worker_id=… logit=…".
      // The mocker logs no per-request cache line (its one-off config dump is left out).
      const sources: Array<[string, (l: string) => boolean]> =
        component === 'workers' || component === 'router' || component === 'frontend'
          ? [
              ['frontend', (l) => /Selected worker/.test(l)],
              ['mocker', (l) => re.test(l) && !/Creating mocker engine with config/.test(l)],
            ]
          : [[component, (l) => re.test(l)]];
      // Frontend last, so the bounded step view ends on its decisions.
      if (session.logFile) out(`Full logs: ${session.logFile}`);
      out('(frontend lines condensed: request ids, HTTP fields and module paths left out; lab worker names added)');
      for (const [id, keep] of [...sources].reverse())
        showLogLines(
          out,
          id,
          session.logsOf(id).filter(keep).slice(-p.tail),
          id === 'frontend' ? (l) => condenseSelected(l, stack) : (l) => l.replace(/^\S+Z\s+/, ''),
          id === 'mocker' ? '(none: the mocker logs no per-request cache line)' : undefined,
        );
      return { ok: true };
    },
  },

  'health.check': {
    describe: () => "check the mocker workers, Dynamo's frontend and the nats-server are up",
    async run(_p, { session, out, signal }) {
      const stack = session.dynamo;
      if (!stack) {
        out('nothing is running in this session yet');
        return { ok: true };
      }
      const problems: string[] = [];
      out(`${stack.workersRunning ? '✓' : '✗'} dynamo.mocker (${stack.workerIds().length} workers)`);
      if (!stack.workersRunning) problems.push('mocker');
      if (stack.frontendUrl) {
        const r = await fetch(`${stack.frontendUrl}/health`, { signal }).catch(() => undefined);
        out(`${r?.ok ? '✓' : '✗'} frontend ${stack.frontendUrl}/health`);
        if (!r?.ok) problems.push('frontend');
      }
      return problems.length ? { ok: false, error: `not healthy: ${problems.join(', ')}` } : { ok: true };
    },
  },
};
