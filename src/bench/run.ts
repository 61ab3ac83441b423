/**
 * One benchmark: a workload replayed for every (speedup, mode) pair, in virtual time or
 * against URLs, summarised into the ★ Bench JSON:
 *
 *   { workload, workers, modes: {<mode>: {...}}, oracle_prefix_hit_rate, ... }
 *
 * `modes` holds the first speedup listed; with several speedups `sweep` holds one entry per
 * speedup (same shape) so "TTFT vs load" can be read from one document.
 */
import type { RoutingMode } from '../router/index.js';
import { checkEqualHealth, type TargetHealth } from './health.js';
import { engineOracle, segmentOracle } from './oracle.js';
import { PromptHasher } from './prompt-hashes.js';
import { runRealtime, type PromptFormat } from './realtime.js';
import { summarize, type ModeResult, type RequestRecord, type Summary } from './stats.js';
import { MOCKER_DEFAULTS, runVirtual } from './virtual.js';
import { summarizeWorkload, type Workload } from './workload.js';

export interface BenchConfig {
  modes: RoutingMode[];
  workers: number;
  blockSize: number;
  gpuBlocks: number;
  speedups: number[];
  seed: number;
  /** Virtual time (sim engines + router core) or real time against targets. */
  target:
    | { kind: 'virtual' }
    | {
        kind: 'http';
        urls: Record<string, string>;
        model?: string;
        prompt: PromptFormat;
        apiKey?: string;
        skipHealthCheck?: boolean;
        timeoutMs?: number;
      };
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface RunOutcome {
  speedup: number;
  mode: string;
  summary: Summary;
  records: RequestRecord[];
  wallMs: number;
  virtualMs?: number;
  health?: TargetHealth[];
  engines?: Array<Record<string, number | string>>;
  routerEvents?: Record<string, number>;
}

export interface BenchJson {
  workload: Record<string, unknown>;
  workers: number;
  modes: Record<string, ModeResult>;
  oracle_prefix_hit_rate: number;
  oracle: Record<string, unknown>;
  sweep: Array<{ speedup: number; modes: Record<string, ModeResult> }>;
  runs: Array<{
    speedup: number;
    mode: string;
    wall_ms: number;
    virtual_ms?: number;
    url?: string;
    health?: unknown;
    engines?: unknown;
    router_events?: Record<string, number>;
  }>;
}

/** A benchmark setting out of range (speedup, block size, KV blocks, workers): the caller's input, not a bug. */
export class BenchConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchConfigError';
  }
}

function checkConfig(cfg: BenchConfig): void {
  for (const s of cfg.speedups) if (!(s > 0) || !Number.isFinite(s)) throw new BenchConfigError(`speedup must be a number > 0, got ${s}`);
  if (!Number.isInteger(cfg.blockSize) || cfg.blockSize < 1)
    throw new BenchConfigError(`block size must be an integer >= 1, got ${cfg.blockSize}`);
  if (!Number.isInteger(cfg.gpuBlocks) || cfg.gpuBlocks < 1)
    throw new BenchConfigError(`KV blocks per worker must be an integer >= 1, got ${cfg.gpuBlocks}`);
  if (!Number.isInteger(cfg.workers) || cfg.workers < 0) throw new BenchConfigError(`workers must be an integer >= 0, got ${cfg.workers}`);
}

export class HealthCheckError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'HealthCheckError';
  }
}

