/**
 * The systems under test, each started fresh (empty caches) on 127.0.0.1 and stopped after its run:
 *
 * - dynamo-*   Dynamo 1.6.1: `python -m dynamo.mocker` (N workers in one process) + `python -m
 *              dynamo.frontend` (its Rust KV router), file discovery, TCP request plane, NATS
 *              event plane on a private nats-server bound to 127.0.0.1 (the ZMQ event plane binds
 *              its publishers to 0.0.0.0, which the loopback guard rejects).
 * - lab-*      dynamo-lab: `dynamo-lab sim` (N workers in one process, vLLM-format KV events on
 *              ZMQ) + `dynamo-lab router --worker … --events zmq` (the same process shape).
 * - sglang-*   sglang-router 0.3.2 in front of `dynamo-lab sim` workers (no KV events; its
 *              cache_aware policy keeps its own approximate tree).
 *
 * Same workers x blocks x block size, the same timing model (the mocker's polynomial, which the
 * sim implements) and the same speedup everywhere.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cliArgv,
  simArgv,
  freePort,
  getJson,
  getText,
  LOOPBACK,
  parseProm,
  promSum,
  startDaemon,
  stopDaemon,
  waitFor,
  type Daemon,
} from './common.js';
import { dynamoEnv, dynamoInstances, frontendArgv, mockerArgv, mockerWorkerIds } from '../../src/engine/dynamo.js';
import type { ModelDir } from './model.js';
import type { Venv } from './venv.js';
import { stripVTControlCharacters } from 'node:util';

export type Family = 'dynamo' | 'dynamo-lab' | 'sglang';

export interface SystemSpec {
  id: string;
  family: Family;
  /** The policy name as the system spells it. */
  policy: string;
  label: string;
}

export const SYSTEMS: SystemSpec[] = [
  { id: 'dynamo-kv', family: 'dynamo', policy: 'kv', label: 'Dynamo kv' },
  { id: 'dynamo-rr', family: 'dynamo', policy: 'round-robin', label: 'Dynamo round-robin' },
  { id: 'lab-kv', family: 'dynamo-lab', policy: 'kv', label: 'dynamo-lab kv' },
  { id: 'lab-rr', family: 'dynamo-lab', policy: 'round-robin', label: 'dynamo-lab round-robin' },
  { id: 'lab-kv-ttft', family: 'dynamo-lab', policy: 'kv-ttft', label: 'dynamo-lab kv-ttft' },
  { id: 'sglang-cache-aware', family: 'sglang', policy: 'cache_aware', label: 'sglang cache_aware -> lab sims' },
  { id: 'sglang-rr', family: 'sglang', policy: 'round_robin', label: 'sglang round_robin -> lab sims' },
];

export interface EngineShape {
  workers: number;
  gpuBlocks: number;
  blockSize: number;
  speedup: number;
}

export interface StartContext {
  venv?: Venv;
  model: ModelDir;
  shape: EngineShape;
  /** Per-run scratch directory (logs, Dynamo's file discovery store). */
  dir: string;
  /** Extra env (e.g. Dynamo debug logging for the differential check). */
  env?: NodeJS.ProcessEnv;
  /** Router seed (dynamo-lab). */
  seed?: number;
}

export interface RoutedStats {
  /** Requests per worker, in worker order (Dynamo: the mocker's creation order; sims: worker-0..). */
  perWorker: number[];
  /** Router's predicted cached prompt tokens / prompt tokens (null when the router has no such figure). */
  predictedHitRate: number | null;
}

export interface Running {
  spec: SystemSpec;
  url: string;
  daemons: Daemon[];
  /** Worker ids in order (for mapping decisions across systems). */
  workerIds(): string[];
  /** Dynamo only: its namespace and the NATS event plane (for a router that listens to the same KV events). */
  dynamo?: { namespace: string; natsUrl: string };
  stats(): Promise<RoutedStats>;
  stop(): Promise<void>;
}

const stripAnsi = (s: string) => stripVTControlCharacters(s);

// ---------------------------------------------------------------- Dynamo

/** The environment that keeps every Dynamo socket on loopback (shared with the lab's dynamo engine). */
export { dynamoEnv };

export async function startNats(dir: string): Promise<{ daemon: Daemon; url: string }> {
  const port = await freePort();
  const daemon = startDaemon('nats-server', ['nats-server', '-a', LOOPBACK, '-p', String(port)], { logDir: dir });
  await waitFor(
    `nats-server on ${LOOPBACK}:${port}`,
    async () => {
      const net = await import('node:net');
      return new Promise<true | undefined>((resolve) => {
        const s = net.connect(port, LOOPBACK, () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(undefined));
      });
    },
    { timeoutMs: 10_000, daemons: [daemon] },
  );
  return { daemon, url: `nats://${LOOPBACK}:${port}` };
}

