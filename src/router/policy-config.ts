/**
 * `--router-policy-config <yaml>`: the router's cost parameters in the file Dynamo 1.6's frontend
 * takes (dynamo-1.6.1-frontend-help.txt: the deprecated flags `--router-kv-overlap-score-credit` …
 * say "use <name> in the default policy parameters in --router-policy-config"), so one file can
 * be given to both. The layout, as the ai-dynamo 1.6.1 frontend checks it (its start-up errors,
 * tried in the peers venv):
 *
 *   worker_selection:
 *     aggregated: mine                 # or decode: / prefill: — which instance serves which workers
 *     instances:
 *       - name: mine                   # "default" is reserved for Dynamo's built-in selector
 *         type: dynamo-default-cost-fn # Dynamo's cost function; the other linked types
 *         parameters:                  # (dynamo-two-tier-cost-fn, thunderagent) are not this router
 *           overlap_score_credit: 1.0          # credit per device-overlap block (>= 0)
 *           overlap_score_credit_decay: 0.0    # 1 halves the credit at one request's worth of
 *                                              # excess active prefill over the least-loaded worker
 *           prefill_load_scale: 1.0            # scale of the adjusted prefill blocks (>= 0)
 *           decode_active_request_weight: 0.0  # block-equivalent cost per active request (>= 0)
 *           router_temperature: 0.0            # softmax temperature, 0 = argmin (>= 0)
 *           host_cache_hit_weight: 0.75        # credit per host-pinned (CPU offload) block
 *           disk_cache_hit_weight: 0.25        # credit per disk / external block
 *
 * dynamo-lab's router is one aggregated selector: it takes the parameters of the instance named by
 * `aggregated` (else `decode`, else `prefill`). The flat form (the parameters at the top level) is
 * also read, as dynamo-lab's shorthand: Dynamo 1.6.1 refuses it ("unknown field
 * `overlap_score_credit`"). Dynamo's other top-level keys (policy classes, queueing per class,
 * request classifier, per-model sections) and the `shared_cache_multiplier` parameter are refused
 * by name rather than ignored; any other key is an error naming the key and the accepted ones.
 *
 * Pure: text in, flags out (the caller reads the file).
 */
import { parseDocument } from 'yaml';
import type { RouterFlags } from './selector.js';

export const POLICY_CONFIG_KEYS = {
  overlap_score_credit: 'overlapScoreCredit',
  overlap_score_credit_decay: 'overlapScoreCreditDecay',
  prefill_load_scale: 'prefillLoadScale',
  decode_active_request_weight: 'decodeActiveRequestWeight',
  router_temperature: 'temperature',
  host_cache_hit_weight: 'hostCacheHitWeight',
  disk_cache_hit_weight: 'diskCacheHitWeight',
} as const satisfies Record<string, keyof RouterFlags>;

export type PolicyConfigKey = keyof typeof POLICY_CONFIG_KEYS;

/** Top-level keys of Dynamo 1.6.1's file that this router does not implement. */
const DYNAMO_TOP_LEVEL = new Set([
  'router',
  'default_policy_family',
  'policy_classes',
  'uncached_isl_buckets',
  'models',
  'request_classifier',
]);
/** Dynamo's cost-function parameter this router does not implement. */
const DYNAMO_PARAMS_UNSUPPORTED = new Set(['shared_cache_multiplier']);
/** The worker-selection policy type that is Dynamo's default cost function (1.6.1). */
export const DYNAMO_COST_FN_TYPE = 'dynamo-default-cost-fn';
/** The roles a worker-selection instance can serve, in the order this (aggregated) router prefers. */
const ROLES = ['aggregated', 'decode', 'prefill'] as const;

export class PolicyConfigError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'PolicyConfigError';
  }
}

const ACCEPTED = Object.keys(POLICY_CONFIG_KEYS).join(', ');

type PolicyFlags = Partial<Record<(typeof POLICY_CONFIG_KEYS)[PolicyConfigKey], number>>;

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const kind = (v: unknown) => (Array.isArray(v) ? 'a list' : v === null ? 'nothing' : typeof v);

/**
 * Parse a policy-config YAML text into router flags. `source` names the file in messages.
 * Throws PolicyConfigError (message + hint) on bad YAML, a non-mapping document, an unknown
 * key, an unsupported policy type or a value that is not a finite number >= 0.
 */
