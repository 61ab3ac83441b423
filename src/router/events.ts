/**
 * KV event decoders (dynamo-facts §3). Pure functions over bytes: they never throw on malformed
 * input, they return `{ ok: false, reason }` instead.
 *
 * (a) Dynamo RouterEvent as msgpack named maps (single or an array = batch) or JSON text:
 *     { worker_id, storage_tier?, event: { event_id, dp_rank?, data } }, data externally tagged:
 *     {"stored": {parent_hash, start_position?, blocks: [{block_hash, tokens_hash, mm_extra_info?}]}}
 *     | {"removed": {block_hashes}} | "cleared".
 * (b) Dynamo event-plane envelope { publisher_id, sequence, published_at, topic, payload: bin }
 *     whose payload is (a) in msgpack; also the ZMQ event-plane frame (5-byte header + envelope).
 * (c) vLLM ZMQ batches: `[ts, events, dp_rank]` or `{ts, events, data_parallel_rank}`; events as
 *     msgspec tagged arrays (["BlockStored", block_hashes, parent_block_hash, token_ids,
 *     block_size, lora_id, medium, lora_name, extra_keys, group_idx, kv_cache_spec_kind,
 *     kv_cache_spec_sliding_window, locality, ownership, session_id]) or maps with "type".
 *     `tokens_hash` is recomputed from `token_ids` (LoRA name as salt); hashes may be signed i64
 *     (cast to u64); the event's block size must equal the worker's.
 *
 * 64-bit integers are decoded exactly (msgpack `useBigInt64`; JSON big integers are protected
 * before parsing).
 */
import { decode } from '@msgpack/msgpack';
import { computeBlockHashes } from './hashing.js';
import type { KvCacheEventData, RouterEvent, StorageTier, StoredBlock, WorkerId } from './types.js';

export interface DroppedEvent {
  /** Position of the event in its batch. */
  index: number;
  reason: string;
}

export type DecodeResult =
  | { ok: true; events: RouterEvent[]; dpRank?: number; dropped?: DroppedEvent[]; nextEventId?: number }
  | { ok: false; reason: string };

export interface EnvelopeMeta {
  publisherId: bigint;
  sequence: bigint;
  publishedAt: number;
  topic: string;
}

export type EnvelopeDecodeResult =
  | { ok: true; envelope: EnvelopeMeta; events: RouterEvent[]; dropped?: DroppedEvent[] }
  | { ok: false; reason: string };

const MSGPACK_OPTS = { useBigInt64: true } as const;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

// ---------------------------------------------------------------------------------------------
// Small value helpers
// ---------------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** u64 from a msgpack/JSON integer (number, bigint or decimal string); i64 values are cast. */
export function toU64(v: unknown): bigint | undefined {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) return undefined;
    b = BigInt(v);
  } else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) b = BigInt(v);
  else return undefined;
  if (b < I64_MIN || b > U64_MAX) return undefined;
  return BigInt.asUintN(64, b);
}

function toSafeInt(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
  if (typeof v === 'string' && /^-?\d{1,16}$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

function toHashList(v: unknown): bigint[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out = new Array<bigint>(v.length);
  for (let i = 0; i < v.length; i++) {
    const h = toU64(v[i]);
    if (h === undefined) return undefined;
    out[i] = h;
  }
  return out;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function decodeMsgpack(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: decode(bytes, MSGPACK_OPTS) };
  } catch (e) {
    return { ok: false, reason: `invalid msgpack: ${describe(e)}` };
  }
}

/**
 * JSON.parse that keeps integers beyond 2^53 exact: integer literals of 16+ digits outside
 * strings are turned into decimal strings before parsing (the converters accept those).
 */
export function parseJsonExact(text: string): unknown {
  let out = '';
  let last = 0;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inStr) {
      if (ch === 92 /* \ */) i++;
      else if (ch === 34 /* " */) inStr = false;
      continue;
    }
    if (ch === 34) {
      inStr = true;
      continue;
    }
    if (ch === 45 /* - */ || (ch >= 48 && ch <= 57)) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) j++;
      const next = j < text.length ? text[j] : '';
      const digits = j - i - (ch === 45 ? 1 : 0);
      if (digits >= 16 && next !== '.' && next !== 'e' && next !== 'E') {
        out += text.slice(last, i) + '"' + text.slice(i, j) + '"';
        last = j;
      }
      i = j - 1;
    }
  }
  return JSON.parse(last === 0 ? text : out + text.slice(last));
}

const TIERS: readonly StorageTier[] = ['device', 'host_pinned', 'disk', 'external'];

// ---------------------------------------------------------------------------------------------
// (a) Dynamo RouterEvent
// ---------------------------------------------------------------------------------------------

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
        if (blockHash === undefined || tokensHash === undefined) return { ok: false, reason: 'stored: block_hash/tokens_hash is not a 64-bit integer' };
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
  const workerId: WorkerId | undefined = wid !== undefined ? wid.toString() : typeof v.worker_id === 'string' && v.worker_id !== '' ? v.worker_id : undefined;
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

// ---------------------------------------------------------------------------------------------
// (b) event-plane envelope
// ---------------------------------------------------------------------------------------------

