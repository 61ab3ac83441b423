/**
 * (c) vLLM ZMQ batches: `[ts, events, dp_rank]` or `{ts, events, data_parallel_rank}`; events as
 *     msgspec tagged arrays (["BlockStored", block_hashes, parent_block_hash, token_ids,
 *     block_size, lora_id, medium, lora_name, extra_keys, group_idx, kv_cache_spec_kind,
 *     kv_cache_spec_sliding_window, locality, ownership, session_id]) or maps with "type".
 *     `tokens_hash` is recomputed from `token_ids` (LoRA name as salt); hashes may be signed i64
 *     (cast to u64); the event's block size must equal the worker's.
 */
import { computeBlockHashPairs } from '../hashing.js';
import { storedFromPairs, type KvCacheEventData, type RouterEvent, type StorageTier, type WorkerId } from '../types.js';
import { toPairs } from '../u64.js';
import type { DecodeResult, DroppedEvent } from './types.js';
import { decodeMsgpack, describe, isObj, toHashList, toSafeInt, toU64 } from './values.js';
import { decodeVllmBatchFast } from './vllm-fast.js';
import { mediumToTier, NON_MAIN_ATTENTION, REMOVED_ORDER, STORED_ORDER } from './vllm-fields.js';

export { mediumToTier };

interface VllmFields {
  type: string;
  block_hashes?: unknown;
  parent_block_hash?: unknown;
  token_ids?: unknown;
  block_size?: unknown;
  medium?: unknown;
  lora_name?: unknown;
  group_idx?: unknown;
  kv_cache_spec_kind?: unknown;
  locality?: unknown;
}

function vllmFields(ev: unknown): VllmFields | string {
  if (Array.isArray(ev)) {
    const tag = ev[0];
    if (typeof tag !== 'string') return 'tagged array without a string tag';
    const order = tag === 'BlockStored' ? STORED_ORDER : tag === 'BlockRemoved' ? REMOVED_ORDER : [];
    const f: Record<string, unknown> = { type: tag };
    for (let i = 0; i < order.length && i + 1 < ev.length; i++) f[order[i]!] = ev[i + 1];
    return f as unknown as VllmFields;
  }
  if (isObj(ev)) {
    if (typeof ev.type !== 'string') return 'event map without "type"';
    return ev as unknown as VllmFields;
  }
  return 'event is neither a tagged array nor a map';
}

/**
 * Decode one vLLM KV-event batch (the msgpack payload frame) into RouterEvents for `workerId`.
 * Accepted events get consecutive ids from `eventIdStart` (default 0); `nextEventId` is returned.
 * Per-event problems drop that event (listed in `dropped`); a block-size mismatch drops that
 * event and the rest of the batch (Dynamo stops converting the batch there).
 */
