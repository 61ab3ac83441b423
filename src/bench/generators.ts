/**
 * Seeded synthetic workloads with known prefix structure, in the shapes the standard tools use
 * (traces.md §4.1, §5.2, §5.4, dynamo-facts §7). All are open loop with Poisson arrivals at
 * `rate` requests/s (sessions: session starts/s), so `--speedup` scales them like a trace.
 *
 * - prefix-ratio (Dynamo's router sweep): `groups` shared prefixes of int(isl*ratio) tokens;
 *   each request picks a group uniformly and appends a unique body of ~N(isl*(1-ratio),
 *   mean/4) tokens; output ~N(osl, osl/4).
 * - shared-prefix (SGLang generated-shared-prefix / llm-d inference-perf): `groups` system
 *   prompts of `system` tokens, `prompts` questions of `question` tokens each, shuffled.
 * - multi-turn: `sessions` conversations of `turns` turns; turn k's prompt is the shared system
 *   prompt + every earlier user message and reply + the new user message, and is sent `delay`
 *   ms after turn k-1 completed (aiperf's session semantics).
 *
 * Prompts are built from 512-token segments (like a Mooncake trace), so a shared prefix is a
 * run of shared segment ids and equal ids mean equal tokens.
 */
import { Rng } from '../sim/rng.js';
import { segmentsOf, type BenchRequest, type Segment, type Workload } from './workload.js';

export const SYNTH_SEGMENT_TOKENS = 512;

export type GeneratorKind = 'prefix-ratio' | 'shared-prefix' | 'multi-turn';

export const GENERATOR_DEFAULTS: Record<GeneratorKind, Record<string, number>> = {
  'prefix-ratio': { ratio: 0.5, isl: 14000, osl: 200, groups: 20, requests: 200, rate: 2 },
  'shared-prefix': { groups: 32, prompts: 32, system: 2048, question: 256, output: 256, rate: 10 },
  'multi-turn': { sessions: 64, turns: 5, system: 1024, user: 256, output: 128, delay: 1000, rate: 2 },
};

export class SpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpecError';
  }
}

/** Parse `kind[:key=value,...]`, e.g. `shared-prefix:groups=8,system=4096`. */
export function parseSpec(spec: string): { kind: GeneratorKind; params: Record<string, number> } {
  const [kindRaw, rest = ''] = spec.split(':', 2) as [string, string?];
  const kind = kindRaw.trim() as GeneratorKind;
  const defaults = GENERATOR_DEFAULTS[kind];
  if (!defaults) throw new SpecError(`unknown synthetic workload "${kindRaw}" (expected ${Object.keys(GENERATOR_DEFAULTS).join(', ')})`);
  const params = { ...defaults };
  for (const part of rest
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new SpecError(`"${part}" in --synthetic ${spec} is not key=value`);
    const k = part.slice(0, eq).trim();
    const v = Number(part.slice(eq + 1).trim());
    if (!(k in defaults)) throw new SpecError(`${kind} has no parameter "${k}" (it has ${Object.keys(defaults).join(', ')})`);
    if (!Number.isFinite(v) || v < 0) throw new SpecError(`${kind} parameter ${k} must be a number >= 0, got "${part.slice(eq + 1)}"`);
    params[k] = v;
  }
  const intKeys = Object.keys(params).filter((k) => k !== 'ratio' && k !== 'rate' && k !== 'delay');
  for (const k of intKeys) {
    if (!Number.isInteger(params[k]!) || params[k]! < 1)
      throw new SpecError(`${kind} parameter ${k} must be a whole number >= 1, got ${params[k]}`);
  }
  if (kind === 'prefix-ratio' && !(params.ratio! >= 0 && params.ratio! < 1))
    throw new SpecError(`prefix-ratio ratio must be in [0, 1), got ${params.ratio}`);
  if (!(params.rate! > 0)) throw new SpecError(`${kind} rate must be > 0 requests/s`);
  return { kind, params };
}