/** Event-plane envelope {publisher_id, sequence, published_at, topic, payload} (NATS message body). */
export function decodeNatsEnvelope(bytes: Uint8Array): EnvelopeDecodeResult {
  try {
    const d = decodeMsgpack(bytes);
    if (!d.ok) return d;
    const v = d.value;
    if (!isObj(v)) return { ok: false, reason: 'envelope is not a map' };
    const publisherId = toU64(v.publisher_id);
    const sequence = toU64(v.sequence);
    const publishedAt = toSafeInt(v.published_at);
    if (publisherId === undefined) return { ok: false, reason: 'envelope.publisher_id missing or invalid' };
    if (sequence === undefined) return { ok: false, reason: 'envelope.sequence missing or invalid' };
    if (typeof v.topic !== 'string') return { ok: false, reason: 'envelope.topic missing' };
    let payload: Uint8Array;
    if (v.payload instanceof Uint8Array) payload = v.payload;
    else if (Array.isArray(v.payload) && v.payload.every((x) => typeof x === 'number' && x >= 0 && x <= 255 && Number.isInteger(x))) {
      payload = Uint8Array.from(v.payload as number[]); // serde may write Vec<u8> as an int array
    } else return { ok: false, reason: 'envelope.payload is not binary' };
    const inner = decodeDynamoEvents(payload);
    if (!inner.ok) return { ok: false, reason: `envelope payload: ${inner.reason}` };
    const envelope: EnvelopeMeta = { publisherId, sequence, publishedAt: publishedAt ?? 0, topic: v.topic };
    return inner.dropped ? { ok: true, envelope, events: inner.events, dropped: inner.dropped } : { ok: true, envelope, events: inner.events };
  } catch (e) {
    return { ok: false, reason: `undecodable envelope: ${describe(e)}` };
  }
}

/** ZMQ event-plane frame: [version=1 u8][payload_len u32 BE] + msgpack envelope. */
export function decodeEventPlaneFrame(frame: Uint8Array): EnvelopeDecodeResult {
  if (frame.length < 5) return { ok: false, reason: 'frame shorter than its 5-byte header' };
  if (frame[0] !== 1) return { ok: false, reason: `unsupported frame version ${frame[0]}` };
  const len = ((frame[1]! << 24) | (frame[2]! << 16) | (frame[3]! << 8) | frame[4]!) >>> 0;
  if (len !== frame.length - 5) return { ok: false, reason: `frame length ${len} does not match ${frame.length - 5} payload bytes` };
  return decodeNatsEnvelope(frame.subarray(5));
}

// ---------------------------------------------------------------------------------------------
// (c) vLLM ZMQ batches
// ---------------------------------------------------------------------------------------------

/** vLLM `medium` -> storage tier; undefined = unknown medium (the event is dropped). */
export function mediumToTier(medium: unknown): StorageTier | undefined {
  if (medium === null || medium === undefined) return 'device';
  if (typeof medium !== 'string') return undefined;
  switch (medium.toUpperCase()) {
    case 'GPU':
    case 'DEVICE':
      return 'device';
    case 'CPU':
    case 'CPU_PINNED':
    case 'CPU_TIER1':
      return 'host_pinned';
    case 'DISK':
    case 'NVME':
    case 'STORAGE':
    case 'CPU_TIER2':
      return 'disk';
    case 'EXTERNAL':
    case 'NETWORK':
    case 'REMOTE':
    case 'SHARED':
      return 'external';
    default:
      return undefined;
  }
}

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

const STORED_ORDER = [
  'block_hashes',
  'parent_block_hash',
  'token_ids',
  'block_size',
  'lora_id',
  'medium',
  'lora_name',
  'extra_keys',
  'group_idx',
  'kv_cache_spec_kind',
  'kv_cache_spec_sliding_window',
  'locality',
  'ownership',
  'session_id',
] as const;
const REMOVED_ORDER = ['block_hashes', 'medium', 'group_idx'] as const;

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

const NON_MAIN_ATTENTION = /sliding|mamba|chunk|cross|local/i;

/**
 * Decode one vLLM KV-event batch (the msgpack payload frame) into RouterEvents for `workerId`.
 * Accepted events get consecutive ids from `eventIdStart` (default 0); `nextEventId` is returned.
 * Per-event problems drop that event (listed in `dropped`); a block-size mismatch drops that
 * event and the rest of the batch (Dynamo stops converting the batch there).
 */
export function decodeVllmZmqBatch(payload: Uint8Array, opts: { workerId: WorkerId; blockSize: number; eventIdStart?: number }): DecodeResult {
  try {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1) return { ok: false, reason: `invalid expected block size ${opts.blockSize}` };
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
          dropped.push({ index: k, reason: k === i ? `block_size ${String(f.block_size)} does not match the worker's ${bs}` : 'after a block_size mismatch' });
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
      if (!Array.isArray(toks) || toks.length !== hashes.length * bs || !toks.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0 && t <= 0xffffffff)) {
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
      const local = computeBlockHashes(toks as number[], bs, loraName ? { loraName } : undefined);
      push(tier, {
        type: 'stored',
        parentHash,
        blocks: hashes.map((h, k) => ({ blockHash: h, tokensHash: local[k]! })),
      });
    }
    const res: DecodeResult = { ok: true, events, dpRank, nextEventId: nextId };
    if (dropped.length > 0) res.dropped = dropped;
    return res;
  } catch (e) {
    return { ok: false, reason: `undecodable vLLM batch: ${describe(e)}` };
  }
}
