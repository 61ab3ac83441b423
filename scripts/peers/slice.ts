/**
 * The trace slice every system replays: the first `requests` lines of a Mooncake trace
 * (default ../shared/data/traces/conversation_trace.jsonl, as `dynamo-lab bench` finds it) whose
 * input fits `maxInput` tokens, timestamps multiplied by `timeScale` (aiperf has no speed-up
 * flag for fixed-schedule Mooncake traces, so the slice itself is rescaled).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { repoRoot } from './common.js';

export interface TraceLine {
  timestamp: number;
  input_length: number;
  output_length: number;
  hash_ids: number[];
}

export interface Slice {
  path: string;
  lines: TraceLine[];
  source: string;
  requests: number;
  durationS: number;
  meanInput: number;
  meanOutput: number;
  /** Share of 512-token trace blocks seen before in the slice (the reuse any router could find with infinite caches). */
  inherentReuse: number;
}

export function defaultTracePath(): string {
  return join(repoRoot(), '..', 'shared', 'data', 'traces', 'conversation_trace.jsonl');
}

export async function buildSlice(opts: {
  trace?: string;
  requests: number;
  maxInput: number;
  timeScale: number;
  out: string;
}): Promise<Slice> {
  const source = resolve(opts.trace ?? defaultTracePath());
  if (!existsSync(source))
    throw new Error(
      `trace not found: ${source} (pass --trace <mooncake.jsonl>; the default is ../shared/data/traces/conversation_trace.jsonl next to the repository)`,
    );
  const text = await readFile(source, 'utf8');
  const lines: TraceLine[] = [];
  let n = 0;
  for (const raw of text.split('\n')) {
    n++;
    if (raw.trim() === '') continue;
    let o: Partial<TraceLine>;
    try {
      o = JSON.parse(raw) as Partial<TraceLine>;
    } catch (e) {
      throw new Error(`${source} line ${n}: not JSON (${(e as Error).message})`);
    }
    if (
      typeof o.timestamp !== 'number' ||
      typeof o.input_length !== 'number' ||
      typeof o.output_length !== 'number' ||
      !Array.isArray(o.hash_ids)
    ) {
      throw new Error(`${source} line ${n}: needs timestamp, input_length, output_length and hash_ids (fixed-schedule Mooncake lines)`);
    }
    if (o.input_length > opts.maxInput) continue;
    lines.push({ timestamp: o.timestamp, input_length: o.input_length, output_length: o.output_length, hash_ids: o.hash_ids });
    if (lines.length >= opts.requests) break;
  }
  if (lines.length === 0) throw new Error(`${source}: no request with input_length <= ${opts.maxInput}`);
  const t0 = lines[0]!.timestamp;
  for (const l of lines) l.timestamp = Math.round((l.timestamp - t0) * opts.timeScale);
  await mkdir(dirname(opts.out), { recursive: true });
  await writeFile(opts.out, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const seen = new Set<number>();
  let blocks = 0;
  let reused = 0;
  for (const l of lines)
    for (const h of l.hash_ids) {
      blocks++;
      if (seen.has(h)) reused++;
      else seen.add(h);
    }
  const mean = (f: (l: TraceLine) => number) => lines.reduce((s, l) => s + f(l), 0) / lines.length;
  return {
    path: opts.out,
    lines,
    source,
    requests: lines.length,
    durationS: lines[lines.length - 1]!.timestamp / 1000,
    meanInput: mean((l) => l.input_length),
    meanOutput: mean((l) => l.output_length),
    inherentReuse: blocks ? reused / blocks : 0,
  };
}
