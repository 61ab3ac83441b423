/**
 * Usage scraping: the worker's `usage` (prompt, completion and cached tokens) is read from the
 * tail of its JSON body or SSE stream, and booked per worker and server-wide so the predicted
 * hit rate (router) can be compared with the achieved one (worker).
 */
import type { Metrics } from './metrics.js';
import type { DecisionRecord, Totals, WorkerState } from './types.js';

export interface Usage {
  cached?: number;
  prompt?: number;
  completion?: number;
}

function lastNumber(tail: string, key: string): number | undefined {
  const i = tail.lastIndexOf(`"${key}"`);
  if (i < 0) return undefined;
  const m = new RegExp(`"${key}"\\s*:\\s*(\\d+)`).exec(tail.slice(i));
  return m ? Number(m[1]) : undefined;
}

/** Find the last `usage` numbers in the tail of a JSON body or SSE stream. */
export function extractUsage(tail: string): Usage {
  return {
    cached: lastNumber(tail, 'cached_tokens'),
    prompt: lastNumber(tail, 'prompt_tokens'),
    completion: lastNumber(tail, 'completion_tokens'),
  };
}

export const TOKEN_BUCKETS = [16, 64, 256, 1024, 4096, 16384, 65536, 262144];

/** Book a finished request's usage on its worker, the totals and the metrics. */
export function recordUsage(usage: Usage, record: DecisionRecord, st: WorkerState, totals: Totals, metrics: Metrics): void {
  if (usage.completion !== undefined)
    metrics.observe(
      'dynamo_component_router_output_sequence_tokens',
      'Output tokens per request (worker usage)',
      TOKEN_BUCKETS,
      usage.completion,
    );
  if (usage.cached === undefined) return;
  const cached = usage.cached;
  record.achieved_cached_tokens = cached;
  const prompt = usage.prompt ?? record.isl_tokens;
  st.achievedCached += cached;
  st.promptTokensWithUsage += prompt;
  st.predictedCachedWithUsage += record.cached_tokens;
  totals.achievedCached += cached;
  totals.promptTokensWithUsage += prompt;
  totals.predictedCachedWithUsage += record.cached_tokens;
  metrics.observe(
    'dynamo_frontend_cached_tokens',
    'Cached prompt tokens reported by the worker',
    [0, 16, 64, 256, 1024, 4096, 16384, 65536],
    cached,
  );
  metrics.inc('dynamo_lab_router_achieved_cached_tokens_total', 'Cached tokens the workers reported', {}, cached);
  metrics.inc('dynamo_lab_router_predicted_cached_tokens_total', 'Cached tokens the router predicted', {}, record.cached_tokens);
  metrics.inc('dynamo_lab_router_prompt_tokens_total', 'Prompt tokens routed', {}, prompt);
}
