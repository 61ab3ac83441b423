/**
 * The real NVIDIA Dynamo 1.6.1 on a laptop, for the lab's `--engine dynamo`: a private
 * nats-server on 127.0.0.1 (the event plane), `python -m dynamo.mocker` (N mocker workers in one
 * process) and `python -m dynamo.frontend` (Dynamo's HTTP frontend with its Rust KV router), all
 * from the peers venv, file discovery (no etcd), TCP request plane, every host variable set to
 * 127.0.0.1. Each process runs in its own process group and is stopped by its id.
 *
 * The same launch recipe as scripts/peers/systems.ts (the benchmark), with the output handed
 * line by line to the caller's loggers instead of files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { freePort } from '../base/net.js';
import { buildModelDir, type ModelDir } from './model.js';
import type { Venv } from './venv.js';

const LOOPBACK = '127.0.0.1';

const stripAnsi = (s: string) => stripVTControlCharacters(s);

/**
 * The environment that keeps every Dynamo socket on loopback, with no etcd. `tempDir` (an existing
 * directory the caller removes) becomes the processes' TMPDIR: Dynamo 1.6.1 writes a logging
 * configuration to a temporary .json file at every process start and never deletes it, so with
 * the system temp directory each start left one behind in /tmp.
 */
export function dynamoEnv(fileKv: string, namespace: string, natsUrl: string, tempDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['ETCD_ENDPOINTS', 'NATS_SERVER', 'DYN_DISCOVERY_BACKEND', 'DYN_REQUEST_PLANE', 'DYN_EVENT_PLANE']) delete env[k];
  return {
    ...env,
    DYN_FILE_KV: fileKv,
    DYN_NAMESPACE: namespace,
    NATS_SERVER: natsUrl,
    DYN_TCP_RPC_HOST: LOOPBACK,
    DYN_EVENT_PLANE_HOST: LOOPBACK,
    DYN_TCP_RESPONSE_STREAM_HOST: LOOPBACK,
    DYN_SYSTEM_HOST: LOOPBACK,
    NO_COLOR: '1',
    HF_HUB_OFFLINE: '1',
    PYTHONUNBUFFERED: '1',
    TMPDIR: tempDir,
  };
}