export function decodeVllmZmqBatch(
  payload: Uint8Array,
  opts: { workerId: WorkerId; blockSize: number; eventIdStart?: number; generic?: boolean },
): DecodeResult {
  try {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1)
      return { ok: false, reason: `invalid expected block size ${opts.blockSize}` };
    // The common case straight off the bytes (vllm-fast.ts); anything else below. `generic` skips
    // the fast path (the test that compares the two).
    const fast = opts.generic ? undefined : decodeVllmBatchFast(payload, opts);
    if (fast) return fast;
    const d = decodeMsgpack(payload);
    if (!d.ok) return d;
    const v = d.value;
    let rawEvents: unknown;
    let rawRank: unknown;
    if (Array.isArray(v)) {
      if (v.length < 2) return { ok: false, reason: 'batch array must be [ts, events, dp_rank?]' };
      rawEvents = v[1];
      rawRank = v[2];
    } else if (isObj(v)) {
      rawEvents = v.events;
      rawRank = v.data_parallel_rank ?? v.dp_rank;
    } else return { ok: false, reason: 'batch is neither an array nor a map' };
    if (!Array.isArray(rawEvents)) return { ok: false, reason: 'batch events is not a list' };
    let dpRank = 0;
    if (rawRank !== undefined && rawRank !== null) {
      const r = toSafeInt(rawRank);
      if (r === undefined || r < 0) return { ok: false, reason: 'batch data_parallel_rank invalid' };
      dpRank = r;
    }
    const bs = opts.blockSize;
    let nextId = opts.eventIdStart ?? 0;
    const events: RouterEvent[] = [];
    const dropped: DroppedEvent[] = [];
    const push = (storageTier: StorageTier, data: KvCacheEventData) => {
      events.push({ workerId: opts.workerId, dpRank, eventId: nextId++, storageTier, data });
    };
    for (let i = 0; i < rawEvents.length; i++) {
      const f = vllmFields(rawEvents[i]);
      if (typeof f === 'string') {
        dropped.push({ index: i, reason: f });
        continue;
      }
      if (f.locality !== undefined && f.locality !== null) {
        const loc = typeof f.locality === 'string' ? f.locality.toUpperCase() : '';
        if (loc !== 'LOCAL' && loc !== 'DEVICE' && loc !== 'GPU') {
          dropped.push({ index: i, reason: `locality ${JSON.stringify(f.locality)} is not local` });
          continue;
        }
      }
      if (f.group_idx !== undefined && f.group_idx !== null && toSafeInt(f.group_idx) !== 0) {
        dropped.push({ index: i, reason: `cache group ${String(f.group_idx)} is not the main attention group` });
        continue;
      }
      if (typeof f.kv_cache_spec_kind === 'string' && NON_MAIN_ATTENTION.test(f.kv_cache_spec_kind)) {
        dropped.push({ index: i, reason: `kv cache spec ${f.kv_cache_spec_kind} is not main attention` });
        continue;
      }
      if (f.type === 'AllBlocksCleared') {
        push('device', { type: 'cleared' });
        continue;
      }
      if (f.type !== 'BlockStored' && f.type !== 'BlockRemoved') {
        dropped.push({ index: i, reason: `unknown event type ${JSON.stringify(f.type)}` });
        continue;
      }
      const tier = mediumToTier(f.medium);
      if (!tier) {
        dropped.push({ index: i, reason: `unknown medium ${JSON.stringify(String(f.medium))}` });
        continue;
      }
      const hashes = toHashList(f.block_hashes);
      if (!hashes) {
        dropped.push({ index: i, reason: 'block_hashes is not a list of 64-bit integers' });
        continue;
      }
      if (f.type === 'BlockRemoved') {
        push(tier, { type: 'removed', blockHashes: hashes });
        continue;
      }
      // BlockStored
      const eventBs = toSafeInt(f.block_size);
      if (eventBs !== bs) {
        for (let k = i; k < rawEvents.length; k++) {
          dropped.push({
            index: k,
            reason: k === i ? `block_size ${String(f.block_size)} does not match the worker's ${bs}` : 'after a block_size mismatch',
          });
        }
        break;
      }
      let parentHash: bigint | null = null;
      if (f.parent_block_hash !== null && f.parent_block_hash !== undefined) {
        const p = toU64(f.parent_block_hash);
        if (p === undefined) {
          dropped.push({ index: i, reason: 'parent_block_hash is not a 64-bit integer' });
          continue;
        }
        parentHash = p;
      }
      const toks = f.token_ids;
      if (
        !Array.isArray(toks) ||
        toks.length !== hashes.length * bs ||
        !toks.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0 && t <= 0xffffffff)
      ) {
        dropped.push({ index: i, reason: `token_ids must be ${hashes.length * bs} u32 token ids (block_hashes x block_size)` });
        continue;
      }
      // Duplicate hashes (the parent included): Dynamo turns the event into an empty Removed.
      const seen = new Set<bigint>(hashes);
      if (seen.size !== hashes.length || (parentHash !== null && seen.has(parentHash))) {
        push(tier, { type: 'removed', blockHashes: [] });
        continue;
      }
      const loraName = typeof f.lora_name === 'string' && f.lora_name !== '' ? f.lora_name : undefined;
      // Both hash lists as u32 pairs, which the indexer reads directly (`blocks` is made only if read).
      const local = computeBlockHashPairs(toks as number[], bs, loraName ? { loraName } : undefined);
      push(tier, storedFromPairs(parentHash, toPairs(hashes), local));
    }
    const res: DecodeResult = { ok: true, events, dpRank, nextEventId: nextId };
    if (dropped.length > 0) res.dropped = dropped;
    return res;
  } catch (e) {
    return { ok: false, reason: `undecodable vLLM batch: ${describe(e)}` };
  }
}
