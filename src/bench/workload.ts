/**
 * Benchmark workloads: a list of requests whose prompts are described by *segments* rather
 * than text. A segment is `(id, len)`: `len` tokens of the block whose content is a pure
 * function of `(seed, id)` (see synth.ts). Two requests that start with the same segment ids
 * therefore start with byte-identical token ids, which is what prefix caching and the KV
 * router react to. A Mooncake trace line maps one-to-one: each hash id is a segment of 512
 * tokens and the last one is shortened to fit `input_length`.
 *
 * Arrivals are either fixed (`arrivalMs`, an offset from the start, divided by the speedup)
 * or, for later turns of a session, `delayMs` after the previous turn of that session
 * completed (aiperf's multi-turn semantics).
 */

export interface Segment {
  /** Block content id: equal ids give equal tokens (for the same seed). */
  readonly id: number;
  /** Tokens taken from the start of that block (1..blockTokens). */
  readonly len: number;
}

export interface BenchRequest {
  /** Index in the workload (0-based): stable name for reports and determinism. */
  readonly index: number;
  /** Fixed-schedule arrival offset in ms (first turns; ignored for later turns of a session). */
  readonly arrivalMs: number;
  readonly inputLength: number;
  readonly outputLength: number;
  readonly segments: readonly Segment[];
  /** Multi-turn grouping; turns of one session are sent one after another. */
  readonly sessionId?: string;
  /** For a later turn: wait this long after the previous turn completed. */
  readonly delayMs?: number;
  /** 1-based source line (traces) for messages. */
  readonly line?: number;
}

export interface Workload {
  /** Short description for reports and the JSON `workload` object. */
  readonly name: string;
  readonly kind: 'trace' | 'prefix-ratio' | 'shared-prefix' | 'multi-turn';
  /** Tokens per segment id (512 for Mooncake traces). */
  readonly segmentTokens: number;
  /** Seed of the prompt synthesis (equal ids give equal tokens only for the same seed). */
  readonly seed: number;
  readonly requests: readonly BenchRequest[];
  /** Where it came from (trace path or generator spec) and its parameters. */
  readonly source: Record<string, unknown>;
}

/** Split `len` tokens into segments of at most `segTokens` with consecutive ids from `firstId`. */
export function segmentsOf(firstId: number, len: number, segTokens: number): Segment[] {
  const out: Segment[] = [];
  for (let off = 0, k = 0; off < len; off += segTokens, k++) out.push({ id: firstId + k, len: Math.min(segTokens, len - off) });
  return out;
}

export interface WorkloadSummary {
  requests: number;
  sessions: number;
  span_ms: number;
  input_tokens: { avg: number; max: number; total: number };
  output_tokens: { avg: number; max: number; total: number };
  distinct_segments: number;
  /** Share of segment occurrences whose id appeared in an earlier request (trace order). */
  inherent_reuse: number;
}

export function summarizeWorkload(w: Workload): WorkloadSummary {
  const seen = new Set<number>();
  let occ = 0;
  let rep = 0;
  let inTot = 0;
  let inMax = 0;
  let outTot = 0;
  let outMax = 0;
  let first = Infinity;
  let last = -Infinity;
  const sessions = new Set<string>();
  for (const r of w.requests) {
    for (const s of r.segments) {
      occ++;
      if (seen.has(s.id)) rep++;
    }
    for (const s of r.segments) seen.add(s.id);
    inTot += r.inputLength;
    outTot += r.outputLength;
    if (r.inputLength > inMax) inMax = r.inputLength;
    if (r.outputLength > outMax) outMax = r.outputLength;
    if (r.sessionId === undefined || !sessions.has(r.sessionId)) {
      if (r.arrivalMs < first) first = r.arrivalMs;
      if (r.arrivalMs > last) last = r.arrivalMs;
    }
    if (r.sessionId !== undefined) sessions.add(r.sessionId);
  }
  const n = w.requests.length;
  return {
    requests: n,
    sessions: sessions.size,
    span_ms: n > 0 ? last - first : 0,
    input_tokens: { avg: n ? inTot / n : 0, max: inMax, total: inTot },
    output_tokens: { avg: n ? outTot / n : 0, max: outMax, total: outTot },
    distinct_segments: seen.size,
    inherent_reuse: occ ? rep / occ : 0,
  };
}

/** The first `n` requests (trace order); sessions keep their earlier turns. */
export function takeRequests(w: Workload, n: number | undefined): Workload {
  if (n === undefined || n >= w.requests.length) return w;
  return { ...w, requests: w.requests.slice(0, n), source: { ...w.source, requests_limit: n } };
}

/** The replay order: first turns by arrival (stable), and for each request the next turn of its session. */
export interface TurnSchedule {
  /** First turns of sessions and requests without a session, by arrivalMs then index. */
  readonly firsts: readonly BenchRequest[];
  /** Request index -> the next turn of the same session (sent `delayMs` after that one completes). */
  readonly nextTurn: ReadonlyMap<number, BenchRequest>;
  /** arrivalMs of the earliest first turn (0 when there are none): the replay's time zero. */
  readonly t0: number;
}

export function turnSchedule(requests: readonly BenchRequest[]): TurnSchedule {
  const firsts: BenchRequest[] = [];
  const nextTurn = new Map<number, BenchRequest>();
  const lastOfSession = new Map<string, BenchRequest>();
  for (const r of requests) {
    if (r.sessionId !== undefined) {
      const prev = lastOfSession.get(r.sessionId);
      lastOfSession.set(r.sessionId, r);
      if (prev) {
        nextTurn.set(prev.index, r);
        continue;
      }
    }
    firsts.push(r);
  }
  firsts.sort((a, b) => a.arrivalMs - b.arrivalMs || a.index - b.index);
  return { firsts, nextTurn, t0: firsts.length > 0 ? firsts[0]!.arrivalMs : 0 };
}