class Ids {
  next = 0;
  take(len: number): Segment[] {
    const s = segmentsOf(this.next, len, SYNTH_SEGMENT_TOKENS);
    this.next += s.length;
    return s;
  }
}

function normalPositive(rng: Rng, mean: number, sd: number): number {
  if (sd <= 0) return Math.max(1, Math.round(mean));
  for (let i = 0; i < 100; i++) {
    const u = 1 - rng.next();
    const v = rng.next();
    const x = mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    if (x >= 1) return Math.round(x);
  }
  return Math.max(1, Math.round(mean));
}

/** Poisson arrival offsets (ms) for n events at `rate` per second; the first at 0. */
function poissonArrivals(rng: Rng, n: number, rate: number): number[] {
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    out.push(Math.round(t * 1000) / 1000);
    t += (-Math.log(1 - rng.next()) / rate) * 1000;
  }
  return out;
}

function shuffle<T>(rng: Rng, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function concat(...parts: Segment[][]): { segments: Segment[]; len: number } {
  const segments = parts.flat();
  return { segments, len: segments.reduce((s, x) => s + x.len, 0) };
}

export function generateWorkload(spec: string, seed = 0): Workload {
  const { kind, params: p } = parseSpec(spec);
  const rng = new Rng((seed ^ 0x51ed) >>> 0);
  const ids = new Ids();
  let reqs: Array<Omit<BenchRequest, 'index' | 'arrivalMs'> & { arrivalMs?: number }> = [];

  if (kind === 'prefix-ratio') {
    const prefixLen = Math.floor(p.isl! * p.ratio!);
    const prefixes = Array.from({ length: p.groups! }, () => ids.take(prefixLen));
    const bodyMean = p.isl! * (1 - p.ratio!);
    for (let i = 0; i < p.requests!; i++) {
      const g = rng.int(0, p.groups!);
      const body = ids.take(normalPositive(rng, bodyMean, Math.round(bodyMean / 4)));
      const c = concat(prefixes[g]!, body);
      reqs.push({ segments: c.segments, inputLength: c.len, outputLength: normalPositive(rng, p.osl!, p.osl! / 4) });
    }
  } else if (kind === 'shared-prefix') {
    const systems = Array.from({ length: p.groups! }, () => ids.take(p.system!));
    for (let g = 0; g < p.groups!; g++) {
      for (let q = 0; q < p.prompts!; q++) {
        const c = concat(systems[g]!, ids.take(p.question!));
        reqs.push({ segments: c.segments, inputLength: c.len, outputLength: p.output! });
      }
    }
    reqs = shuffle(rng, reqs);
  } else {
    const system = ids.take(p.system!);
    const starts = poissonArrivals(rng, p.sessions!, p.rate!);
    for (let s = 0; s < p.sessions!; s++) {
      let history: Segment[] = [...system];
      for (let t = 0; t < p.turns!; t++) {
        const user = ids.take(p.user!);
        const c = concat(history, user);
        reqs.push({
          segments: c.segments,
          inputLength: c.len,
          outputLength: p.output!,
          sessionId: `session-${s}`,
          ...(t === 0 ? { arrivalMs: starts[s]! } : { delayMs: p.delay! }),
        });
        // The next turn carries this turn's user message and a reply of `output` tokens.
        history = [...c.segments, ...ids.take(p.output!)];
      }
    }
  }

  const arrivals = kind === 'multi-turn' ? [] : poissonArrivals(rng, reqs.length, p.rate!);
  const requests: BenchRequest[] = reqs.map((r, i) => ({ ...r, index: i, arrivalMs: r.arrivalMs ?? arrivals[i] ?? 0 }));
  const paramText = Object.entries(p)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return {
    name: `${kind}:${paramText}`,
    kind,
    segmentTokens: SYNTH_SEGMENT_TOKENS,
    seed,
    requests,
    source: { type: 'synthetic', generator: kind, params: p, seed },
  };
}
