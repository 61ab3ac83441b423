/**
 * The common case of a vLLM KV-event batch, read straight off the msgpack bytes: hashes into u32
 * pairs and token ids into a Uint32Array, with no bigint per hash and no JS array of token ids.
 * A BlockStored of 512 blocks of 16 took ~160 us through the generic decoder (@msgpack/msgpack
 * into values, then the checks and conversions of vllm.ts): 8,192 token ids as JS numbers and 512
 * bigints, an `every` over the ids, a Set of the bigints. The router decodes one such event per
 * new prompt per worker, on its event loop.
 *
 * This path takes only what it can convert exactly as vllm.ts would: the positional batch
 * `[ts, events, dp_rank]`, events as tagged arrays or maps with the known types, integer hashes,
 * u32 token ids, the worker's block size, a local main-attention event on a known medium. Anything
 * else (an event vllm.ts would drop, a map batch, hashes as strings, a mismatched block size,
 * bytes it cannot read) returns undefined and the batch goes through the generic decoder, which
 * gives the same events and says why it dropped any. test/router/vllm-fast.test.ts checks the
 * two agree on random batches.
 */
import { computeBlockHashPairs } from '../hashing.js';
import { storedFromPairs, type KvCacheEventData, type RouterEvent, type StorageTier, type WorkerId } from '../types.js';
import { fromPairs } from '../u64.js';
import type { DecodeResult } from './types.js';
import { mediumToTier, NON_MAIN_ATTENTION, REMOVED_ORDER, STORED_ORDER } from './vllm-fields.js';