export async function startDynamo(spec: SystemSpec, ctx: StartContext, extraFrontendArgs: string[] = []): Promise<Running> {
  if (!ctx.venv) throw new Error('Dynamo needs the peers venv');
  const py = ctx.venv.python;
  const fileKv = join(ctx.dir, 'file-kv');
  rmSync(fileKv, { recursive: true, force: true });
  mkdirSync(fileKv, { recursive: true });
  const nats = await startNats(ctx.dir);
  const ns = `lab${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  // Dynamo's temporary files go in the run's directory and are removed when it stops (see dynamoEnv).
  const temp = join(ctx.dir, 'dynamo-tmp');
  mkdirSync(temp, { recursive: true });
  const env = { ...dynamoEnv(fileKv, ns, nats.url, temp), ...(ctx.env ?? {}) };
  const { workers, blockSize } = ctx.shape;
  const mocker = startDaemon('dynamo-mocker', mockerArgv(py, ctx.model, ctx.shape), { env, logDir: ctx.dir });
  const port = await freePort();
  const frontend = startDaemon('dynamo-frontend', frontendArgv(py, port, blockSize, { mode: spec.policy, args: extraFrontendArgs }), {
    env,
    logDir: ctx.dir,
  });
  const daemons = [nats.daemon, mocker, frontend];
  const url = `http://${LOOPBACK}:${port}`;
  const stopAll = async () => {
    for (const d of [frontend, mocker, nats.daemon]) await stopDaemon(d);
    rmSync(temp, { recursive: true, force: true });
  };
  try {
    await waitFor(
      `Dynamo frontend ${url} listing ${ctx.model.name} with ${workers} workers`,
      async () => {
        const models = (await getJson(`${url}/v1/models`)) as { data?: Array<{ id: string }> };
        if (!models.data?.some((m) => m.id === ctx.model.name)) return undefined;
        return dynamoInstances(await getText(`${url}/health`)).length >= workers ? true : undefined;
      },
      { timeoutMs: 120_000, daemons, intervalMs: 500 },
    );
  } catch (e) {
    await stopAll();
    throw e;
  }
  const workerIds = () => mockerWorkerIds(stripAnsi(mocker.output()));
  return {
    spec,
    url,
    daemons,
    workerIds,
    dynamo: { namespace: ns, natsUrl: nats.url },
    async stats() {
      const ids = workerIds();
      const counts = new Map<string, number>();
      for (const m of stripAnsi(frontend.output()).matchAll(
        /request completed request_id=\S+ model=\S+ endpoint=\S+ request_type=\S+ status=success.*?decode_worker_id=(\d+)/g,
      ))
        counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
      const samples = parseProm(await getText(`${url}/metrics`));
      const isl = promSum(samples, 'dynamo_component_router_input_sequence_tokens_sum');
      const sel = promSum(samples, 'dynamo_component_router_kv_selected_cached_prefix_tokens_total');
      return { perWorker: ids.map((id) => counts.get(id) ?? 0), predictedHitRate: spec.policy === 'kv' && isl > 0 ? sel / isl : null };
    },
    stop: stopAll,
  };
}

// ---------------------------------------------------------------- dynamo-lab sims (+ router or sglang)

export interface SimWorker {
  id: string;
  url: string;
  zmq?: string;
  zmq_replay?: string;
}

export async function startSims(
  ctx: StartContext,
  opts: { zmq: boolean; name?: string; seed?: number },
): Promise<{ daemon: Daemon; workers: SimWorker[] }> {
  const { workers, gpuBlocks, blockSize, speedup } = ctx.shape;
  const args = [...simArgv({ workers, gpuBlocks, blockSize, speedup }), '--model', ctx.model.name];
  if (opts.zmq) args.push('--zmq-port', '0', '--replay-port', '0');
  if (opts.seed !== undefined) args.push('--seed', String(opts.seed));
  const daemon = startDaemon(opts.name ?? 'dynamo-lab-sim', args, {
    env: { ...process.env, CI: 'true', FORCE_COLOR: '0' },
    logDir: ctx.dir,
  });
  const list = await waitFor(
    `${workers} dynamo-lab sim workers`,
    async () => {
      const first = daemon
        .output()
        .split('\n')
        .find((l) => l.startsWith('['));
      if (!first) return undefined;
      return JSON.parse(first) as SimWorker[];
    },
    { timeoutMs: 60_000, daemons: [daemon] },
  );
  return { daemon, workers: list };
}

