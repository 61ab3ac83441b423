/**
 * Mooncake JSONL trace loader (FAST'25 release format, as aiperf's `mooncake_trace` reads it):
 *
 *   {"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]}
 *   {"session_id": "s1", "delay": ms, "input_length": ..., "output_length": ..., "hash_ids": [...]}
 *
 * - Each hash id is one block of `blockTokens` (512) tokens; the last block is shortened so
 *   the prompt is exactly `input_length` tokens: (len(hash_ids) - 1) * 512 < input_length
 *   <= len(hash_ids) * 512 must hold (aiperf's check).
 * - `timestamp` is an absolute offset in ms; lines without one (later turns of a session)
 *   need `session_id` and are sent `delay` ms after the previous turn of the session completed.
 * - Lines without hash_ids get a prompt of unique blocks (no reuse), like aiperf.
 * - Every problem is reported with the file and line number.
 */
import { readFile } from 'node:fs/promises';
import { segmentsOf, type BenchRequest, type Segment, type Workload } from './workload.js';

const MOONCAKE_BLOCK_TOKENS = 512;

export class TraceError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(message);
    this.name = 'TraceError';
  }
}

export interface TraceOptions {
  /** Tokens per hash id (default 512). */
  blockTokens?: number;
  /** Prompt synthesis seed (default 0). */
  seed?: number;
  /** Name used in messages (default: the path). */
  name?: string;
}

const KNOWN = new Set(['timestamp', 'input_length', 'output_length', 'hash_ids', 'session_id', 'delay']);

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/** Parse trace text (one JSON object per line; blank lines are skipped). */
export function parseMooncakeTrace(text: string, opts: TraceOptions = {}): Workload {
  const bt = opts.blockTokens ?? MOONCAKE_BLOCK_TOKENS;
  const name = opts.name ?? 'trace';
  const requests: BenchRequest[] = [];
  const lines = text.split('\n');
  const where = (ln: number) => `${name} line ${ln}`;
  // Ids for lines without hash_ids: beyond every id the trace uses (assigned after the scan).
  const unhashed: Array<{ req: Omit<BenchRequest, 'segments'>; at: number }> = [];
  let maxId = -1;
  const seenSessions = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const ln = i + 1;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch (err) {
      throw new TraceError(`${where(ln)}: not valid JSON (${(err as Error).message})`, ln);
    }
    if (!o || typeof o !== 'object' || Array.isArray(o))
      throw new TraceError(`${where(ln)}: expected a JSON object, got ${Array.isArray(o) ? 'an array' : typeof o}`, ln);
    const r = o as Record<string, unknown>;
    if ('text_input' in r) throw new TraceError(`${where(ln)}: "text_input" lines are not supported; give input_length and hash_ids`, ln);
    for (const k of Object.keys(r))
      if (!KNOWN.has(k)) throw new TraceError(`${where(ln)}: unknown field "${k}" (expected ${[...KNOWN].join(', ')})`, ln);
    const input = r.input_length;
    const output = r.output_length;
    if (!isInt(input) || input < 1)
      throw new TraceError(`${where(ln)}: "input_length" must be an integer >= 1, got ${JSON.stringify(input)}`, ln);
    if (!isInt(output) || output < 1)
      throw new TraceError(`${where(ln)}: "output_length" must be an integer >= 1, got ${JSON.stringify(output)}`, ln);
    const session = r.session_id;
    if (session !== undefined && typeof session !== 'string' && !isInt(session))
      throw new TraceError(`${where(ln)}: "session_id" must be a string, got ${JSON.stringify(session)}`, ln);
    const sessionId = session === undefined ? undefined : String(session);
    const ts = r.timestamp;
    const delay = r.delay;
    if (ts !== undefined && (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0))
      throw new TraceError(`${where(ln)}: "timestamp" must be a number of ms >= 0, got ${JSON.stringify(ts)}`, ln);
    if (delay !== undefined && (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0))
      throw new TraceError(`${where(ln)}: "delay" must be a number of ms >= 0, got ${JSON.stringify(delay)}`, ln);
    const laterTurn = sessionId !== undefined && seenSessions.has(sessionId);
    if (ts === undefined && !laterTurn && sessionId === undefined)
      throw new TraceError(`${where(ln)}: needs a "timestamp" (ms) or a "session_id"`, ln);
    if (sessionId !== undefined) seenSessions.add(sessionId);
    const base = {
      index: requests.length,
      arrivalMs: typeof ts === 'number' ? ts : 0,
      inputLength: input,
      outputLength: output,
      ...(sessionId !== undefined ? { sessionId } : {}),
      ...(laterTurn ? { delayMs: typeof delay === 'number' ? delay : 0 } : {}),
      line: ln,
    };
    const ids = r.hash_ids;
    if (ids === undefined || (Array.isArray(ids) && ids.length === 0)) {
      unhashed.push({ req: base, at: requests.length });
      requests.push(base as BenchRequest); // segments filled in below
      continue;
    }
    if (!Array.isArray(ids)) throw new TraceError(`${where(ln)}: "hash_ids" must be an array of integers`, ln);
    const segs: Segment[] = new Array(ids.length);
    for (let k = 0; k < ids.length; k++) {
      const h = ids[k];
      if (!isInt(h) || h < 0 || h > Number.MAX_SAFE_INTEGER)
        throw new TraceError(`${where(ln)}: hash_ids[${k}] must be a non-negative integer, got ${JSON.stringify(h)}`, ln);
      if (h > maxId) maxId = h;
      segs[k] = { id: h, len: bt };
    }
    const lastLen = input - (ids.length - 1) * bt;
    if (lastLen <= 0 || lastLen > bt) {
      throw new TraceError(
        `${where(ln)}: input_length ${input} does not fit ${ids.length} hash ids of ${bt} tokens (needs ${(ids.length - 1) * bt + 1}..${ids.length * bt}); is the trace block size ${bt}?`,
        ln,
      );
    }
    segs[ids.length - 1] = { id: ids[ids.length - 1] as number, len: lastLen };
    requests.push({ ...base, segments: segs });
  }
  if (requests.length === 0) throw new TraceError(`${name}: no requests (the file is empty)`);
  let next = maxId + 1;
  for (const u of unhashed) {
    const segs = segmentsOf(next, u.req.inputLength, bt);
    next += segs.length;
    requests[u.at] = { ...u.req, segments: segs };
  }
  return {
    name,
    kind: 'trace',
    segmentTokens: bt,
    seed: opts.seed ?? 0,
    requests,
    source: { type: 'mooncake_trace', path: name, block_tokens: bt },
  };
}

export async function loadMooncakeTrace(path: string, opts: TraceOptions = {}): Promise<Workload> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TraceError(e.code === 'ENOENT' ? `trace file ${path} does not exist` : `cannot read trace file ${path}: ${e.message}`);
  }
  return parseMooncakeTrace(text, { ...opts, name: opts.name ?? path });
}
