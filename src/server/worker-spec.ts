/**
 * Parsing of worker specifications, shared by `dynamo-lab router --worker` and the
 * POST /admin/workers endpoint.
 *
 *   http://10.0.0.5:8000
 *   id=a,url=http://10.0.0.5:8000,zmq=tcp://10.0.0.5:5557,replay=tcp://10.0.0.5:5558,worker_id=7587889,kv_blocks=16384
 *   id=c,url=http://10.0.0.7:8000,device=cpu
 *
 * `worker_id` is the Dynamo instance id (u64, decimal or 0x hex) that the worker's RouterEvents
 * carry on the NATS event plane; it maps those events to this worker. A worker whose `id` is
 * itself a decimal u64 needs no `worker_id` (it is its own Dynamo id). `device` (cpu | cuda,
 * default cuda) is the worker's device class for `--mode device-aware-weighted`.
 */
export interface WorkerSpec {
  id?: string;
  url: string;
  /** vLLM KV-event PUB endpoint, e.g. tcp://10.0.0.5:5557 */
  zmq?: string;
  /** vLLM replay ROUTER endpoint, e.g. tcp://10.0.0.5:5558 */
  replay?: string;
  /** Dynamo worker id (u64 as a decimal string) for NATS RouterEvents. */
  dynamoWorkerId?: string;
  /** KV cache capacity in blocks (for --active-decode-blocks-threshold). */
  totalKvBlocks?: number;
  /** The engine's max_num_batched_tokens (for --active-prefill-tokens-threshold-frac). */
  maxNumBatchedTokens?: number;
  /** Device class for device-aware-weighted routing (Dynamo's DeviceType). */
  device?: 'cpu' | 'cuda';
}

const KEYS = ['id', 'url', 'zmq', 'replay', 'worker_id', 'kv_blocks', 'max_num_batched_tokens', 'device'] as const;

export class WorkerSpecError extends Error {}

function normaliseUrl(u: string, what = 'url'): string {
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new WorkerSpecError(`${what} "${u}" is not a URL (give a base URL such as http://10.0.0.5:8000)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new WorkerSpecError(`${what} "${u}" must be http:// or https://`);
  return u.replace(/\/+$/, '');
}

function normaliseZmq(e: string, what: string): string {
  const m = /^(?:tcp:\/\/|zmq:\/\/)?([^/:]+|\[[^\]]+\]):(\d{1,5})$/.exec(e.trim());
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new WorkerSpecError(`${what} "${e}" is not a ZMQ endpoint (tcp://host:port)`);
  return `tcp://${m[1]}:${m[2]}`;
}

function parseDynamoWorkerId(v: string | number | bigint): string {
  const s = String(v).trim();
  let n: bigint;
  try {
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(s)) throw new Error('bad');
    n = BigInt(s);
  } catch {
    throw new WorkerSpecError(`worker_id "${s}" is not an unsigned 64-bit integer`);
  }
  if (n < 0n || n >= 1n << 64n) throw new WorkerSpecError(`worker_id "${s}" is out of the u64 range`);
  return n.toString();
}

function positiveInt(v: unknown, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new WorkerSpecError(`${what} must be a whole number >= 1, got "${String(v)}"`);
  return n;
}

/** `URL` or `key=value,...` (keys: id, url, zmq, replay, worker_id, kv_blocks, max_num_batched_tokens, device). */
export function parseWorkerSpec(text: string): WorkerSpec {
  const t = text.trim();
  if (!t.includes('=')) return { url: normaliseUrl(t) };
  const fields: Record<string, string> = {};
  for (const part of t.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) throw new WorkerSpecError(`"${part}" in worker spec "${t}" is not key=value`);
    const k = part.slice(0, i).trim();
    if (!(KEYS as readonly string[]).includes(k))
      throw new WorkerSpecError(`unknown key "${k}" in worker spec (known: ${KEYS.join(', ')})`);
    fields[k] = part.slice(i + 1).trim();
  }
  return workerSpecFromObject(fields);
}

/** From a JSON body (admin API) or parsed key=value fields. */
export function workerSpecFromObject(o: Record<string, unknown>): WorkerSpec {
  if (typeof o.url !== 'string' || o.url === '') throw new WorkerSpecError('a worker needs a "url"');
  const spec: WorkerSpec = { url: normaliseUrl(o.url) };
  if (o.id !== undefined) {
    if (typeof o.id !== 'string' || !/^[A-Za-z0-9._:-]{1,128}$/.test(o.id))
      throw new WorkerSpecError(`worker id "${String(o.id)}" must be 1-128 characters of letters, digits, . _ : -`);
    spec.id = o.id;
  }
  if (o.zmq !== undefined) spec.zmq = normaliseZmq(String(o.zmq), 'zmq');
  if (o.replay !== undefined) spec.replay = normaliseZmq(String(o.replay), 'replay');
  if (o.worker_id !== undefined) spec.dynamoWorkerId = parseDynamoWorkerId(o.worker_id as string);
  if (o.kv_blocks !== undefined) spec.totalKvBlocks = positiveInt(o.kv_blocks, 'kv_blocks');
  if (o.max_num_batched_tokens !== undefined) spec.maxNumBatchedTokens = positiveInt(o.max_num_batched_tokens, 'max_num_batched_tokens');
  if (o.device !== undefined) {
    const d = String(o.device).toLowerCase();
    if (d !== 'cpu' && d !== 'cuda') throw new WorkerSpecError(`device must be cpu or cuda, got "${String(o.device)}"`);
    spec.device = d;
  }
  if (spec.replay && !spec.zmq) throw new WorkerSpecError('replay= needs zmq= (the PUB endpoint) too');
  return spec;
}

/**
 * `--events zmq://host:port[+replayport][,host:port[+replayport]...]`: PUB endpoints (and optional
 * replay ports on the same host), one per worker in --worker order.
 */
export function parseZmqEventsFlag(value: string): Array<{ zmq: string; replay?: string }> {
  const rest = value.replace(/^zmq:\/\//, '');
  if (rest === '') return [];
  return rest.split(',').map((item) => {
    const m = /^(.+):(\d{1,5})(?:\+(\d{1,5}))?$/.exec(item.trim().replace(/^(?:zmq|tcp):\/\//, ''));
    if (!m) throw new WorkerSpecError(`"${item}" in --events is not host:port or host:port+replayport`);
    return { zmq: normaliseZmq(`${m[1]}:${m[2]}`, 'zmq'), ...(m[3] ? { replay: normaliseZmq(`${m[1]}:${m[3]}`, 'replay') } : {}) };
  });
}
