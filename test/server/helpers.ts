/** Shared helpers for the router server tests: sim workers, a real nats-server, polling. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SimWorker, type SimWorkerOptions } from '../../src/sim/index.js';
import { RouterServer } from '../../src/server/router-server.js';
import { sleep } from '../helpers/wait.js';

export const SYSTEM_PROMPT = 'You are a careful assistant for a railway company. Timetables, fares and safety rules follow. '.repeat(24);

export async function startSims(n: number, extra: Partial<SimWorkerOptions> = {}): Promise<SimWorker[]> {
  const out: SimWorker[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(await SimWorker.start({ id: `worker-${i}`, blockSize: 16, port: 0, speedup: 0, ...extra }));
  } catch (err) {
    await Promise.allSettled(out.map((w) => w.close()));
    throw err;
  }
  return out;
}

export { sleep, waitFor } from '../helpers/wait.js';

/**
 * A router (no events, no health checks) in front of one worker 'w' whose answers the test
 * scripts with `handler` (a plain node:http server); close() stops both.
 */
export async function routerBeforeScriptedWorker(handler: RequestListener): Promise<{ router: RouterServer; close(): Promise<void> }> {
  const upstream = createServer(handler);
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const closeUpstream = async () => {
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  };
  try {
    const router = await RouterServer.start({
      workers: [{ id: 'w', url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` }],
      blockSize: 16,
      port: 0,
      events: 'none',
      health: false,
    });
    return {
      router,
      close: async () => {
        await router.close();
        await closeUpstream();
      },
    };
  } catch (err) {
    await closeUpstream();
    throw err;
  }
}

export function cachedBlocks(router: RouterServer, id: string): number {
  return router.workersView().workers.find((w) => w.id === id)?.cached_blocks ?? 0;
}

export async function chat(
  url: string,
  content: string,
  opts: { headers?: Record<string, string>; stream?: boolean; maxTokens?: number; system?: string } = {},
): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...opts.headers },
    body: JSON.stringify({
      model: 'Qwen/Qwen2.5-1.5B-Instruct',
      messages: [...(opts.system ? [{ role: 'system', content: opts.system }] : []), { role: 'user', content }],
      max_tokens: opts.maxTokens ?? 4,
      stream: opts.stream ?? false,
    }),
  });
}

// ---------------------------------------------------------------------------------------------
// nats-server
// ---------------------------------------------------------------------------------------------

export function natsServerAvailable(): boolean {
  return spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether the NATS tests can run; when they cannot, the reason to skip with. With
 * DYNAMO_LAB_REQUIRE_NATS=1 a missing server is a failure instead.
 */
export function natsSkipReason(): string | false {
  if (natsServerAvailable()) return false;
  const msg = 'nats-server is not installed (apt-get install nats-server); NATS event tests skipped';
  if (process.env.DYNAMO_LAB_REQUIRE_NATS === '1')
    throw new Error(`${msg.replace('; NATS event tests skipped', '')} but DYNAMO_LAB_REQUIRE_NATS=1`);
  return msg;
}

export interface NatsServer {
  url: string;
  close(): Promise<void>;
}

/** Start nats-server with JetStream on a random loopback port (parsed from its log). */
export async function startNatsServer(): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-nats-'));
  const proc: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${log}`)), 10_000);
    const onData = (b: Buffer) => {
      log += b.toString();
      const m = /Listening for client connections on ([\d.]+):(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(`nats://${m[1]}:${m[2]}`);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${log}`));
    });
  });
  return {
    url,
    async close() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([exited, sleep(3000)]);
        if (proc.exitCode === null) proc.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