/** The bytes did not have the shape this path takes: use the generic decoder. */
const NOT_FAST = new Error('not the common case');

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** A msgpack reader over one payload; every method throws NOT_FAST on a type it does not take. */
class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw NOT_FAST;
  }

  private byte(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  peek(): number {
    this.need(1);
    return this.buf[this.pos]!;
  }

  /** An array's length, or -1 (nothing consumed) when the next value is not an array. */
  arrayLen(): number {
    return this.lengthOf(0x90, 0xdc, 0xdd);
  }

  /** A map's entry count, or -1 (nothing consumed) when the next value is not a map. */
  mapLen(): number {
    return this.lengthOf(0x80, 0xde, 0xdf);
  }

  /** The length of a container whose formats are `fix` (+0..15), `c16` and `c32`; -1 for another type. */
  private lengthOf(fix: number, c16: number, c32: number): number {
    const b = this.peek();
    if (b >= fix && b <= fix + 0x0f) {
      this.pos++;
      return b & 0x0f;
    }
    if (b !== c16 && b !== c32) return -1;
    this.pos++;
    return this.lenBytes(b === c16 ? 2 : 4);
  }

  /** Consumes a nil; false (nothing consumed) for anything else. */
  nil(): boolean {
    if (this.peek() !== 0xc0) return false;
    this.pos++;
    return true;
  }

  str(): string {
    const b = this.byte();
    let n: number;
    if (b >= 0xa0 && b <= 0xbf) n = b & 0x1f;
    else if (b === 0xd9) n = this.byte();
    else if (b === 0xda) {
      this.need(2);
      n = this.view.getUint16(this.pos);
      this.pos += 2;
    } else if (b === 0xdb) {
      this.need(4);
      n = this.view.getUint32(this.pos);
      this.pos += 4;
    } else throw NOT_FAST;
    this.need(n);
    const s = this.decodeText(this.pos, n);
    this.pos += n;
    return s;
  }

  private decodeText(at: number, n: number): string {
    if (n <= 64) {
      // Short ASCII (tags, field names, media): no decoder call.
      let ascii = true;
      for (let i = at; i < at + n; i++)
        if (this.buf[i]! >= 0x80) {
          ascii = false;
          break;
        }
      if (ascii) return String.fromCharCode.apply(null, this.buf.subarray(at, at + n) as unknown as number[]);
    }
    try {
      return textDecoder.decode(this.buf.subarray(at, at + n));
    } catch {
      throw NOT_FAST;
    }
  }

  /** An integer in a format of up to 32 bits, as a number. */
  int(): number {
    const b = this.byte();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    const v = this.view;
    let x: number;
    switch (b) {
      case 0xcc:
        return this.byte();
      case 0xcd:
        this.need(2);
        x = v.getUint16(this.pos);
        this.pos += 2;
        return x;
      case 0xce:
        this.need(4);
        x = v.getUint32(this.pos);
        this.pos += 4;
        return x;
      case 0xd0:
        this.need(1);
        return v.getInt8(this.pos++);
      case 0xd1:
        this.need(2);
        x = v.getInt16(this.pos);
        this.pos += 2;
        return x;
      case 0xd2:
        this.need(4);
        x = v.getInt32(this.pos);
        this.pos += 4;
        return x;
      default:
        throw NOT_FAST;
    }
  }

  /** Any integer as a u64 (i64 values cast), written as (lo, hi) at out[at], out[at + 1]. */
  u64Into(out: Uint32Array, at: number): void {
    const b = this.peek();
    if (b === 0xcf || b === 0xd3) {
      this.need(9);
      out[at + 1] = this.view.getUint32(this.pos + 1);
      out[at] = this.view.getUint32(this.pos + 5);
      this.pos += 9;
      return;
    }
    const x = this.int();
    out[at] = x >>> 0;
    out[at + 1] = x < 0 ? 0xffffffff : 0;
  }

  /** Skip one value of any type. */
  skip(): void {
    const b = this.byte();
    let bytes = 0; // bytes to step over
    let values = 0; // nested values to skip
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return;
    if (b >= 0xa0 && b <= 0xbf) bytes = b & 0x1f;
    else if (b >= 0x90 && b <= 0x9f) values = b & 0x0f;
    else if (b >= 0x80 && b <= 0x8f) values = 2 * (b & 0x0f);
    else
      switch (b) {
        case 0xcc:
        case 0xd0:
          bytes = 1;
          break;
        case 0xcd:
        case 0xd1:
          bytes = 2;
          break;
        case 0xce:
        case 0xd2:
        case 0xca:
          bytes = 4;
          break;
        case 0xcf:
        case 0xd3:
        case 0xcb:
          bytes = 8;
          break;
        case 0xc4:
        case 0xd9:
          bytes = this.byte();
          break;
        case 0xc5:
        case 0xda:
          bytes = this.lenBytes(2);
          break;
        case 0xc6:
        case 0xdb:
          bytes = this.lenBytes(4);
          break;
        case 0xdc:
          values = this.lenBytes(2);
          break;
        case 0xdd:
          values = this.lenBytes(4);
          break;
        case 0xde:
          values = 2 * this.lenBytes(2);
          break;
        case 0xdf:
          values = 2 * this.lenBytes(4);
          break;
        default:
          throw NOT_FAST; // ext types and the reserved byte: the generic decoder says what they are
      }
    this.need(bytes);
    this.pos += bytes;
    for (let i = 0; i < values; i++) this.skip();
  }

  private lenBytes(n: 2 | 4): number {
    this.need(n);
    const x = n === 2 ? this.view.getUint16(this.pos) : this.view.getUint32(this.pos);
    this.pos += n;
    return x;
  }

  /** An array of integers as u64 pairs. */
  hashPairs(): Uint32Array {
    const n = this.arrayLen();
    if (n < 0) throw NOT_FAST;
    const out = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) this.u64Into(out, 2 * i);
    return out;
  }

  /** An array of token ids, each an integer in [0, 2^32). */
  tokenIds(): Uint32Array {
    const n = this.arrayLen();
    if (n < 0) throw NOT_FAST;
    const out = new Uint32Array(n);
    const buf = this.buf;
    let p = this.pos;
    // The unsigned formats inline (a bounds check per id would cost as much as the read; past the
    // end the reads give 0 and p ends beyond the length, checked after the loop).
    for (let i = 0; i < n; i++) {
      const b = buf[p]!;
      if (b <= 0x7f) {
        out[i] = b;
        p += 1;
      } else if (b === 0xcd) {
        out[i] = (buf[p + 1]! << 8) | buf[p + 2]!;
        p += 3;
      } else if (b === 0xce) {
        out[i] = buf[p + 1]! * 0x1000000 + ((buf[p + 2]! << 16) | (buf[p + 3]! << 8) | buf[p + 4]!);
        p += 5;
      } else if (b === 0xcc) {
        out[i] = buf[p + 1]!;
        p += 2;
      } else {
        this.pos = p;
        const x = this.int();
        if (x < 0) throw NOT_FAST;
        out[i] = x;
        p = this.pos;
      }
    }
    if (p > buf.length) throw NOT_FAST;
    this.pos = p;
    return out;
  }
}

/** One event's fields, as this path reads them (absent: undefined; nil: null). */
interface Fields {
  type?: string;
  hashes?: Uint32Array;
  parent?: Uint32Array | null;
  tokens?: Uint32Array;
  blockSize?: number;
  medium?: string | null;
  loraName?: string;
  groupIdx?: number | null;
  specKind?: string;
  locality?: string | null;
}

/** Read the value of field `name` into `f` (skipping the fields this path does not use). */
function readField(r: Reader, name: string, f: Fields): void {
  switch (name) {
    case 'block_hashes':
      f.hashes = r.hashPairs();
      return;
    case 'parent_block_hash':
      if (r.nil()) f.parent = null;
      else {
        const p = new Uint32Array(2);
        r.u64Into(p, 0);
        f.parent = p;
      }
      return;
    case 'token_ids':
      f.tokens = r.tokenIds();
      return;
    case 'block_size':
      f.blockSize = r.int();
      return;
    case 'medium':
      f.medium = r.nil() ? null : r.str();
      return;
    case 'lora_name':
      if (isStr(r.peek())) f.loraName = r.str();
      else r.skip();
      return;
    case 'group_idx':
      f.groupIdx = r.nil() ? null : r.int();
      return;
    case 'kv_cache_spec_kind':
      if (isStr(r.peek())) f.specKind = r.str();
      else r.skip();
      return;
    case 'locality':
      f.locality = r.nil() ? null : r.str();
      return;
    default:
      r.skip();
  }
}

