/**
 * `--mode direct`: the client names the worker, as with Dynamo's `--router-mode direct`, where
 * the request carries the target instance in `nvext.backend_instance_id` (or
 * `nvext.decode_worker_id`, which Dynamo prefers when both are set) and optionally
 * `nvext.dp_rank`. The header `x-dynamo-lab-target-worker: <id>` does the same for clients that
 * cannot add body fields. A worker is named by its id or by its Dynamo worker_id.
 *
 * Problems answer OpenAI-shaped errors that list the valid ids: no target 400, an unknown one
 * 404, a target that is down or whose circuit is open 503 (the request is not sent elsewhere).
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../base/http.js';
import type { WorkerRegistry } from './workers.js';

export const TARGET_HEADER = 'x-dynamo-lab-target-worker';

export interface DirectTarget {
  /** The registered worker id. */
  id: string;
  dpRank?: number;
}

/** Valid names of the registered workers, for error messages: `a (worker_id 123), b`. */
export function validTargets(registry: WorkerRegistry): string {
  const names = [...registry.values()].map((st) =>
    st.ep.dynamoWorkerId !== undefined && st.ep.dynamoWorkerId !== st.ep.id ? `${st.ep.id} (worker_id ${st.ep.dynamoWorkerId})` : st.ep.id,
  );
  return names.length > 0 ? names.join(', ') : 'none (no workers are registered)';
}

function idValue(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && v.trim() !== '') return v.trim();
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && v >= 0) return String(v);
    throw new HttpError(
      400,
      `${field} ${String(v)} is not a whole number a JSON parser keeps exactly; send a worker_id above 2^53 as a string`,
      'invalid_request_error',
      'invalid_backend_instance_id',
    );
  }
  throw new HttpError(
    400,
    `${field} must be a worker id (string) or a Dynamo worker_id (number)`,
    'invalid_request_error',
    'invalid_backend_instance_id',
  );
}

/** The worker a direct-mode request names, resolved against the registry; throws 400 / 404. */
export function directTarget(req: IncomingMessage, body: Record<string, unknown>, registry: WorkerRegistry): DirectTarget {
  const nvext = body.nvext;
  if (nvext !== undefined && nvext !== null && (typeof nvext !== 'object' || Array.isArray(nvext)))
    throw new HttpError(400, '"nvext" must be an object', 'invalid_request_error', 'invalid_nvext');
  const n = (nvext ?? {}) as Record<string, unknown>;
  const fromBody = idValue(n.decode_worker_id, 'nvext.decode_worker_id') ?? idValue(n.backend_instance_id, 'nvext.backend_instance_id');
  const h = req.headers[TARGET_HEADER];
  const fromHeader = typeof h === 'string' && h.trim() !== '' ? h.trim() : undefined;
  if (fromBody !== undefined && fromHeader !== undefined && fromBody !== fromHeader)
    throw new HttpError(
      400,
      `the request names two workers: nvext "${fromBody}" and ${TARGET_HEADER} "${fromHeader}"; give one`,
      'invalid_request_error',
      'conflicting_target',
    );
  const name = fromBody ?? fromHeader;
  if (name === undefined)
    throw new HttpError(
      400,
      `the router runs in direct mode: name the worker with nvext.backend_instance_id (or the ${TARGET_HEADER} header); valid: ${validTargets(registry)}`,
      'invalid_request_error',
      'missing_backend_instance_id',
    );
  let dpRank: number | undefined;
  if (n.dp_rank !== undefined && n.dp_rank !== null) {
    if (typeof n.dp_rank !== 'number' || !Number.isInteger(n.dp_rank) || n.dp_rank < 0)
      throw new HttpError(400, 'nvext.dp_rank must be a whole number >= 0', 'invalid_request_error', 'invalid_dp_rank');
    dpRank = n.dp_rank;
  }
  const id = registry.resolve(name);
  if (id === undefined)
    throw new HttpError(
      404,
      `no worker "${name}" is registered with the router; valid: ${validTargets(registry)}`,
      'invalid_request_error',
      'worker_not_found',
    );
  return dpRank === undefined ? { id } : { id, dpRank };
}

/** A named worker that cannot take requests now: 503 with the reason (direct mode never reroutes). */
export function checkTargetUsable(registry: WorkerRegistry, t: DirectTarget, nowMs: number): void {
  const st = registry.get(t.id);
  if (!st)
    throw new HttpError(404, `worker ${t.id} was removed; valid: ${validTargets(registry)}`, 'invalid_request_error', 'worker_not_found');
  const why = !st.healthy
    ? `is down (${st.lastHealthError ?? 'health check failed'})`
    : !st.breaker.allows(nowMs)
      ? `has its circuit open after ${st.breaker.consecutiveFailures} failures (retry in ${Math.ceil(st.breaker.retryInMs(nowMs) / 1000)} s)`
      : undefined;
  if (why)
    throw new HttpError(
      503,
      `worker ${t.id} ${why}; in direct mode the request is not sent elsewhere: retry later or name another worker (${validTargets(registry)})`,
      'server_error',
      'worker_unavailable',
    );
}
