/**
 * The simulated worker's /metrics on prom-client, under vLLM's metric names (vllm:*) and labels
 * (engine, model_name, plus our worker_id). One Registry per worker. Gauges and counters are read
 * from the engine's stats when scraped; the latency histograms receive every observation.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineStats, SimEngine } from './engine.js';

type StatName = { [K in keyof EngineStats]: EngineStats[K] extends number ? K : never }[keyof EngineStats];

const GAUGES: Array<[string, string, StatName]> = [
  ['vllm:num_requests_running', 'Number of requests in model execution batches.', 'running'],
  ['vllm:num_requests_waiting', 'Number of requests waiting to be processed.', 'waiting'],
  ['vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', 'usage'],
  ['vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage (deprecated name).', 'usage'],
  ['dynamo_lab_sim_kv_blocks_total', 'KV cache capacity in blocks.', 'totalBlocks'],
  ['dynamo_lab_sim_kv_blocks_active', 'Full KV blocks referenced by running requests.', 'activeBlocks'],
  ['dynamo_lab_sim_kv_blocks_cached', 'Full KV blocks in the prefix cache (active + inactive).', 'cachedBlocks'],
];

const COUNTERS: Array<[string, string, StatName]> = [
  ['vllm:num_preemptions_total', 'Cumulative number of preemptions from the engine.', 'preemptions'],
  ['vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.', 'prefixQueryTokens'],
  ['vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.', 'prefixHitTokens'],
  ['vllm:prompt_tokens_total', 'Number of prefill tokens processed.', 'promptTokens'],
  ['vllm:generation_tokens_total', 'Number of generation tokens processed.', 'generationTokens'],
  ['vllm:request_success_total', 'Count of successfully processed requests.', 'requestsFinished'],
  ['dynamo_lab_sim_kv_evictions_total', 'Inactive KV blocks evicted (LRU).', 'evictions'],
];

export function simRegistry(engine: SimEngine, labels: { model_name: string; worker_id: string }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ engine: '0', ...labels });
  const registers = [registry];
  const stat = (k: StatName): number => engine.stats()[k] as number;
  for (const [name, help, key] of GAUGES) {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(stat(key));
      },
    });
  }
  for (const [name, help, key] of COUNTERS) {
    // The engine keeps the running total; the counter shows it.
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(stat(key));
      },
    });
  }
  const ttft = new Histogram({
    name: 'vllm:time_to_first_token_seconds',
    help: 'Histogram of time to first token in seconds.',
    buckets: [...engine.ttftHistogram.buckets],
    registers,
  });
  const itl = new Histogram({
    name: 'vllm:inter_token_latency_seconds',
    help: 'Histogram of inter-token latency in seconds.',
    buckets: [...engine.itlHistogram.buckets],
    registers,
  });
  engine.ttftHistogram.tap((v) => ttft.observe(v));
  engine.itlHistogram.tap((v) => itl.observe(v));
  return registry;
}
