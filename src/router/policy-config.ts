/**
 * `--router-policy-config <yaml>`: the router's cost parameters under Dynamo 1.6's names, so
 * one file can be given to both (dynamo-1.6.1-frontend-help.txt: the deprecated flags
 * `--router-kv-overlap-score-credit` … say "use <name> in the default policy parameters in
 * --router-policy-config").
 *
 * Accepted (a YAML mapping at the top level):
 *
 *   overlap_score_credit: 1.0          # credit per device-overlap block (>= 0)
 *   overlap_score_credit_decay: 0.0    # 1 halves the credit at one request's worth of excess
 *                                      # active prefill over the least-loaded eligible worker
 *   prefill_load_scale: 1.0            # scale of the adjusted prefill blocks (>= 0)
 *   decode_active_request_weight: 0.0  # block-equivalent cost per active request (>= 0)
 *   router_temperature: 0.0            # softmax temperature, 0 = argmin (>= 0)
 *   host_cache_hit_weight: 0.75        # credit per host-pinned (CPU offload) block continuing
 *                                      # the device overlap (>= 0; needs KV events with tiers)
 *   disk_cache_hit_weight: 0.25        # credit per disk / external block beyond device + host
 *
 * Dynamo's file also carries policy classes (`policy_classes[]`, queueing per class) and named
 * worker-selection instances (`worker_selection.prefill/decode`); their layout is not in the
 * references this project works from, so those keys are refused with a message rather than
 * guessed. Any other key is an error naming the key and the accepted ones.
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

/** Keys of Dynamo's file whose layout is not documented in this project's references. */
const KNOWN_UNSUPPORTED = new Set(['policy_classes', 'worker_selection']);

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

/**
 * Parse a policy-config YAML text into router flags. `source` names the file in messages.
 * Throws PolicyConfigError (message + hint) on bad YAML, a non-mapping document, an unknown
 * key or a value that is not a finite number >= 0.
 */
export function parsePolicyConfig(
  text: string,
  source = 'policy config',
): Partial<Record<(typeof POLICY_CONFIG_KEYS)[PolicyConfigKey], number>> {
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
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new PolicyConfigError(
      `${source}: expected a mapping of parameter names to numbers, got ${Array.isArray(data) ? 'a list' : typeof data}`,
      `Accepted keys: ${ACCEPTED}.`,
    );
  }
  const out: Partial<Record<(typeof POLICY_CONFIG_KEYS)[PolicyConfigKey], number>> = {};
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (KNOWN_UNSUPPORTED.has(k)) {
      throw new PolicyConfigError(
        `${source}: "${k}" (Dynamo's policy classes / worker-selection instances) is not supported by dynamo-lab`,
        `Keep only the default policy parameters: ${ACCEPTED}; use --router-queue-threshold for queueing.`,
      );
    }
    if (!(k in POLICY_CONFIG_KEYS)) {
      throw new PolicyConfigError(`${source}: unknown key "${k}"`, `Accepted keys (Dynamo 1.6 names): ${ACCEPTED}.`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new PolicyConfigError(`${source}: ${k} must be a finite number >= 0, got ${JSON.stringify(v)}`, `For example: ${k}: 1.0`);
    }
    out[POLICY_CONFIG_KEYS[k as PolicyConfigKey]] = v;
  }
  return out;
}
