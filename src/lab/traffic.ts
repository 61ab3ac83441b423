/**
 * Background traffic: `total` streaming chat requests, `concurrency` at a time, prompts from a
 * template (`{i}` is the request number, from 1). Used by the `traffic.run` lab action (local
 * target) and by `dynamo-lab traffic` (any OpenAI endpoint, e.g. a cluster's NodePort).
 */
import { sendDemoRequest, type DemoResult } from './demo.js';

export interface TrafficOptions {
  readonly total: number;
  readonly concurrency: number;
  readonly prompt: string;
  readonly maxTokens: number;
  readonly model: string;
  readonly mode?: string;
  readonly apiKey?: string;
  readonly signal?: AbortSignal;
}

export const DEFAULT_TRAFFIC_PROMPT = 'Request {i}: explain one idea from distributed systems in two sentences.';

export async function sendTraffic(
  url: string,
  o: TrafficOptions,
): Promise<{ results: DemoResult[]; errors: string[]; wallSeconds: number }> {
  const results: DemoResult[] = [];
  const errors: string[] = [];
  let next = 0;
  const lane = async () => {
    while (next < o.total && !o.signal?.aborted) {
      const i = next++;
      try {
        results.push(
          await sendDemoRequest(
            url,
            { prompt: o.prompt.replaceAll('{i}', String(i + 1)), max_tokens: o.maxTokens, group: 'traffic' },
            { model: o.model, mode: o.mode, signal: o.signal, apiKey: o.apiKey },
          ),
        );
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, lane));
  return { results, errors, wallSeconds: (performance.now() - started) / 1000 };
}
