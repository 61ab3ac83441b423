/**
 * `dynamo-lab router`'s flags: the option table (`--help` is generated from it) and their
 * checks, from parsed values to one typed `RouterCliFlags`. Every mistake is a UsageError that names
 * the flag (or a UserError for an unreadable file); nothing is started here. The command itself
 * (router.ts) starts the workers and the server from the result.
 *
 * Over 400 lines on purpose: some 160 of them are the option table, whose descriptions are the
 * --help text; the checks read top to bottom in the order a mistake is reported.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { OptionSpec, ParsedValues } from '../command.js';
import { UsageError, UserError } from '../../base/errors.js';
import type { BusyThresholds, EventSourceKind } from '../../server/router-server.js';
import { parseWorkerSpec, parseZmqEventsFlag, WorkerSpecError, type WorkerSpec } from '../../server/worker-spec.js';
import {
  configFromFlags,
  parsePolicyConfig,
  PolicyConfigError,
  ROUTING_MODES,
  type KvRouterConfig,
  type RoutingMode,
} from '../../router/index.js';

export const ROUTER_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  sim: { type: 'string', valueName: 'n', description: 'Start n simulated workers in this process' },
  worker: {
    type: 'string',
    valueName: 'url|spec',
    multiple: true,
    description:
      'A worker: its OpenAI base URL, or id=NAME,url=URL[,zmq=tcp://h:p][,replay=tcp://h:p][,worker_id=N][,kv_blocks=N][,max_num_batched_tokens=N][,device=cpu|cuda] (repeatable). worker_id is the Dynamo instance id its NATS KV events carry (and a name direct mode accepts); device is for --mode device-aware-weighted',
  },
  mode: {
    type: 'string',
    valueName: 'mode',
    default: 'kv',
    description: `Routing policy: ${ROUTING_MODES.join(', ')}. direct: each request names its worker (nvext.backend_instance_id, as Dynamo, or the x-dynamo-lab-target-worker header). device-aware-weighted: Dynamo's CPU / non-CPU budget (device=cpu in --worker; ratio from DYN_ENCODER_CUDA_TO_CPU_RATIO, default 8), least in-flight within the class`,
  },
  host: { type: 'string', valueName: 'addr', default: '127.0.0.1', description: 'Address to listen on' },
  port: { type: 'string', valueName: 'port', default: '8000', description: 'Port to listen on (0 = any free port)' },
  events: {
    type: 'string',
    valueName: 'source',
    description:
      'KV events: inproc (default with --sim), zmq (per-worker zmq=/replay=, or simulated workers publishing on ZMQ), zmq://host:port[+replayport][,..] (one per --worker, in order), nats://host:port (Dynamo event plane), none (approximate mode: the router remembers its own decisions for 120 s)',
  },
  'nats-namespace': {
    type: 'string',
    valueName: 'ns',
    default: 'dynamo',
    description: 'Dynamo namespace of the NATS subject namespace.{ns}.component.{comp}.kv-events',
  },
  'nats-component': { type: 'string', valueName: 'comp', default: 'backend', description: 'Dynamo component of the NATS subject' },
  'block-size': { type: 'string', valueName: 'n', default: '16', description: 'KV block size in tokens; must match the workers' },
  'kv-overlap-score-weight': {
    type: 'string',
    valueName: 'w',
    description: 'Legacy Dynamo weight (maps to the prefill load scale; 0 disables cache credit)',
  },
  'router-temperature': {
    type: 'string',
    valueName: 't',
    description: 'Softmax temperature over worker costs (0 = always the cheapest)',
  },
  'router-policy-config': {
    type: 'string',
    valueName: 'yaml',
    description:
      "Dynamo 1.6's policy file: worker_selection with one dynamo-default-cost-fn instance whose parameters (overlap_score_credit, overlap_score_credit_decay, prefill_load_scale, decode_active_request_weight, router_temperature, host_cache_hit_weight, disk_cache_hit_weight) set the cost; the same file Dynamo's frontend takes (flags given on the command line win)",
  },
  'router-host-cache-hit-weight': {
    type: 'string',
    valueName: 'w',
    description:
      'Credit (0-1, default 0.75) per host-pinned (CPU offload) block continuing the GPU prefix overlap, when KV events carry a storage tier / medium',
  },
  'router-disk-cache-hit-weight': {
    type: 'string',
    valueName: 'w',
    description: 'Credit (0-1, default 0.25) per disk / external-tier block continuing the GPU and host overlap',
  },
  'router-ttl-secs': {
    type: 'string',
    valueName: 's',
    description: 'With --events none: how long a routed prompt counts as cached (default 120, as Dynamo)',
  },
  'router-approximate-cache-policy': {
    type: 'string',
    valueName: 'ttl|lru',
    description:
      "With --events none: ttl (default) forgets routed blocks after --router-ttl-secs; lru keeps each worker's KV capacity (kv_blocks=, default 16384) and drops the least recently routed",
  },
  'router-queue-threshold': {
    type: 'string',
    valueName: 'frac',
    description:
      'Queue requests in the router (instead of sending them) while every worker has more than frac * max_num_batched_tokens of active prefill (Dynamo; unset = no queue)',
  },
  'router-queue-max': {
    type: 'string',
    valueName: 'n',
    default: '1024',
    description: 'With --router-queue-threshold: at most n requests wait; beyond that they get 529',
  },
  'active-decode-blocks-threshold': {
    type: 'string',
    valueName: 'frac',
    description: "Busy when active KV blocks exceed this fraction (0-1) of the worker's blocks (kv_blocks=, default 16384)",
  },
  'active-prefill-tokens-threshold': { type: 'string', valueName: 'n', description: 'Busy when active prefill tokens exceed n' },
  'active-prefill-tokens-threshold-frac': {
    type: 'string',
    valueName: 'x',
    description: 'Busy when active prefill tokens exceed x * max_num_batched_tokens (default 8192)',
  },
  'router-replica-sync': {
    type: 'boolean',
    description:
      "Share active-sequence bookings and session bindings with the other router replicas in front of the same workers over NATS (Dynamo's ActiveSequenceEvent on namespace.{ns}.component.{comp}.active_sequences_events); a late replica catches up from its peers, a dead one's bookings expire",
  },
  nats: {
    type: 'string',
    valueName: 'nats://host:port',
    description: 'NATS server(s) for --router-replica-sync (default: the --events nats:// server, else nats://127.0.0.1:4222)',
  },
  'dynamo-direct': {
    type: 'boolean',
    description:
      "The --worker urls are a Dynamo frontend started with --router-mode direct (a gateway to Dynamo's request plane, e.g. in front of mocker workers): each request names the chosen worker in nvext.backend_instance_id (its worker_id=), so the frontend sends it there without choosing again",
  },
  'router-session-affinity-ttl-secs': {
    type: 'string',
    valueName: 's',
    default: '600',
    description: 'How long X-Dynamo-Session-ID / x-dynamo-lab-session pins a session to its worker (0 = off)',
  },
  'health-interval': {
    type: 'string',
    valueName: 's',
    default: '2',
    description: 'Seconds between GET /health checks of each worker (0 = no active checks)',
  },
  'api-key': {
    type: 'string',
    valueName: 'key',
    description:
      'Require `Authorization: Bearer <key>` on every endpoint but /health and /metrics (prefer DYNAMO_LAB_API_KEY or --api-key-file: a flag shows in the process list)',
  },
  'api-key-file': { type: 'string', valueName: 'path', description: 'Read the API key from this file (first line)' },
  'decision-history': {
    type: 'string',
    valueName: 'n',
    default: '256',
    description: 'Routing decisions kept for /debug/decisions and the dashboard',
  },
  'max-sessions': {
    type: 'string',
    valueName: 'n',
    default: '100000',
    description: 'Session-affinity entries kept (least recently used dropped first)',
  },
  'max-body-bytes': {
    type: 'string',
    valueName: 'n',
    default: '8388608',
    description: 'Largest request body (and so prompt) accepted; larger ones get 413',
  },
  seed: { type: 'string', valueName: 'n', description: 'Seed for tie-breaks and sampling (reproducible choices)' },
  speedup: { type: 'string', valueName: 'x', description: 'With --sim: divide simulated pass times by x (0 = no delays)' },
  discover: {
    type: 'string',
    valueName: 'selector',
    description:
      'Route to the Ready pods matching this label selector (current kube context and --namespace): port-forwards their OpenAI port and ZMQ KV-event port; KV events default to zmq',
  },
  'in-cluster': {
    type: 'boolean',
    description:
      'With --discover, when the router runs inside the cluster: reach the pods at their pod IPs (container ports named http and kv-events, else --discover-ports), no port-forwards; re-list the pods every --discover-interval seconds and add / remove workers',
  },
  'discover-interval': { type: 'string', valueName: 's', default: '5', description: 'With --in-cluster: seconds between pod listings' },
  'discover-ports': {
    type: 'string',
    valueName: 'http,zmq',
    default: '8000,5557',
    description: 'Pod ports --discover forwards: the OpenAI server, then the ZMQ KV-event publisher',
  },
  tokenizer: {
    type: 'string',
    valueName: 'dir|tokenizer.json',
    description:
      "The model's HF tokenizer (a directory with tokenizer.json + tokenizer_config.json chat template, or the tokenizer.json); default: the bundled Qwen tokenizer and ChatML template. Must match the workers'",
  },
  'max-prompt-tokens': {
    type: 'string',
    valueName: 'n',
    description: 'Reject longer prompts with 400 context_length_exceeded (default: no limit here; workers check their own)',
  },
};

/** What the router command starts, checked. */
export interface RouterCliFlags {
  readonly mode: RoutingMode;
  readonly host: string;
  readonly port: number;
  readonly blockSize: number;
  /** --sim: this many simulated workers in this process. */
  readonly sim?: number;
  /** --worker specs (with their --events zmq:// endpoints merged in). */
  readonly specs: WorkerSpec[];
  /** --discover label selector, and the pod ports [http, zmq] it reaches. */
  readonly discover?: string;
  readonly discoverPorts: number[];
  readonly inCluster: boolean;
  readonly discoverInterval: number;
  readonly events: EventsChoice;
  readonly natsNamespace: string;
  readonly natsComponent: string;
  readonly config: KvRouterConfig;
  readonly queue?: { threshold: number; maxQueued: number };
  /** DYN_ENCODER_CUDA_TO_CPU_RATIO, for --mode device-aware-weighted. */
  readonly nonCpuToCpuRatio?: number;
  readonly busy?: BusyThresholds;
  readonly sessionAffinityTtlS: number;
  readonly healthIntervalS: number;
  readonly decisionHistory: number;
  readonly maxSessions: number;
  readonly maxBodyBytes: number;
  readonly apiKey?: string;
  readonly replicaSync?: string[];
  /** --dynamo-direct: the workers sit behind a Dynamo frontend in --router-mode direct. */
  readonly dynamoDirect: boolean;
  readonly speedup?: number;
  readonly seed?: number;
  readonly maxPromptTokens?: number;
  readonly tokenizer?: string;
  /** Accepted but probably not what the person meant (printed as warnings). */
  readonly warnings: string[];
}

