/** Starting several simulated workers at once (the `sim` command, tests). */
import { SimWorker, type SimWorkerOptions } from './worker.js';

/**
 * Start `n` workers with ids worker-0..worker-(n-1). With basePort > 0 worker i listens on
 * basePort + i (and, with zmq.pubPort > 0, publishes on pubPort + i, replay on replayPort + i).
 * If one fails to start, the ones already started are closed and the error is rethrown.
 */
export async function startSimWorkers(
  n: number,
  opts: Omit<SimWorkerOptions, 'id' | 'port'> & { basePort?: number },
): Promise<SimWorker[]> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`number of workers must be an integer >= 1, got ${n}`);
  const { basePort = 0, ...rest } = opts;
  const workers: SimWorker[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const zmq = rest.zmq
        ? {
            host: rest.zmq.host,
            pubPort: rest.zmq.pubPort > 0 ? rest.zmq.pubPort + i : 0,
            replayPort: rest.zmq.replayPort === undefined ? undefined : rest.zmq.replayPort > 0 ? rest.zmq.replayPort + i : 0,
          }
        : undefined;
      workers.push(
        await SimWorker.start({
          ...rest,
          id: `worker-${i}`,
          port: basePort > 0 ? basePort + i : 0,
          zmq,
          seed: rest.seed === undefined ? undefined : rest.seed + i,
        }),
      );
    }
  } catch (err) {
    await Promise.allSettled(workers.map((w) => w.close()));
    throw err;
  }
  return workers;
}
