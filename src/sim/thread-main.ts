/**
 * Entry point of a worker thread that hosts one SimWorker (see threads.ts). The engine, its HTTP
 * server and its SSE streams run on this thread's event loop, not the router's.
 *
 * Messages from the parent:  {t:'ids', id, ids: Uint32Array}  prompt token ids for request `id`
 *                            {t:'close'}
 * Messages to the parent:    {t:'ready', url, zmq, replay, numGpuBlocks, blockSize}
 *                            {t:'events', events: RouterEvent[]}   (in order, batched per tick)
 *                            {t:'log', line} / {t:'error', message} / {t:'closed'}
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { toWire, type WireEvent } from './thread-events.js';
import { SimWorker, type SimWorkerOptions } from './worker.js';
import { PromptTokenInbox } from './prompt-inbox.js';

const port = parentPort!;
/**
 * The lowest priority. A simulated engine stands for a GPU, which takes no CPU from a real router;
 * at nice 19 (CFS weight 15 against 1024 at nice 0) the router's thread runs first whenever both
 * are runnable, and the engines use what is left. At nice 5 (weight 335) eight busy engines
 * together outweighed the router's thread, and its /health answers waited for a CPU.
 */
const SIM_THREAD_NICE = 19;

// On Linux, nice is per thread: lower this engine thread's priority so that, when the CPU is
// short, the router's own thread (relaying streams, answering /health) runs first. Elsewhere
// the call would renice the whole process, router included, so it is skipped.
if (process.platform === 'linux') {
  try {
    setPriority(0, SIM_THREAD_NICE);
  } catch {
    // not permitted: run at the same priority
  }
}
const { options, tokenTexts, logging } = workerData as { options: SimWorkerOptions; tokenTexts?: [number, string][]; logging: boolean };

const inbox = new PromptTokenInbox();
let pending: WireEvent[] = [];
let scheduled = false;
const flush = () => {
  scheduled = false;
  if (pending.length === 0) return;
  const events = pending;
  pending = [];
  port.postMessage({ t: 'events', events });
};

try {
  const worker = await SimWorker.start({
    ...options,
    log: logging ? (line) => port.postMessage({ t: 'log', line }) : undefined,
    promptTokens: inbox,
    tokenTexts: tokenTexts ? new Map(tokenTexts) : undefined,
  });
  worker.onKvEvent((ev) => {
    pending.push(toWire(ev));
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
  port.on('message', (m: { t: string; id?: string; ids?: Uint32Array }) => {
    if (m.t === 'ids') inbox.put(m.id!, m.ids!);
    else if (m.t === 'close') {
      void worker.close().then(() => {
        flush();
        inbox.close();
        port.postMessage({ t: 'closed' });
        port.close();
      });
    }
  });
  port.postMessage({
    t: 'ready',
    url: worker.url,
    zmq: worker.zmqEndpoint,
    replay: worker.zmqReplayEndpoint,
    numGpuBlocks: worker.engine.numGpuBlocks,
    blockSize: worker.engine.blockSize,
  });
} catch (err) {
  port.postMessage({ t: 'error', message: (err as Error)?.message ?? String(err) });
  port.close();
}
