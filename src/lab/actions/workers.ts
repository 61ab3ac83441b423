/** The simulated vLLM-style workers: start them, check them, show what the router knows of them. */
import { envPort } from '../../base/net.js';
import type { SimWorker } from '../../sim/index.js';
import { DEFAULT_MODEL } from '../../tokenizer/index.js';
import { workerTable, type WorkerBar } from '../format.js';
import { num, str, type ActionDef } from './types.js';

export const WORKERS_ACTIONS: Readonly<Record<string, ActionDef>> = {
  'sim.start': {
    describe: (p) =>
      `${p.replace ? 'replace the workers with ' : 'start '}${num(p.workers, 2)} simulated vLLM-style workers on 127.0.0.1 (block size ${num(p.block_size, 16)}, Dynamo mocker timing${num(p.speedup, 1) !== 1 ? `, prefill ${num(p.speedup, 1) < 1 ? `${Math.round(1 / num(p.speedup, 1))}x slower` : `${num(p.speedup, 1)}x faster`}` : ''})`,
    provides: ['workers'],
    async run(params, { session, out }) {
      if (session.workers.length && params.replace) {
        // A new fleet (e.g. more workers, a slower model): stop the old one and swap it in the router.
        for (const w of session.workers) {
          session.router?.removeWorker(w.id);
          await w.close();
          out(`${w.id} stopped (${w.url})`);
        }
        session.workers = [];
      }
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
            await (await import('../../sim/index.js')).SimWorker.start({
              id,
              blockSize,
              speedup: num(params.speedup, 1),
              decodeSpeedup: num(params.decode_speedup, 1),
              model: str(params.model, DEFAULT_MODEL),
              port: basePort ? basePort + i : 0,
              log: session.logger(id),
            }),
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
        session.router?.addWorker({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) });
        out(`${w.id}  ${w.url}  (OpenAI API, KV events in-process${session.router ? ', added to the router' : ''})`);
      }
      return { ok: true };
    },
  },

  'sim.scale': {
    describe: (p) => `start more simulated workers, up to ${num(p.workers, 4)} in all, and add them to the router`,
    requires: ['workers'],
    async run(params, { session, out }) {
      const want = num(params.workers, 4);
      const basePort = envPort('DYNAMO_LAB_WORKER_PORT');
      const first = session.workers[0];
      for (let i = session.workers.length; i < want; i++) {
        const id = `worker-${i}`;
        let w: SimWorker;
        try {
          w = await (await import('../../sim/index.js')).SimWorker.start({
            id,
            blockSize: session.blockSize,
            speedup: num(params.speedup, 1),
            model: first?.model ?? DEFAULT_MODEL,
            port: basePort ? basePort + i : 0,
            log: session.logger(id),
          });
        } catch (err) {
          return { ok: false, error: `could not start ${id}: ${(err as Error).message}` };
        }
        session.workers.push(w);
        session.endpoints.push({ id: w.id, url: w.url });
        session.router?.addWorker({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) });
        out(`${w.id}  ${w.url}  (OpenAI API, KV events in-process)${session.router ? ', added to the router' : ''}`);
      }
      out(`${session.workers.length} workers: ${session.workers.map((w) => w.id).join(', ')}`);
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

  'workers.status': {
    describe: () => 'show, per worker, the blocks the router believes are cached and the load it has booked',
    requires: ['router'],
    async run(_p, { session, emit }) {
      emit(workerTable(session.router!.workersView().workers as unknown as WorkerBar[]));
      return { ok: true };
    },
  },
};
