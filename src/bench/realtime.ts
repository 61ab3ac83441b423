/**
 * Real-time replay against an OpenAI-compatible base URL (the local router, a Dynamo frontend
 * NodePort, a single vLLM): fixed-schedule open-loop arrivals on the wall clock, streaming
 * `/v1/completions`, client-side TTFT / ITL / latency like aiperf.
 *
 * Prompt on the wire (`prompt` option):
 * - `tokens` (default): the synthesised token ids as a `/v1/completions` `prompt` array. The
 *   server skips tokenization, so the blocks it caches are exactly the workload's blocks (equal
 *   segment ids -> equal KV blocks); vLLM, Dynamo's frontend, our router and the sim accept it.
 *   Ids are in [1000, 31000), valid for any vocabulary of >= 31k tokens.
 * - `text`: the same ids decoded to text with the bundled Qwen tokenizer and sent as a string,
 *   as aiperf does. The server re-tokenizes, which can move a few tokens across block borders,
 *   so shared prefixes stay shared but the hit rate can differ slightly from `tokens`.
 *
 * Every request asks for exactly `output_length` tokens (`max_tokens`, `min_tokens`,
 * `ignore_eos`, and `nvext.ignore_eos` for Dynamo) and `stream_options.include_usage`, so the
 * final chunk carries `usage.prompt_tokens_details.cached_tokens` (the worker's prefix hit).
 * TTFT is taken at the first chunk carrying generated text or token ids; a chunk may carry
 * several tokens, so the output token count comes from `usage` when present.
 */
import { setMaxListeners } from 'node:events';
import { Agent, request } from 'undici';
import { sseData } from '../base/sse.js';
import type { RequestRecord } from './stats.js';
import { promptTokenArray } from './synth.js';
import { turnSchedule, type BenchRequest, type Workload } from './workload.js';

export type PromptFormat = 'tokens' | 'text';

