/**
 * (a) Dynamo RouterEvent as msgpack named maps (single or an array = batch) or JSON text:
 *     { worker_id, storage_tier?, event: { event_id, dp_rank?, data } }, data externally tagged:
 *     {"stored": {parent_hash, start_position?, blocks: [{block_hash, tokens_hash, mm_extra_info?}]}}
 *     | {"removed": {block_hashes}} | "cleared".
 */
import type { KvCacheEventData, RouterEvent, StorageTier, StoredBlock, WorkerId } from '../types.js';
import type { DecodeResult, DroppedEvent } from './types.js';
import { decodeMsgpack, describe, isObj, parseJsonExact, toHashList, toSafeInt, toU64 } from './values.js';

const TIERS: readonly StorageTier[] = ['device', 'host_pinned', 'disk', 'external'];

function convertEventData(data: unknown): { ok: true; data: KvCacheEventData } | { ok: false; reason: string } {
  if (data === 'cleared' || data === 'Cleared') return { ok: true, data: { type: 'cleared' } };
  if (!isObj(data)) return { ok: false, reason: 'event data is neither "cleared" nor a tagged map' };
  const keys = Object.keys(data);
  if (keys.length !== 1) return { ok: false, reason: `event data must have exactly one tag, got ${keys.join(',') || 'none'}` };
  const tag = keys[0]!;
  const body = data[tag];
  switch (tag) {
    case 'stored':
    case 'Stored': {
      if (!isObj(body) || !Array.isArray(body.blocks)) return { ok: false, reason: 'stored: missing blocks' };
      let parentHash: bigint | null = null;
      if (body.parent_hash !== null && body.parent_hash !== undefined) {
        const p = toU64(body.parent_hash);
        if (p === undefined) return { ok: false, reason: 'stored: parent_hash is not a 64-bit integer' };
        parentHash = p;
      }
      const blocks: StoredBlock[] = [];
      for (const b of body.blocks) {
        if (!isObj(b)) return { ok: false, reason: 'stored: block is not a map' };
        const blockHash = toU64(b.block_hash);
        const tokensHash = toU64(b.tokens_hash);
        if (blockHash === undefined || tokensHash === undefined)
          return { ok: false, reason: 'stored: block_hash/tokens_hash is not a 64-bit integer' };
        blocks.push({ blockHash, tokensHash });
      }
      return { ok: true, data: { type: 'stored', parentHash, blocks } };
    }
    case 'removed':
    case 'Removed': {
      const hs = isObj(body) ? toHashList(body.block_hashes) : undefined;
      if (!hs) return { ok: false, reason: 'removed: block_hashes is not a list of 64-bit integers' };
      return { ok: true, data: { type: 'removed', blockHashes: hs } };
    }
    case 'cleared':
    case 'Cleared':
      return { ok: true, data: { type: 'cleared' } };
    default:
      return { ok: false, reason: `unknown event data tag ${JSON.stringify(tag)}` };
  }
}

/** One decoded Dynamo RouterEvent map -> RouterEvent. */
export function convertDynamoRouterEvent(v: unknown): { ok: true; event: RouterEvent } | { ok: false; reason: string } {
  if (!isObj(v)) return { ok: false, reason: 'RouterEvent is not a map' };
  const wid = toU64(v.worker_id);
  const workerId: WorkerId | undefined =
    wid !== undefined ? wid.toString() : typeof v.worker_id === 'string' && v.worker_id !== '' ? v.worker_id : undefined;
  if (workerId === undefined) return { ok: false, reason: 'RouterEvent.worker_id missing or invalid' };
  let storageTier: StorageTier = 'device';
  if (v.storage_tier !== undefined && v.storage_tier !== null) {
    if (typeof v.storage_tier !== 'string' || !TIERS.includes(v.storage_tier as StorageTier)) {
      return { ok: false, reason: `unknown storage_tier ${JSON.stringify(String(v.storage_tier))}` };
    }
    storageTier = v.storage_tier as StorageTier;
  }
  const ev = v.event;
  if (!isObj(ev)) return { ok: false, reason: 'RouterEvent.event missing' };
  const eventId = toSafeInt(ev.event_id);
  if (eventId === undefined || eventId < 0) return { ok: false, reason: 'event.event_id missing or invalid' };
  let dpRank = 0;
  if (ev.dp_rank !== undefined && ev.dp_rank !== null) {
    const r = toSafeInt(ev.dp_rank);
    if (r === undefined || r < 0) return { ok: false, reason: 'event.dp_rank invalid' };
    dpRank = r;
  }
  const data = convertEventData(ev.data);
  if (!data.ok) return data;
  return { ok: true, event: { workerId, dpRank, eventId, storageTier, data: data.data } };
}

function convertDynamoValue(value: unknown): DecodeResult {
  const list = Array.isArray(value) ? value : [value];
  const events: RouterEvent[] = [];
  const dropped: DroppedEvent[] = [];
  for (let i = 0; i < list.length; i++) {
    const c = convertDynamoRouterEvent(list[i]);
    if (c.ok) events.push(c.event);
    else dropped.push({ index: i, reason: c.reason });
  }
  if (!Array.isArray(value) && events.length === 0) return { ok: false, reason: dropped[0]!.reason };
  return dropped.length > 0 ? { ok: true, events, dropped } : { ok: true, events };
}

function looksLikeJson(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    return b === 0x7b /* { */ || b === 0x5b /* [ */;
  }
  return false;
}

/** Dynamo RouterEvent(s): msgpack bytes (named map or array of them) or JSON text. */
export function decodeDynamoEvents(bytes: Uint8Array | string): DecodeResult {
  try {
    if (typeof bytes === 'string' || looksLikeJson(bytes)) {
      const text = typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      let value: unknown;
      try {
        value = parseJsonExact(text);
      } catch (e) {
        return { ok: false, reason: `invalid JSON: ${describe(e)}` };
      }
      return convertDynamoValue(value);
    }
    const d = decodeMsgpack(bytes);
    if (!d.ok) return d;
    return convertDynamoValue(d.value);
  } catch (e) {
    return { ok: false, reason: `undecodable RouterEvent payload: ${describe(e)}` };
  }
}