/** Every Proc still running: their process groups are killed if this process exits without stopping them. */
const live = new Set<Proc>();
let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => {
    for (const p of live) {
      try {
        if (p.proc.pid !== undefined) process.kill(-p.proc.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

/** One long-running child in its own process group, its output split into lines. */
class Proc {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  private text = '';
  exitCode: number | null | undefined;

  constructor(
    readonly name: string,
    readonly argv: readonly string[],
    env: NodeJS.ProcessEnv,
    log: (line: string) => void,
  ) {
    this.proc = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    live.add(this);
    hookExit();
    let partial = '';
    const onData = (d: Buffer) => {
      const s = stripAnsi(d.toString('utf8'));
      this.text += s;
      if (this.text.length > 4_000_000) this.text = this.text.slice(-3_000_000);
      const lines = (partial + s).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.trim()) log(l);
    };
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.proc.once('error', (e) => {
        log(`${argv[0]}: ${e.message}`);
        this.exitCode = -1;
        resolve(-1);
      });
      this.proc.once('exit', (code) => {
        live.delete(this);
        this.exitCode = code;
        resolve(code);
      });
    });
  }

  output(): string {
    return this.text;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** SIGTERM to the whole process group, SIGKILL after `graceMs`. */
  async stop(graceMs = 8000): Promise<void> {
    if (!this.running || this.proc.pid === undefined) return;
    const pgid = this.proc.pid;
    try {
      process.kill(-pgid, 'SIGTERM');
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  procs: Proc[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) throw new Error(`interrupted while waiting for ${what}`);
    const dead = procs.find((p) => !p.running);
    if (dead)
      throw new Error(
        `${dead.name} exited (code ${String(dead.exitCode)}) before ${what}; its last lines:\n${dead.output().split('\n').slice(-12).join('\n')}`,
      );
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch {
      /* not yet */
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function tcpUp(port: number): Promise<true | undefined> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.connect(port, LOOPBACK, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(undefined));
  });
}

/** The generate instances in a Dynamo frontend's /health (ids > 2^53: read as text). */
export function dynamoInstances(healthText: string): string[] {
  return [...new Set([...healthText.matchAll(/"endpoint":"generate","namespace":"[^"]*","instance_id":(\d+)/g)].map((m) => m[1]!))];
}

export interface DynamoShape {
  workers: number;
  blockSize: number;
  speedup: number;
  /** Extra speed-up of decode steps only (the mocker's --decode-speedup-ratio); 1 when absent. */
  decodeSpeedup?: number;
  gpuBlocks: number;
}

export interface FrontendOptions {
  /** --router-mode: kv, round-robin or random. */
  mode: string;
  /** Further frontend flags (e.g. --kv-overlap-score-weight 1.5, --router-temperature 0). */
  args: readonly string[];
}

/** File discovery (no etcd), TCP request plane, NATS event plane: what the mocker and the frontend are both given. */
const PLANES = ['--discovery-backend', 'file', '--request-plane', 'tcp', '--event-plane', 'nats'];

/** `python -m dynamo.mocker`: `shape.workers` mocker workers in one process. */
export function mockerArgv(python: string, model: ModelDir, shape: DynamoShape): string[] {
  return [
    python,
    '-m',
    'dynamo.mocker',
    '--model-path',
    model.path,
    '--model-name',
    model.name,
    ...PLANES,
    '--num-workers',
    String(shape.workers),
    '--block-size',
    String(shape.blockSize),
    '--speedup-ratio',
    String(shape.speedup),
    '--decode-speedup-ratio',
    String(shape.decodeSpeedup ?? 1),
    '--num-gpu-blocks-override',
    String(shape.gpuBlocks),
  ];
}

/** `python -m dynamo.frontend` on 127.0.0.1:`port` with `--router-mode mode` and further flags. */
export function frontendArgv(python: string, port: number, blockSize: number, opts: FrontendOptions): string[] {
  return [
    python,
    '-m',
    'dynamo.frontend',
    '--http-host',
    LOOPBACK,
    '--http-port',
    String(port),
    '--router-mode',
    opts.mode,
    ...PLANES,
    '--kv-cache-block-size',
    String(blockSize),
    ...opts.args,
  ];
}

/** The mocker's worker ids (Dynamo instance ids, u64 as decimal text) in its output, in creation order. */
export function mockerWorkerIds(output: string): string[] {
  return [...output.matchAll(/FPM direct publisher started worker_id=(\d+)/g)].map((m) => m[1]!);
}

/** Logger per component (nats, mocker, frontend). */
export type ComponentLog = (component: string) => (line: string) => void;

/**
 * nats-server + mocker + frontend. The mocker can be restarted (fresh, empty caches) and the
 * frontend can be restarted with other flags while the mocker keeps running.
 */
export class DynamoStack {
  readonly namespace = `lab${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  natsUrl = '';
  frontendUrl = '';
  frontendOptions: FrontendOptions = { mode: 'kv', args: [] };
  private nats?: Proc;
  private mocker?: Proc;
  private frontend?: Proc;
  private readonly fileKv: string;
  private env: NodeJS.ProcessEnv = {};
  model?: ModelDir;

  constructor(
    readonly venv: Venv,
    public shape: DynamoShape,
    private readonly log: ComponentLog,
    readonly dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-engine-')),
  ) {
    this.fileKv = join(dir, 'file-kv');
  }

  /** Start nats-server and the mocker workers; wait until every worker has registered. */
  async startWorkers(signal?: AbortSignal): Promise<void> {
    this.model ??= await buildModelDir(join(this.dir, 'model-root'));
    if (!this.nats) {
      const port = await freePort();
      this.nats = new Proc('nats-server', ['nats-server', '-a', LOOPBACK, '-p', String(port)], process.env, this.log('nats'));
      await waitUntil(`nats-server on ${LOOPBACK}:${port}`, () => tcpUp(port), [this.nats], 15_000, signal);
      this.natsUrl = `nats://${LOOPBACK}:${port}`;
      const temp = join(this.dir, 'tmp');
      mkdirSync(temp, { recursive: true });
      this.env = dynamoEnv(this.fileKv, this.namespace, this.natsUrl, temp);
    }
    rmSync(this.fileKv, { recursive: true, force: true });
    mkdirSync(this.fileKv, { recursive: true });
    const { workers } = this.shape;
    this.mocker = new Proc('dynamo.mocker', mockerArgv(this.venv.python, this.model, this.shape), this.env, this.log('mocker'));
    await waitUntil(
      `${workers} mocker workers`,
      async () => (this.workerIds().length >= workers ? true : undefined),
      [this.nats, this.mocker],
      180_000,
      signal,
    );
  }

  /** Worker ids of earlier mocker processes (resetCaches restarts it with new ids), oldest first. */
  private readonly pastIds: string[][] = [];

  /** Every mocker process's worker ids, oldest first; the last one is the running mocker's. */
  workerIdGenerations(): string[][] {
    return [...this.pastIds, this.workerIds()];
  }

  /** The mocker's worker ids (Dynamo instance ids, u64 as decimal text) in creation order. */
  workerIds(): string[] {
    return mockerWorkerIds(this.mocker?.output() ?? '');
  }

  /** Start (or restart with other flags) the frontend; wait until it lists the model with every worker. */
  async startFrontend(opts: FrontendOptions, signal?: AbortSignal): Promise<void> {
    if (!this.mocker || !this.model) throw new Error('start the mocker workers first');
    await this.frontend?.stop();
    const port = await freePort();
    this.frontendOptions = opts;
    this.frontend = new Proc(
      'dynamo.frontend',
      frontendArgv(this.venv.python, port, this.shape.blockSize, opts),
      this.env,
      this.log('frontend'),
    );
    const url = `http://${LOOPBACK}:${port}`;
    const model = this.model.name;
    await waitUntil(
      `Dynamo frontend ${url} listing ${model} with ${this.shape.workers} workers`,
      async () => {
        const models = (await (await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(3000) })).json()) as {
          data?: Array<{ id: string }>;
        };
        if (!models.data?.some((m) => m.id === model)) return undefined;
        const health = await (await fetch(`${url}/health`, { signal: AbortSignal.timeout(3000) })).text();
        return dynamoInstances(health).length >= this.shape.workers ? true : undefined;
      },
      [this.nats!, this.mocker, this.frontend],
      180_000,
      signal,
    );
    this.frontendUrl = url;
  }

  /** Empty every worker's prefix cache: restart the mocker (new worker ids) and then the frontend. */
  async resetCaches(signal?: AbortSignal): Promise<void> {
    await this.restartWorkers(this.shape, signal);
  }

  /**
   * Restart the mocker with another shape (worker count, speed): new worker ids, empty caches.
   * The frontend, if it was running, is restarted with the same flags.
   */
  async restartWorkers(shape: DynamoShape, signal?: AbortSignal): Promise<void> {
    const hadFrontend = !!this.frontend;
    await this.frontend?.stop();
    this.frontend = undefined;
    if (this.mocker) this.pastIds.push(this.workerIds());
    await this.mocker?.stop();
    this.mocker = undefined;
    this.shape = shape;
    await this.startWorkers(signal);
    if (hadFrontend) await this.startFrontend(this.frontendOptions, signal);
  }

  get frontendRunning(): boolean {
    return !!this.frontend?.running;
  }

  get workersRunning(): boolean {
    return !!this.mocker?.running;
  }

  /** The process-group ids of everything running (for the loopback check). */
  pgids(): number[] {
    return [this.nats, this.mocker, this.frontend]
      .filter((p): p is Proc => !!p?.running && p.proc.pid !== undefined)
      .map((p) => p.proc.pid!);
  }

  async stopFrontend(): Promise<void> {
    await this.frontend?.stop();
    this.frontend = undefined;
    this.frontendUrl = '';
  }

  async close(): Promise<void> {
    await this.stopFrontend();
    await this.mocker?.stop();
    this.mocker = undefined;
    await this.nats?.stop();
    this.nats = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