export async function runBench(w: Workload, cfg: BenchConfig): Promise<{ json: BenchJson; outcomes: RunOutcome[] }> {
  checkConfig(cfg);
  const log = cfg.log ?? (() => {});
  const hasher = new PromptHasher(w.seed, cfg.blockSize, w.segmentTokens);
  const outcomes: RunOutcome[] = [];
  let workers = cfg.workers;

  for (const speedup of cfg.speedups) {
    for (const mode of cfg.modes) {
      if (cfg.signal?.aborted) throw cfg.signal.reason ?? new Error('interrupted');
      if (cfg.target.kind === 'virtual') {
        log(`replaying ${w.requests.length} requests in virtual time: mode ${mode}, ${cfg.workers} workers, speedup ${speedup}x`);
        const r = await runVirtual(w, {
          mode,
          workers: cfg.workers,
          blockSize: cfg.blockSize,
          gpuBlocks: cfg.gpuBlocks,
          speedup,
          seed: cfg.seed,
          hasher,
          signal: cfg.signal,
          onProgress: (d, n) => log(`  ${mode} ${speedup}x: ${d}/${n} requests`),
        });
        const summary = summarize(r.records);
        log(`  ${mode} ${speedup}x done: ${(r.wallMs / 1000).toFixed(1)} s wall for ${(r.virtualMs / 1000).toFixed(0)} s simulated`);
        outcomes.push({
          speedup,
          mode,
          summary,
          records: r.records,
          wallMs: r.wallMs,
          virtualMs: r.virtualMs,
          engines: r.engines,
          routerEvents: r.routerEvents,
        });
      } else {
        const t = cfg.target;
        const url = t.urls[mode]!;
        const allUrls = [...new Set(Object.values(t.urls))];
        let health: TargetHealth[] | undefined;
        if (!t.skipHealthCheck) {
          log(`equal-health checkpoint before measuring ${mode}: ${allUrls.join(', ')}`);
          const v = await checkEqualHealth(allUrls, cfg.workers > 0 ? cfg.workers : undefined);
          health = v.targets;
          if (!v.ok) throw new HealthCheckError(`the equal-health checkpoint failed before measuring ${mode}`, v.problems);
          const mine = v.targets.find((x) => x.url === url.replace(/\/+$/, '').replace(/\/v1$/, ''));
          if (mine?.mode && mine.mode !== mode)
            throw new HealthCheckError(`${url} routes with mode ${mine.mode}, but it is measured as ${mode}`, [
              `${url} reports mode ${mine.mode}`,
            ]);
          for (const x of v.targets)
            log(
              `  ${x.url}: ${x.kind}${x.mode ? ` (${x.mode})` : ''}, ${x.healthyWorkers ?? '?'}/${x.totalWorkers ?? '?'} workers healthy, model ${x.models[0] ?? '?'}`,
            );
          if (workers <= 0 && mine?.healthyWorkers !== undefined) workers = mine.healthyWorkers;
        }
        const model = t.model ?? health?.find((x) => x.models.length > 0)?.models[0];
        if (!model)
          throw new HealthCheckError(`no model name for ${url}`, [
            'give --model <name> (the health check was skipped or /v1/models listed none)',
          ]);
        let decode: ((ids: readonly number[]) => Promise<string>) | undefined;
        if (t.prompt === 'text') {
          const { loadChatTokenizer } = await import('../tokenizer/index.js');
          const tok = await loadChatTokenizer();
          decode = (ids) => tok.decode(ids);
        }
        log(`sending ${w.requests.length} requests to ${url} (${mode}, speedup ${speedup}x, prompt as ${t.prompt})`);
        const r = await runRealtime(w, {
          url,
          model,
          speedup,
          prompt: t.prompt,
          decode,
          blockSize: cfg.blockSize,
          signal: cfg.signal,
          apiKey: t.apiKey,
          timeoutMs: t.timeoutMs,
          onProgress: (d, n) => {
            if (d % 100 === 0 || d === n) log(`  ${mode} ${speedup}x: ${d}/${n} requests`);
          },
        });
        outcomes.push({ speedup, mode, summary: summarize(r.records), records: r.records, wallMs: r.wallMs, health });
      }
    }
  }

  // The oracle: one LRU with all workers' capacity, in engine blocks; plus the inherent reuse.
  const capacity = Math.max(1, workers) * cfg.gpuBlocks;
  const oracle = engineOracle(w, hasher, capacity);
  const infinite = engineOracle(w, hasher, Infinity);
  const segInf = segmentOracle(w, Infinity);
  const summaryW = summarizeWorkload(w);

  const sweep = cfg.speedups.map((speedup) => ({
    speedup,
    modes: Object.fromEntries(outcomes.filter((o) => o.speedup === speedup).map((o) => [o.mode, o.summary.result])),
  }));
  const json: BenchJson = {
    workload: {
      name: w.name,
      kind: w.kind,
      source: w.source,
      requests: summaryW.requests,
      sessions: summaryW.sessions,
      span_s: summaryW.span_ms / 1000,
      input_tokens_avg: summaryW.input_tokens.avg,
      output_tokens_avg: summaryW.output_tokens.avg,
      segment_tokens: w.segmentTokens,
      distinct_segments: summaryW.distinct_segments,
      speedup: cfg.speedups[0],
      speedups: cfg.speedups,
      seed: cfg.seed,
      prompt_seed: w.seed,
      block_size: cfg.blockSize,
      gpu_blocks: cfg.gpuBlocks,
      time: cfg.target.kind === 'virtual' ? 'virtual' : 'real',
      ...(cfg.target.kind === 'http'
        ? { urls: cfg.target.urls, prompt: cfg.target.prompt }
        : { engine: { ...MOCKER_DEFAULTS, blockSize: cfg.blockSize, gpuBlocks: cfg.gpuBlocks } }),
    },
    workers,
    modes: sweep[0]?.modes ?? {},
    oracle_prefix_hit_rate: oracle.hit_rate,
    oracle: {
      capacity_blocks: capacity,
      block_size: cfg.blockSize,
      hit_rate: oracle.hit_rate,
      block_hit_rate: oracle.block_hit_rate,
      infinite_cache_hit_rate: infinite.hit_rate,
      inherent_reuse_segments: segInf.block_hit_rate,
    },
    sweep,
    runs: outcomes.map((o) => ({
      speedup: o.speedup,
      mode: o.mode,
      wall_ms: Math.round(o.wallMs),
      ...(o.virtualMs !== undefined ? { virtual_ms: Math.round(o.virtualMs) } : {}),
      ...(cfg.target.kind === 'http' ? { url: cfg.target.urls[o.mode] } : {}),
      ...(o.health
        ? {
            health: o.health.map((h) => ({
              url: h.url,
              kind: h.kind,
              mode: h.mode,
              healthy_workers: h.healthyWorkers,
              total_workers: h.totalWorkers,
            })),
          }
        : {}),
      ...(o.engines ? { engines: o.engines } : {}),
      ...(o.routerEvents ? { router_events: o.routerEvents } : {}),
    })),
  };
  return { json, outcomes };
}