export interface RealtimeOptions {
  url: string;
  /**
   * Several front ends of the same workers (router replicas): requests go to them in turn, in
   * the order they are sent (`url` is then ignored).
   */
  urls?: readonly string[];
  model: string;
  speedup?: number;
  prompt?: PromptFormat;
  /** Needed for prompt=text. */
  decode?: (ids: readonly number[]) => Promise<string> | string;
  /** The router's KV block size, to turn x-dynamo-lab-overlap-blocks into predicted tokens. */
  blockSize?: number;
  /** Per-request timeout (ms), default 600 000. */
  timeoutMs?: number;
  signal?: AbortSignal;
  apiKey?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface RealtimeResult {
  records: RequestRecord[];
  wallMs: number;
}

export async function runRealtime(w: Workload, opts: RealtimeOptions): Promise<RealtimeResult> {
  const speedup = opts.speedup ?? 1;
  const bases = (opts.urls && opts.urls.length > 0 ? opts.urls : [opts.url]).map((u) => u.replace(/\/+$/, '').replace(/\/v1$/, ''));
  const base = bases[0]!;
  let sentCount = 0;
  const agent = new Agent({ connections: 1024, pipelining: 0, keepAliveTimeout: 30_000 });
  const records: RequestRecord[] = new Array(w.requests.length);
  const { firsts, nextTurn, t0 } = turnSchedule(w.requests);
  const start = performance.now();
  let done = 0;
  const inflight = new Set<Promise<void>>();
  /** x-dynamo-lab-overlap-blocks per request (dynamo-lab router), turned into tokens at the end. */
  const overlaps = new Map<number, number>();
  const ac = new AbortController();
  // One abort listener per in-flight request and timer.
  setMaxListeners(0, ac.signal);
  const onAbort = () => ac.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  const sleepUntil = (at: number) =>
    new Promise<void>((resolve) => {
      const ms = at - performance.now();
      if (ms <= 0 || ac.signal.aborted) return resolve();
      const t = setTimeout(() => {
        ac.signal.removeEventListener('abort', stop);
        resolve();
      }, ms);
      const stop = () => {
        clearTimeout(t);
        resolve();
      };
      ac.signal.addEventListener('abort', stop, { once: true });
    });

  const launch = (r: BenchRequest) => {
    const p: Promise<void> = (async () => {
      await sendOne(r);
      done++;
      opts.onProgress?.(done, w.requests.length);
      const nt = nextTurn.get(r.index);
      if (nt && !ac.signal.aborted) {
        await sleepUntil(performance.now() + (nt.delayMs ?? 0) / speedup);
        if (!ac.signal.aborted) launch(nt);
      }
    })().finally(() => inflight.delete(p));
    inflight.add(p);
  };

  const sendOne = async (r: BenchRequest): Promise<void> => {
    const ids = promptTokenArray(w.seed, r);
    const prompt = opts.prompt === 'text' ? await opts.decode!(ids) : ids;
    const body = JSON.stringify({
      model: opts.model,
      prompt,
      max_tokens: r.outputLength,
      min_tokens: r.outputLength,
      ignore_eos: true,
      nvext: { ignore_eos: true },
      stream: true,
      stream_options: { include_usage: true },
    });
    const target = bases[sentCount++ % bases.length]!;
    const sent = performance.now();
    const rec: RequestRecord = { index: r.index, startMs: sent - start, inputTokens: r.inputLength, outputTokens: 0 };
    records[r.index] = rec;
    const reqAc = new AbortController();
    const timer = setTimeout(() => reqAc.abort(new Error('timeout')), opts.timeoutMs ?? 600_000);
    const relay = () => reqAc.abort(ac.signal.reason);
    ac.signal.addEventListener('abort', relay, { once: true });
    try {
      const res = await request(`${target}/v1/completions`, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
        },
        dispatcher: agent,
        signal: reqAc.signal,
        headersTimeout: opts.timeoutMs ?? 600_000,
        bodyTimeout: opts.timeoutMs ?? 600_000,
      });
      const worker = res.headers['x-dynamo-lab-worker'];
      if (typeof worker === 'string') rec.worker = worker;
      const overlapHeader = res.headers['x-dynamo-lab-overlap-blocks'];
      const overlap = Number(overlapHeader);
      if (typeof overlapHeader === 'string' && Number.isFinite(overlap)) overlaps.set(r.index, overlap);
      if (res.statusCode >= 400) {
        const text = await res.body.text();
        rec.error = `HTTP ${res.statusCode}: ${errorMessage(text)}`;
        return;
      }
      let chunks = 0;
      let usageOut: number | undefined;
      let firstAt: number | undefined;
      let lastAt = sent;
      let streamError: string | undefined;
      for await (const data of sseData(res.body)) {
        let obj: Record<string, unknown>;
        try {
          obj = JSON.parse(data) as Record<string, unknown>;
        } catch {
          continue;
        }
        const now = performance.now();
        if (obj.error) {
          streamError = errorMessage(JSON.stringify(obj));
          continue;
        }
        const choices = obj.choices as Array<Record<string, unknown>> | undefined;
        const c0 = choices?.[0];
        const hasToken =
          c0 !== undefined &&
          ((typeof c0.text === 'string' && c0.text.length > 0) ||
            (Array.isArray(c0.token_ids) && c0.token_ids.length > 0) ||
            (c0.finish_reason == null && typeof c0.text === 'string'));
        if (hasToken) {
          chunks++;
          firstAt ??= now;
          lastAt = now;
        }
        const usage = obj.usage as { completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | undefined;
        if (usage) {
          if (typeof usage.completion_tokens === 'number') usageOut = usage.completion_tokens;
          const cached = usage.prompt_tokens_details?.cached_tokens;
          if (typeof cached === 'number') rec.cachedTokens = cached;
        }
      }
      if (streamError) {
        rec.error = streamError;
        return;
      }
      if (firstAt === undefined) {
        rec.error = 'the stream ended without a token';
        return;
      }
      rec.ttftMs = firstAt - sent;
      rec.latencyMs = lastAt - sent;
      rec.outputTokens = usageOut ?? chunks;
    } catch (err) {
      rec.error = ac.signal.aborted
        ? 'interrupted'
        : (err as Error).message === 'timeout' || (err as Error).name === 'AbortError'
          ? 'timeout'
          : (err as Error).message;
    } finally {
      clearTimeout(timer);
      ac.signal.removeEventListener('abort', relay);
    }
  };

  try {
    let i = 0;
    while (i < firsts.length && !ac.signal.aborted) {
      const ts = firsts[i]!.arrivalMs;
      await sleepUntil(start + (ts - t0) / speedup);
      while (i < firsts.length && firsts[i]!.arrivalMs === ts && !ac.signal.aborted) launch(firsts[i++]!);
    }
    while (inflight.size > 0) await Promise.race(inflight);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await agent.close().catch(() => {});
  }
  if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('interrupted');
  if (overlaps.size > 0) {
    // The router's own block size (it need not match --block-size): from its decision log.
    let bs = opts.blockSize;
    try {
      const res = await request(`${base}/debug/decisions?limit=1`, { method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 });
      const j = (await res.body.json()) as { decisions?: Array<{ block_size?: number }> };
      const b = j.decisions?.[0]?.block_size;
      if (typeof b === 'number' && b > 0) bs = b;
    } catch {
      // keep --block-size
    }
    if (bs) for (const [i, o] of overlaps) if (records[i]) records[i]!.predictedCachedTokens = Math.min(o * bs, records[i]!.inputTokens);
  }
  // Requests never sent (interrupted) have no record.
  return { records: records.filter((r) => r !== undefined), wallMs: performance.now() - start };
}

function errorMessage(text: string): string {
  try {
    const o = JSON.parse(text) as { error?: { message?: string } | string; message?: string };
    if (typeof o.error === 'string') return o.error;
    return (o.error?.message ?? o.message ?? text).slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}
