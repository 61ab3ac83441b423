/**
 * What the dynamo engine's actions share: lab names for Dynamo's worker ids, dynamo-lab's router
 * beside (or in front of) the mocker workers, and waiting until that router has indexed what the
 * workers stored.
 */
import type { DynamoStack } from '../../engine/dynamo.js';
import { RouterServer } from '../../server/router-server.js';
import type { DemoResult } from '../demo.js';
import type { LocalSession } from '../session.js';

/** worker-0, worker-1, … in the mocker's creation order. */
export function workerName(stack: DynamoStack): (id: string) => string {
  return (id) => {
    const gens = stack.workerIdGenerations();
    for (let g = gens.length - 1; g >= 0; g--) {
      const i = gens[g]!.indexOf(id);
      if (i >= 0) return g === gens.length - 1 ? `worker-${i}` : `worker-${i} before restart ${gens.length - 1 - g}`;
    }
    return `dynamo-${id}`;
  };
}

/** session.demo's length when the session's router started: the results it can have indexed. */
const routerStartedAt = new WeakMap<LocalSession, number>();

/** The demo results since dynamo-lab's router (re)started: its index can only hold their blocks. */
export function indexedSince(session: LocalSession): DemoResult[] {
  return session.demo.slice(routerStartedAt.get(session) ?? 0);
}

/**
 * dynamo-lab's embedded router on the mocker's NATS KV events (restarted whenever the mocker is,
 * since restarted workers have new ids and empty caches). Beside the frontend it forwards to the
 * frontend, which routes again (`direct: false`); in front of a frontend started with
 * `--router-mode direct` it names the worker it chose in every request (`direct: true`).
 */
export async function startShadowRouter(session: LocalSession, out: (l: string) => void, opts: { direct?: boolean } = {}): Promise<void> {
  const stack = session.dynamo!;
  if (session.router) {
    await session.router.close();
    session.router = undefined;
  }
  const ids = stack.workerIds();
  session.router = await RouterServer.start({
    workers: ids.map((id, i) => ({ id: `worker-${i}`, url: stack.frontendUrl, dynamoWorkerId: id, totalKvBlocks: stack.shape.gpuBlocks })),
    blockSize: stack.shape.blockSize,
    mode: 'kv',
    port: 0,
    events: 'nats',
    nats: { servers: [stack.natsUrl], namespace: stack.namespace, component: 'backend' },
    health: false,
    dynamoDirect: opts.direct === true,
    log: session.logger('router'),
  });
  routerStartedAt.set(session, session.demo.length);
  session.endpoints.push({ id: 'router', url: session.router.url });
  out(
    opts.direct
      ? `dynamo-lab router ${session.router.url}: indexes the ${ids.length} mocker workers' KV events from ${stack.natsUrl} (namespace ${stack.namespace}), chooses the worker and names it to the frontend (nvext.backend_instance_id)`
      : `dynamo-lab router ${session.router.url}: indexes the ${ids.length} mocker workers' KV events from ${stack.natsUrl} (namespace ${stack.namespace}) and forwards to the frontend`,
  );
}

/**
 * Wait until dynamo-lab's router has indexed every full prompt block of each result on the
 * worker that served it: KV events travel over NATS on their own, so the response can end before
 * the last of them arrives. Returns the results still missing blocks after `timeoutMs`.
 */
export async function waitIndexed(
  router: RouterServer,
  results: readonly DemoResult[],
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Array<{ result: DemoResult; indexed: number; blocks: number }>> {
  const deadline = performance.now() + (opts.timeoutMs ?? 10_000);
  let pending = results.filter((r) => r.worker !== null && router.workerIds().includes(r.worker));
  for (;;) {
    const missing: Array<{ result: DemoResult; indexed: number; blocks: number }> = [];
    for (const r of pending) {
      const o = await router.overlapOf({ messages: r.messages });
      const indexed = o.workers[r.worker!] ?? 0;
      if (indexed < o.prompt_blocks) missing.push({ result: r, indexed, blocks: o.prompt_blocks });
    }
    if (!missing.length || performance.now() > deadline || opts.signal?.aborted) return missing;
    pending = missing.map((m) => m.result);
    await new Promise((r) => setTimeout(r, 50));
  }
}
