/**
 * Deterministic prompt synthesis. Every segment id names one block of token ids whose content
 * is a pure function of (seed, id): a small PRNG (mulberry32) seeded from both produces the
 * tokens, so the same id gives the same tokens in any request, process or machine, and a
 * shorter use of the id (a trace's partial last block) is a prefix of the longer one. No
 * tokenizer is involved: prompts are token ids.
 *
 * Token ids are drawn from [TOKEN_ID_MIN, TOKEN_ID_MIN + TOKEN_ID_SPAN) = [1000, 31000): valid
 * for any vocabulary of at least 31,000 ids (Llama-2 32k, Llama-3 128k, Qwen 151k, ...), and
 * clear of the low ids where tokenizers keep special and control tokens.
 */
import type { BenchRequest } from './workload.js';

export const TOKEN_ID_MIN = 1000;
export const TOKEN_ID_SPAN = 30000;

/** 32-bit mix of the seed and a segment id (ids may exceed 2^32: high bits are folded in). */
function segmentState(seed: number, id: number): number {
  const hi = Math.floor(id / 4294967296) >>> 0;
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (id >>> 0), 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h ^ hi, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Write the first `len` tokens of segment `id` into `out` at `offset`. */
export function fillSegment(seed: number, id: number, len: number, out: Uint32Array | number[], offset: number): void {
  let s = segmentState(seed, id);
  for (let i = 0; i < len; i++) {
    // mulberry32 step
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t = (t ^ (t >>> 14)) >>> 0;
    out[offset + i] = TOKEN_ID_MIN + (t % TOKEN_ID_SPAN);
  }
}

/** The full prompt of a request, as token ids. */
export function promptTokens(seed: number, req: Pick<BenchRequest, 'segments' | 'inputLength'>): Uint32Array {
  const out = new Uint32Array(req.inputLength);
  let off = 0;
  for (const s of req.segments) {
    fillSegment(seed, s.id, s.len, out, off);
    off += s.len;
  }
  if (off !== req.inputLength) throw new Error(`segments cover ${off} tokens but input_length is ${req.inputLength}`);
  return out;
}

/** The same prompt as a plain array: for JSON bodies and the engine (which copies it). */
export function promptTokenArray(seed: number, req: Pick<BenchRequest, 'segments' | 'inputLength'>): number[] {
  const out = new Array<number>(req.inputLength);
  let off = 0;
  for (const s of req.segments) {
    if (off + s.len > req.inputLength) break;
    fillSegment(seed, s.id, s.len, out, off);
    off += s.len;
  }
  if (off !== req.inputLength) throw new Error(`segments cover a different length than input_length ${req.inputLength}`);
  return out;
}

/**
 * The prompt with only the tokens from `from` on materialised (earlier positions are 0).
 * For the virtual-time engines, which get the hashes of the prompt's full blocks precomputed
 * and only ever read the tokens of the partial tail block (to hash it once output tokens fill
 * it up). Skips generating ~12k tokens per request on long traces.
 */
export function promptTailArray(seed: number, req: Pick<BenchRequest, 'segments' | 'inputLength'>, from: number): number[] {
  const out = new Array<number>(req.inputLength).fill(0);
  let off = 0;
  for (const s of req.segments) {
    const end = off + s.len;
    if (end > from) {
      const start = Math.max(off, from);
      // fillSegment writes from the segment's start; generate the segment and keep the tail.
      const tmp = new Array<number>(s.len);
      fillSegment(seed, s.id, s.len, tmp, 0);
      for (let i = start; i < end; i++) out[i] = tmp[i - off]!;
    }
    off = end;
  }
  if (off !== req.inputLength) throw new Error(`segments cover a different length than input_length ${req.inputLength}`);
  return out;
}