export function parsePolicyConfig(text: string, source = 'policy config'): PolicyFlags {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    throw new PolicyConfigError(
      `${source}: invalid YAML${pos ? ` at line ${pos.line}, column ${pos.col}` : ''}: ${e.message.split('\n')[0]}`,
      'Check the indentation and the `key: value` pairs.',
    );
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return {};
  if (!isMapping(data)) {
    throw new PolicyConfigError(
      `${source}: expected a mapping (worker_selection: …), got ${kind(data)}`,
      `Accepted: worker_selection with an instance of type ${DYNAMO_COST_FN_TYPE}, or the parameters at the top level (${ACCEPTED}).`,
    );
  }
  if ('worker_selection' in data) {
    const rest = Object.keys(data).filter((k) => k !== 'worker_selection');
    if (rest.length) throw unsupportedTopLevel(source, rest[0]!);
    return parseParameters(selectedInstance(data.worker_selection, source), `${source}: worker_selection`, true);
  }
  return parseParameters(data, source, false);
}

function unsupportedTopLevel(source: string, key: string): PolicyConfigError {
  if (DYNAMO_TOP_LEVEL.has(key)) {
    return new PolicyConfigError(
      `${source}: "${key}" (Dynamo's ${key === 'policy_classes' ? 'policy classes' : key.replaceAll('_', ' ')}) is not supported by dynamo-lab's router`,
      `Keep worker_selection with one ${DYNAMO_COST_FN_TYPE} instance; use --router-queue-threshold for queueing.`,
    );
  }
  return new PolicyConfigError(`${source}: unknown key "${key}"`, `Accepted keys (Dynamo 1.6 names): worker_selection, or ${ACCEPTED}.`);
}

/** The parameters of the instance that serves this router's workers (aggregated, else decode, else prefill). */
function selectedInstance(ws: unknown, source: string): Record<string, unknown> {
  const where = `${source}: worker_selection`;
  const example = `For example: worker_selection: {aggregated: mine, instances: [{name: mine, type: ${DYNAMO_COST_FN_TYPE}, parameters: {prefill_load_scale: 1.0}}]}`;
  if (!isMapping(ws)) throw new PolicyConfigError(`${where} must be a mapping, got ${kind(ws)}`, example);
  for (const k of Object.keys(ws)) {
    if (k !== 'instances' && !(ROLES as readonly string[]).includes(k)) {
      throw new PolicyConfigError(`${where}: unknown key "${k}"`, `Accepted: instances, ${ROLES.join(', ')}.`);
    }
  }
  const role = ROLES.find((r) => ws[r] !== undefined);
  if (!role) throw new PolicyConfigError(`${where} names no instance for the workers (aggregated, decode or prefill)`, example);
  const name = ws[role];
  if (!Array.isArray(ws.instances)) throw new PolicyConfigError(`${where}.instances must be a list, got ${kind(ws.instances)}`, example);
  const inst = ws.instances.find((i) => isMapping(i) && i.name === name);
  if (!isMapping(inst)) {
    const names = ws.instances.map((i) => (isMapping(i) ? String(i.name) : '?')).join(', ');
    throw new PolicyConfigError(
      `${where}.${role} is "${String(name)}", which no instance is named (instances: ${names || 'none'})`,
      example,
    );
  }
  if (inst.type !== DYNAMO_COST_FN_TYPE) {
    throw new PolicyConfigError(
      `${where}: instance "${String(name)}" has type "${String(inst.type)}"; dynamo-lab's router implements only ${DYNAMO_COST_FN_TYPE} (Dynamo's default cost function)`,
      `Use type: ${DYNAMO_COST_FN_TYPE}.`,
    );
  }
  for (const k of Object.keys(inst)) {
    if (k !== 'name' && k !== 'type' && k !== 'parameters') {
      throw new PolicyConfigError(`${where}: instance "${String(name)}": unknown key "${k}"`, 'Accepted: name, type, parameters.');
    }
  }
  if (inst.parameters === undefined || inst.parameters === null) return {};
  if (!isMapping(inst.parameters)) {
    throw new PolicyConfigError(
      `${where}: instance "${String(name)}": parameters must be a mapping, got ${kind(inst.parameters)}`,
      example,
    );
  }
  return inst.parameters;
}

function parseParameters(params: Record<string, unknown>, where: string, nested: boolean): PolicyFlags {
  const out: PolicyFlags = {};
  for (const [k, v] of Object.entries(params)) {
    if (DYNAMO_PARAMS_UNSUPPORTED.has(k)) {
      throw new PolicyConfigError(`${where}: "${k}" is not supported by dynamo-lab's router`, `Accepted parameters: ${ACCEPTED}.`);
    }
    if (!(k in POLICY_CONFIG_KEYS)) {
      if (!nested) throw unsupportedTopLevel(where, k);
      throw new PolicyConfigError(`${where}: unknown parameter "${k}"`, `Accepted parameters (Dynamo 1.6 names): ${ACCEPTED}.`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new PolicyConfigError(`${where}: ${k} must be a finite number >= 0, got ${JSON.stringify(v)}`, `For example: ${k}: 1.0`);
    }
    out[POLICY_CONFIG_KEYS[k as PolicyConfigKey]] = v;
  }
  return out;
}