/** Requests each sim served; every sim's /metrics is kept in `dir` (worker-<id>.prom) for a closer look. */
async function simStats(workers: SimWorker[], dir: string): Promise<number[]> {
  return Promise.all(
    workers.map(async (w) => {
      const text = await getText(`${w.url}/metrics`);
      writeFileSync(join(dir, `worker-${w.id}.prom`), text);
      return promSum(parseProm(text), 'vllm:request_success_total');
    }),
  );
}

export async function startLab(spec: SystemSpec, ctx: StartContext): Promise<Running> {
  const sims = await startSims(ctx, { zmq: true });
  const specs = sims.workers.flatMap((w) => [
    '--worker',
    `id=${w.id},url=${w.url},zmq=${w.zmq},replay=${w.zmq_replay},kv_blocks=${ctx.shape.gpuBlocks}`,
  ]);
  const router = startDaemon(
    'dynamo-lab-router',
    [
      ...cliArgv(),
      'router',
      ...specs,
      '--events',
      'zmq',
      '--mode',
      spec.policy,
      '--host',
      LOOPBACK,
      '--port',
      '0',
      '--block-size',
      String(ctx.shape.blockSize),
      '--seed',
      String(ctx.seed ?? 1),
      '--json',
    ],
    { env: { ...process.env, CI: 'true', FORCE_COLOR: '0' }, logDir: ctx.dir },
  );
  const daemons = [sims.daemon, router];
  const stopAll = async () => {
    for (const d of [router, sims.daemon]) await stopDaemon(d);
  };
  let url = '';
  try {
    url = await waitFor(
      'dynamo-lab router',
      async () => {
        const first = router
          .output()
          .split('\n')
          .find((l) => l.startsWith('{'));
        if (!first) return undefined;
        const u = (JSON.parse(first) as { url: string }).url;
        const h = await fetch(`${u}/health`, { signal: AbortSignal.timeout(2000) });
        return h.ok ? u : undefined;
      },
      { timeoutMs: 60_000, daemons },
    );
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    spec,
    url,
    daemons,
    workerIds: () => sims.workers.map((w) => w.id),
    async stats() {
      const text = await getText(`${url}/metrics`);
      writeFileSync(join(ctx.dir, 'router.prom'), text);
      const pred = parseProm(text).find((s) => s.name === 'dynamo_lab_router_predicted_hit_rate');
      return {
        perWorker: await simStats(sims.workers, ctx.dir),
        predictedHitRate: spec.policy === 'round-robin' || !pred ? null : pred.value,
      };
    },
    stop: stopAll,
  };
}

export async function startSglang(spec: SystemSpec, ctx: StartContext): Promise<Running> {
  if (!ctx.venv) throw new Error('sglang-router needs the peers venv');
  const sims = await startSims(ctx, { zmq: false });
  const port = await freePort();
  const promPort = await freePort();
  const router = startDaemon(
    'sglang-router',
    [
      ctx.venv.python,
      '-m',
      'sglang_router.launch_router',
      '--host',
      LOOPBACK,
      '--port',
      String(port),
      '--prometheus-host',
      LOOPBACK,
      '--prometheus-port',
      String(promPort),
      '--policy',
      spec.policy,
      '--tokenizer-path',
      ctx.model.path,
      '--worker-urls',
      ...sims.workers.map((w) => w.url),
    ],
    { env: { ...process.env, HF_HUB_OFFLINE: '1', NO_COLOR: '1' }, logDir: ctx.dir },
  );
  const daemons = [sims.daemon, router];
  const url = `http://${LOOPBACK}:${port}`;
  const stopAll = async () => {
    for (const d of [router, sims.daemon]) await stopDaemon(d);
  };
  try {
    await waitFor(
      `sglang-router ${url}`,
      async () => {
        const r = await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(2000) });
        if (!r.ok) return undefined;
        const h = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
        return h.ok ? true : undefined;
      },
      { timeoutMs: 60_000, daemons },
    );
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    spec,
    url,
    daemons,
    workerIds: () => sims.workers.map((w) => w.id),
    async stats() {
      return { perWorker: await simStats(sims.workers, ctx.dir), predictedHitRate: null };
    },
    stop: stopAll,
  };
}

export function startSystem(spec: SystemSpec, ctx: StartContext): Promise<Running> {
  switch (spec.family) {
    case 'dynamo':
      return startDynamo(spec, ctx);
    case 'dynamo-lab':
      return startLab(spec, ctx);
    case 'sglang':
      return startSglang(spec, ctx);
  }
}