export async function parseRouterFlags(values: ParsedValues, env: NodeJS.ProcessEnv): Promise<RouterCliFlags> {
  const mode = values.mode as RoutingMode;
  if (!ROUTING_MODES.includes(mode)) throw new UsageError(`--mode must be one of ${ROUTING_MODES.join(', ')}, not "${mode}".`);
  const sim = intFlag(values, 'sim', 1, 64);
  const rawWorkers = (values.worker as string[] | undefined) ?? [];
  const discover = values.discover as string | undefined;
  const sources = [sim !== undefined, rawWorkers.length > 0, discover !== undefined].filter(Boolean).length;
  if (sources === 0)
    throw new UsageError(
      'the router needs workers.',
      'Pass --sim <n> for simulated workers, --worker <url> (repeatable) for real ones, or --discover <label-selector> for pods on a cluster.',
    );
  if (sources > 1) throw new UsageError('use one of --sim, --worker or --discover.');
  const discoverPorts = String(values['discover-ports']).split(',').map(Number);
  if (discover !== undefined && (discoverPorts.length !== 2 || !discoverPorts.every((n) => Number.isInteger(n) && n > 0 && n < 65536))) {
    throw new UsageError(`--discover-ports must be two ports "http,zmq", not "${String(values['discover-ports'])}".`);
  }
  let specs: WorkerSpec[];
  try {
    specs = rawWorkers.map((w) => parseWorkerSpec(w));
  } catch (err) {
    if (err instanceof WorkerSpecError)
      throw new UsageError(
        `--worker: ${err.message}.`,
        'Give a base URL such as http://10.0.0.5:8000, or id=a,url=http://10.0.0.5:8000,zmq=tcp://10.0.0.5:5557',
      );
    throw err;
  }
  const events = parseEvents(
    (values.events as string | undefined) ?? (discover !== undefined ? 'zmq' : undefined),
    sim !== undefined,
    specs,
  );
  if (discover !== undefined && events.kind !== 'zmq' && events.kind !== 'none')
    throw new UsageError(
      "with --discover, KV events come from the pods' ZMQ publishers (--events zmq, the default) or not at all (--events none).",
    );
  if (discover !== undefined && events.zmq)
    throw new UsageError('with --discover the ZMQ endpoints are the forwarded pod ports; use --events zmq.');
  if (events.kind === 'inproc' && sim === undefined)
    throw new UsageError('--events inproc needs --sim: only simulated workers in this process can hand over events in-process.');
  if (events.zmq) {
    if (sim !== undefined) throw new UsageError("--events zmq://... lists real workers' endpoints; with --sim use --events zmq.");
    if (events.zmq.length !== specs.length)
      throw new UsageError(
        `--events lists ${events.zmq.length} ZMQ endpoint(s) for ${specs.length} --worker(s); give one per worker, in the same order.`,
      );
    specs = specs.map((s, i) => ({ ...s, ...events.zmq![i] }));
  }
  if (events.kind === 'zmq' && sim === undefined && discover === undefined && !specs.some((s) => s.zmq))
    throw new UsageError(
      '--events zmq needs ZMQ endpoints.',
      'Add zmq=tcp://host:port to each --worker, or use --events zmq://host:port,...',
    );
  const blockSize = intFlag(values, 'block-size', 1)!;
  const port = numberFlag(values, 'port', (n) => Number.isInteger(n) && n >= 0 && n < 65536, 'a port number')!;
  let policy: ReturnType<typeof parsePolicyConfig> = {};
  const policyPath = values['router-policy-config'] as string | undefined;
  if (policyPath !== undefined) {
    let text: string;
    try {
      text = await readFile(policyPath, 'utf8');
    } catch (err) {
      throw new UserError(
        `cannot read --router-policy-config ${policyPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        'Give the path of a YAML file.',
      );
    }
    try {
      policy = parsePolicyConfig(text, policyPath);
    } catch (err) {
      if (err instanceof PolicyConfigError) throw new UserError(err.message, err.hint);
      throw err;
    }
  }
  const acp = values['router-approximate-cache-policy'] as string | undefined;
  if (acp !== undefined && acp !== 'ttl' && acp !== 'lru')
    throw new UsageError(`--router-approximate-cache-policy must be ttl or lru, not "${acp}".`);
  const ttlSecs = numberFlag(values, 'router-ttl-secs', (n) => n > 0, 'seconds > 0');
  if ((acp !== undefined || ttlSecs !== undefined) && values.events !== 'none')
    throw new UsageError(
      '--router-ttl-secs and --router-approximate-cache-policy apply to approximate mode.',
      'Add --events none (the router then predicts the caches from its own decisions).',
    );
  const config = configFromFlags({
    ...policy,
    kvOverlapScoreWeight: numberFlag(values, 'kv-overlap-score-weight', (n) => n >= 0, 'a number >= 0'),
    temperature: numberFlag(values, 'router-temperature', (n) => n >= 0, 'a number >= 0') ?? policy.temperature,
    hostCacheHitWeight:
      numberFlag(values, 'router-host-cache-hit-weight', (n) => n >= 0 && n <= 1, 'a number from 0 to 1') ?? policy.hostCacheHitWeight,
    diskCacheHitWeight:
      numberFlag(values, 'router-disk-cache-hit-weight', (n) => n >= 0 && n <= 1, 'a number from 0 to 1') ?? policy.diskCacheHitWeight,
    ttlSecs,
    approximateCachePolicy: acp,
  });
  // Dynamo reads the device-aware ratio from this environment variable (integer >= 1, default 8).
  const ratioEnv = env.DYN_ENCODER_CUDA_TO_CPU_RATIO;
  let nonCpuToCpuRatio: number | undefined;
  if (ratioEnv !== undefined && ratioEnv !== '') {
    nonCpuToCpuRatio = Number(ratioEnv);
    if (!Number.isInteger(nonCpuToCpuRatio) || nonCpuToCpuRatio < 1)
      throw new UsageError(`DYN_ENCODER_CUDA_TO_CPU_RATIO must be a whole number >= 1, not "${ratioEnv}".`);
  }
  const queueThreshold = numberFlag(values, 'router-queue-threshold', (n) => n >= 0, 'a number >= 0');
  const queueMax = intFlag(values, 'router-queue-max', 0)!;
  if (events.kind === 'none') config.useKvEvents = false;
  const busy = {
    activeDecodeBlocksThreshold: numberFlag(values, 'active-decode-blocks-threshold', (n) => n >= 0 && n <= 1, 'a fraction from 0 to 1'),
    activePrefillTokensThreshold: intFlag(values, 'active-prefill-tokens-threshold', 0),
    activePrefillTokensThresholdFrac: numberFlag(values, 'active-prefill-tokens-threshold-frac', (n) => n >= 0, 'a number >= 0'),
  };
  const anyBusy = Object.values(busy).some((v) => v !== undefined);
  const ttl = numberFlag(values, 'router-session-affinity-ttl-secs', (n) => n >= 0 && n <= 31_536_000, 'seconds from 0 to 31536000')!;
  const healthInterval = numberFlag(values, 'health-interval', (n) => n >= 0, 'seconds >= 0')!;
  const decisionHistory = intFlag(values, 'decision-history', 1, 100_000)!;
  const maxSessions = intFlag(values, 'max-sessions', 1, 10_000_000)!;
  const maxBody = numberFlag(values, 'max-body-bytes', (n) => Number.isInteger(n) && n >= 1024, 'a whole number of bytes >= 1024')!;
  const apiKey = readApiKey(values['api-key'] as string | undefined, values['api-key-file'] as string | undefined, env);
  const inCluster = values['in-cluster'] === true;
  if (inCluster && discover === undefined) throw new UsageError('--in-cluster goes with --discover <label-selector>.');
  const discoverInterval = numberFlag(values, 'discover-interval', (n) => n >= 0.1 && n <= 3600, 'seconds from 0.1 to 3600') ?? 5;
  let replicaSync: string[] | undefined;
  if (values.nats !== undefined && values['router-replica-sync'] !== true)
    throw new UsageError(
      '--nats is the server for --router-replica-sync.',
      'Add --router-replica-sync, or give KV events with --events nats://host:port.',
    );
  if (values['router-replica-sync'] === true) {
    const raw = (values.nats as string | undefined) ?? events.nats?.join(',') ?? 'nats://127.0.0.1:4222';
    replicaSync = raw.split(',').map((x) => (x.startsWith('nats://') ? x : `nats://${x}`));
    for (const x of replicaSync) if (!/^nats:\/\/[^/:]+:\d{1,5}$/.test(x)) throw new UsageError(`--nats: "${x}" is not nats://host:port.`);
  }
  const speedup = numberFlag(values, 'speedup', (n) => n >= 0, 'a number >= 0');
  if (speedup !== undefined && sim === undefined) throw new UsageError('--speedup applies to simulated workers (--sim).');
  const dynamoDirect = values['dynamo-direct'] === true;
  if (dynamoDirect) {
    if (sim !== undefined || discover !== undefined)
      throw new UsageError(
        '--dynamo-direct goes with --worker specs (the workers behind a Dynamo frontend in --router-mode direct), not --sim or --discover.',
      );
    const missing = specs.filter((s) => s.dynamoWorkerId === undefined);
    if (missing.length)
      throw new UsageError(
        `--dynamo-direct needs worker_id=<Dynamo instance id> on every --worker; ${missing.map((s) => s.id ?? s.url).join(', ')} has none.`,
        "The frontend's GET /health lists the instance ids of its generate endpoints.",
      );
  }
  const warnings: string[] = [];
  if (events.kind === 'nats')
    for (const s of specs)
      if (s.dynamoWorkerId === undefined && !/^\d+$/.test(s.id ?? ''))
        warnings.push(
          `worker ${s.id ?? s.url} has no worker_id=: its NATS KV events cannot be matched (add worker_id=<Dynamo instance id> to its --worker spec)`,
        );
  return {
    mode,
    nonCpuToCpuRatio,
    host: values.host as string,
    port,
    blockSize,
    sim,
    specs,
    discover,
    discoverPorts,
    inCluster,
    discoverInterval,
    events,
    natsNamespace: values['nats-namespace'] as string,
    natsComponent: values['nats-component'] as string,
    config,
    queue: queueThreshold !== undefined ? { threshold: queueThreshold, maxQueued: queueMax } : undefined,
    busy: anyBusy ? busy : undefined,
    sessionAffinityTtlS: ttl,
    healthIntervalS: healthInterval,
    decisionHistory,
    maxSessions,
    maxBodyBytes: maxBody,
    apiKey,
    replicaSync,
    dynamoDirect,
    speedup,
    seed: values.seed !== undefined ? Number(values.seed) : undefined,
    maxPromptTokens: intFlag(values, 'max-prompt-tokens', 1),
    tokenizer: values.tokenizer as string | undefined,
    warnings,
  };
}

function numberFlag(values: Record<string, unknown>, name: string, check: (n: number) => boolean, what: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} must be ${what}, got "${String(raw)}".`);
  return n;
}

/** A whole-number flag from `min` (to `max`), or undefined when not given. */
function intFlag(values: Record<string, unknown>, name: string, min: number, max?: number): number | undefined {
  return numberFlag(
    values,
    name,
    (n) => Number.isInteger(n) && n >= min && (max === undefined || n <= max),
    max === undefined ? `a whole number >= ${min}` : `a whole number from ${min} to ${max}`,
  );
}

/** Where KV events come from (--events). */
export interface EventsChoice {
  kind: EventSourceKind;
  zmq?: Array<{ zmq: string; replay?: string }>;
  nats?: string[];
}

function parseEvents(raw: string | undefined, sim: boolean, specs: WorkerSpec[]): EventsChoice {
  if (raw === undefined) {
    if (sim) return { kind: 'inproc' };
    return { kind: specs.some((s) => s.zmq) ? 'zmq' : 'none' };
  }
  if (raw === 'inproc' || raw === 'none') return { kind: raw };
  if (raw === 'zmq') return { kind: 'zmq' };
  if (raw.startsWith('zmq://')) {
    try {
      return { kind: 'zmq', zmq: parseZmqEventsFlag(raw) };
    } catch (err) {
      throw new UsageError(
        `--events: ${(err as Error).message}.`,
        'Use --events zmq://host:port[+replayport][,host:port...] with one endpoint per --worker.',
      );
    }
  }
  if (raw.startsWith('nats://')) {
    const servers = raw.split(',').map((s) => (s.startsWith('nats://') ? s : `nats://${s}`));
    for (const s of servers) if (!/^nats:\/\/[^/:]+:\d{1,5}$/.test(s)) throw new UsageError(`--events: "${s}" is not nats://host:port.`);
    return { kind: 'nats', nats: servers };
  }
  throw new UsageError(`--events must be inproc, none, zmq, zmq://host:port[,..] or nats://host:port, not "${raw}".`);
}

/** The API key from --api-key, --api-key-file or DYNAMO_LAB_API_KEY (never printed). */
function readApiKey(flag: string | undefined, file: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (flag !== undefined && file !== undefined) throw new UsageError('give the API key once: --api-key or --api-key-file, not both.');
  let key = flag;
  if (file !== undefined) {
    try {
      key = readFileSync(file, 'utf8').split(/\r?\n/)[0]!.trim();
    } catch (err) {
      throw new UserError(
        `cannot read --api-key-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        'Give a readable file whose first line is the key.',
      );
    }
    if (!key) throw new UsageError(`--api-key-file ${file} is empty: its first line must be the key.`);
  }
  key ??= env.DYNAMO_LAB_API_KEY || undefined;
  if (key !== undefined && key.length === 0) throw new UsageError('--api-key is empty.');
  return key;
}