function isStr(b: number): boolean {
  return (b >= 0xa0 && b <= 0xbf) || b === 0xd9 || b === 0xda || b === 0xdb;
}

function readEvent(r: Reader): Fields {
  const f: Fields = {};
  const n = r.arrayLen();
  if (n >= 1) {
    f.type = r.str();
    const order: readonly string[] = f.type === 'BlockStored' ? STORED_ORDER : f.type === 'BlockRemoved' ? REMOVED_ORDER : [];
    for (let i = 1; i < n; i++) {
      if (i - 1 < order.length) readField(r, order[i - 1]!, f);
      else r.skip();
    }
    return f;
  }
  if (n === 0) throw NOT_FAST;
  const m = r.mapLen();
  if (m < 0) throw NOT_FAST;
  const seen = new Set<string>();
  for (let i = 0; i < m; i++) {
    const key = r.str();
    if (seen.has(key)) throw NOT_FAST;
    seen.add(key);
    if (key === 'type') f.type = r.str();
    else readField(r, key, f);
  }
  if (f.type === undefined) throw NOT_FAST;
  return f;
}

/** Whether two of the hashes (or a hash and the parent) are equal. */
function hasDuplicate(hashes: Uint32Array, parent: Uint32Array | null): boolean {
  const n = hashes.length >>> 1;
  const all = new BigUint64Array(n + (parent ? 1 : 0));
  const halves = new Uint32Array(all.buffer);
  halves.set(hashes);
  if (parent) halves.set(parent, 2 * n);
  all.sort();
  for (let i = 1; i < all.length; i++) if (all[i] === all[i - 1]) return true;
  return false;
}

function toEventData(f: Fields, bs: number): { tier: StorageTier; data: KvCacheEventData } {
  if (f.locality !== undefined && f.locality !== null) {
    const loc = f.locality.toUpperCase();
    if (loc !== 'LOCAL' && loc !== 'DEVICE' && loc !== 'GPU') throw NOT_FAST;
  }
  if (f.groupIdx !== undefined && f.groupIdx !== null && f.groupIdx !== 0) throw NOT_FAST;
  if (f.specKind !== undefined && NON_MAIN_ATTENTION.test(f.specKind)) throw NOT_FAST;
  if (f.type === 'AllBlocksCleared') return { tier: 'device', data: { type: 'cleared' } };
  if (f.type !== 'BlockStored' && f.type !== 'BlockRemoved') throw NOT_FAST;
  const tier = mediumToTier(f.medium);
  if (!tier || !f.hashes) throw NOT_FAST;
  if (f.type === 'BlockRemoved') return { tier, data: { type: 'removed', blockHashes: fromPairs(f.hashes) } };
  const nBlocks = f.hashes.length >>> 1;
  if (f.blockSize !== bs || !f.tokens || f.tokens.length !== nBlocks * bs) throw NOT_FAST;
  const parent = f.parent ?? null;
  if (hasDuplicate(f.hashes, parent)) return { tier, data: { type: 'removed', blockHashes: [] } };
  const local = computeBlockHashPairs(f.tokens, bs, f.loraName ? { loraName: f.loraName } : undefined);
  return { tier, data: storedFromPairs(parent ? fromPairs(parent)[0]! : null, f.hashes, local) };
}

/**
 * The batch decoded as vllm.ts's `decodeVllmZmqBatch` would, or undefined when it is not the
 * common case (then use that).
 */
export function decodeVllmBatchFast(
  payload: Uint8Array,
  opts: { workerId: WorkerId; blockSize: number; eventIdStart?: number },
): DecodeResult | undefined {
  try {
    const r = new Reader(payload);
    const len = r.arrayLen();
    if (len < 2) return undefined;
    r.skip(); // ts
    const nEvents = r.arrayLen();
    if (nEvents < 0) return undefined;
    const fields: Fields[] = [];
    for (let i = 0; i < nEvents; i++) fields.push(readEvent(r));
    let dpRank = 0;
    if (len >= 3 && !r.nil()) {
      dpRank = r.int();
      if (dpRank < 0) return undefined;
    }
    for (let i = 3; i < len; i++) r.skip();
    if (r.pos !== payload.length) return undefined; // trailing bytes: the generic decoder says so
    let nextId = opts.eventIdStart ?? 0;
    const events: RouterEvent[] = [];
    for (const f of fields) {
      const { tier, data } = toEventData(f, opts.blockSize);
      events.push({ workerId: opts.workerId, dpRank, eventId: nextId++, storageTier: tier, data });
    }
    return { ok: true, events, dpRank, nextEventId: nextId };
  } catch {
    // NOT_FAST, or anything this path did not foresee: the generic decoder decides.
    return undefined;
  }
}
