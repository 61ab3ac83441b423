/**
 * aiperf 0.13.0 as the load generator for every system: the same trace slice on a fixed schedule,
 * streaming chat completions, ignore_eos, a fixed seed. aiperf takes the tokenizer from the
 * offline HF cache the model directory provides (it refuses a local directory).
 */
import { mkdtempSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './common.js';
import type { ModelDir } from './model.js';
import type { Venv } from './venv.js';

export interface AiperfMetrics {
  requests: number;
  errors: number;
  ttft_ms: { avg: number; p50: number; p99: number };
  itl_ms: { avg: number; p50: number; p99: number };
  e2e_ms: { avg: number; p50: number; p99: number };
  output_tokens_per_s: number;
  prompt_tokens: number;
  cached_tokens: number;
  /** Cached prompt tokens / prompt tokens, as the workers reported them in `usage`. */
  hit_rate: number;
  duration_s: number;
}

export function aiperfArgv(
  venv: Venv,
  model: ModelDir,
  url: string,
  slicePath: string,
  artifactDir: string,
  opts: { seed?: number; workersMax?: number } = {},
): string[] {
  return [
    venv.bin('aiperf'),
    'profile',
    '--model',
    model.name,
    '--url',
    url,
    '--endpoint-type',
    'chat',
    '--streaming',
    '--input-file',
    slicePath,
    '--custom-dataset-type',
    'mooncake_trace',
    '--fixed-schedule',
    '--tokenizer',
    model.name,
    '--extra-inputs',
    'ignore_eos:true',
    '--random-seed',
    String(opts.seed ?? 42),
    '--ui-type',
    'none',
    '--no-server-metrics',
    '--no-gpu-telemetry',
    '--workers-max',
    String(opts.workersMax ?? 4),
    '--artifact-dir',
    artifactDir,
  ];
}

/** aiperf running; `tempDir` is its TMPDIR (removed once it exits 0, kept after a failure). */
export interface AiperfDaemon extends Daemon {
  readonly tempDir: string;
}

export function startAiperf(
  venv: Venv,
  model: ModelDir,
  url: string,
  slicePath: string,
  artifactDir: string,
  logDir: string,
  name = 'aiperf',
): AiperfDaemon {
  // aiperf's temporary files (IPC socket directories, child-process logs, the dataset's
  // memory-mapped files) go in a TMPDIR of its own instead of the system's, where aiperf 0.13.0
  // left two directories and an aiperf_mmap_<id>/ behind per run. Short, under the system temp
  // directory: IPC socket paths must stay under ~107 bytes. Removed after a clean exit; kept
  // (named in the error) after a failure, for its child-process logs.
  const tempDir = mkdtempSync(join(tmpdir(), 'dl-aiperf-'));
  const daemon = startDaemon(name, aiperfArgv(venv, model, url, slicePath, artifactDir), {
    env: {
      ...process.env,
      HF_HOME: model.hfHome,
      HF_HUB_OFFLINE: '1',
      NO_COLOR: '1',
      TERM: 'dumb',
      COLUMNS: '160',
      TMPDIR: tempDir,
    },
    logDir,
  });
  const exited = daemon.exited.then(async (code) => {
    if (code === 0) await rm(tempDir, { recursive: true, force: true }).catch(() => {});
    return code;
  });
  return { ...daemon, exited, tempDir };
}

type Stat = { avg?: number; p50?: number; p99?: number } | null | undefined;
const pick = (s: Stat) => ({ avg: s?.avg ?? NaN, p50: s?.p50 ?? NaN, p99: s?.p99 ?? NaN });

export async function readAiperf(artifactDir: string): Promise<AiperfMetrics> {
  const path = join(artifactDir, 'profile_export_aiperf.json');
  const d = JSON.parse(await readFile(path, 'utf8')) as Record<string, { avg?: number; p50?: number; p99?: number } | unknown>;
  const g = (k: string) => d[k] as Stat;
  const errs = Array.isArray(d.error_summary) ? (d.error_summary as Array<{ count?: number }>).reduce((s, e) => s + (e.count ?? 0), 0) : 0;
  const prompt = g('total_usage_prompt_tokens')?.avg ?? NaN;
  const cached = (d.total_usage_prompt_cache_read_tokens as Stat)?.avg ?? 0;
  return {
    requests: g('request_count')?.avg ?? 0,
    errors: Math.max(errs, (d.error_request_count as Stat)?.avg ?? 0),
    ttft_ms: pick(g('time_to_first_token')),
    itl_ms: pick(g('inter_token_latency')),
    e2e_ms: pick(g('request_latency')),
    output_tokens_per_s: g('output_token_throughput')?.avg ?? NaN,
    prompt_tokens: prompt,
    cached_tokens: cached,
    hit_rate: prompt > 0 ? cached / prompt : NaN,
    duration_s: g('benchmark_duration')?.avg ?? NaN,
  };
}

/** Per-request records of aiperf's profile_export.jsonl (ttft, itl, cached tokens, start time). */
export interface AiperfRecord {
  session: string;
  startNs: number;
  ttftMs: number;
  latencyMs: number;
  itlMs: number;
  isl: number;
  osl: number;
  cachedTokens: number;
  promptTokens: number;
  error: boolean;
}

export async function readAiperfRecords(artifactDir: string): Promise<AiperfRecord[]> {
  const text = await readFile(join(artifactDir, 'profile_export.jsonl'), 'utf8');
  const out: AiperfRecord[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const o = JSON.parse(line) as { metadata: Record<string, unknown>; metrics: Record<string, { value: number }>; error?: unknown };
    const m = (k: string) => o.metrics?.[k]?.value ?? NaN;
    out.push({
      session: String(o.metadata.conversation_id ?? o.metadata.x_correlation_id ?? ''),
      startNs: Number(o.metadata.request_start_ns ?? 0),
      ttftMs: m('time_to_first_token'),
      latencyMs: m('request_latency'),
      itlMs: m('inter_token_latency'),
      isl: m('input_sequence_length'),
      osl: m('output_sequence_length'),
      cachedTokens: m('usage_prompt_cache_read_tokens'),
      promptTokens: m('usage_prompt_tokens'),
      error: o.error !== undefined && o.error !== null,
    });
  }
  return out.sort((a, b) => a.startNs - b.startNs);
}
