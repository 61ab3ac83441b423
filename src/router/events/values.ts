/**
 * Value helpers shared by the decoders: exact 64-bit integers from msgpack (`useBigInt64`) and
 * JSON (big integers protected before parsing), i64 hashes cast to u64, safe msgpack decoding.
 */
import { decode } from '@msgpack/msgpack';

const MSGPACK_OPTS = { useBigInt64: true } as const;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
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

export function toSafeInt(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
  if (typeof v === 'string' && /^-?\d{1,16}$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

export function toHashList(v: unknown): bigint[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out = new Array<bigint>(v.length);
  for (let i = 0; i < v.length; i++) {
    const h = toU64(v[i]);
    if (h === undefined) return undefined;
    out[i] = h;
  }
  return out;
}

export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function decodeMsgpack(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; reason: string } {
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
