/**
 * The demo client: sends chat requests to an OpenAI-compatible endpoint (the local router,
 * a cluster NodePort), streaming, and measures per request what the lab shows: which worker
 * served it, cached / prompt tokens as the worker reported them, and TTFT measured here.
 */
import type { Dispatcher } from 'undici';
import { sseData } from '../base/sse.js';

export interface DemoRequest {
  readonly group?: string;
  readonly system?: string;
  readonly prompt: string;
  readonly max_tokens?: number;
  /** Continue the previous request's conversation: its messages and answer come first. */
  readonly follow_up?: boolean;
  /** A prefix this request shares was sent earlier in its scenario. */
  readonly reuses_prefix?: boolean;
  /** What tables show instead of a long prompt. */
  readonly label?: string;
}

export type ChatTurn = { role: string; content: string };

export interface DemoResult {
  readonly mode: string;
  readonly group: string;
  readonly prompt: string;
  /** A prefix this request shares was sent earlier in its scenario (so a cache could serve it). */
  readonly reuses_prefix: boolean;
  /** It continued the previous request's conversation (resent it with the answer). */
  readonly follow_up?: boolean;
  /** Which demo run (one per demo.run step) produced it. */
  readonly run?: number;
  readonly worker: string | null;
  /** The worker as the serving side named it (Dynamo's frontend: nvext decode_worker_id), when it does. */
  readonly served_by?: string | null;
  /** The response's x-request-id (dynamo-lab's router: its decision's request id). */
  readonly request_id?: string | null;
  readonly cached_tokens: number | null;
  readonly prompt_tokens: number | null;
  readonly ttft_ms: number;
  readonly latency_ms: number;
  readonly overlap_blocks: number | null;
  readonly output_text: string;
  /** The conversation sent, for follow-up requests. */
  readonly messages: readonly ChatTurn[];
}

export class DemoError extends Error {}

/** The messages of a request; `history` is the earlier conversation for follow-ups. */
export function messagesOf(r: DemoRequest, history: readonly ChatTurn[] = []): ChatTurn[] {
  if (history.length) return [...history, { role: 'user', content: r.prompt }];
  return r.system
    ? [
        { role: 'system', content: r.system },
        { role: 'user', content: r.prompt },
      ]
    : [{ role: 'user', content: r.prompt }];
}

/** Send one streaming chat completion and measure it. */
export async function sendDemoRequest(
  baseUrl: string,
  r: DemoRequest,
  opts: {
    model: string;
    mode?: string;
    signal?: AbortSignal;
    dispatcher?: Dispatcher;
    apiKey?: string;
    history?: readonly ChatTurn[];
    /** Dynamo's frontend: ask for nvext worker_id and name the worker with this map (decode_worker_id -> name). */
    dynamoWorkerName?: (dynamoWorkerId: string) => string;
  },
): Promise<DemoResult> {
  const { request } = await import('undici');
  const started = performance.now();
  let res;
  // A pooled keep-alive socket can be stale (e.g. the router was just restarted on the same
  // port): retry once when the connection drops before any response arrived.
  for (let attempt = 0; ; attempt++) {
    try {
      res = await request(`${baseUrl.replace(/\/$/, '')}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
        },
        body: JSON.stringify({
          model: opts.model,
          messages: messagesOf(r, opts.history),
          max_tokens: r.max_tokens ?? 50,
          stream: true,
          stream_options: { include_usage: true },
          ...(opts.dynamoWorkerName ? { nvext: { extra_fields: ['worker_id'] } } : {}),
        }),
        signal: opts.signal,
        dispatcher: opts.dispatcher,
        headersTimeout: 120_000,
        bodyTimeout: 120_000,
      });
      break;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt === 0 && !opts.signal?.aborted && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) continue;
      throw new DemoError(`could not reach ${baseUrl}: ${(err as Error).message}`);
    }
  }
  if (res.statusCode >= 400) {
    const text = await res.body.text();
    let msg = text.slice(0, 300);
    try {
      msg = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? msg;
    } catch {
      /* not JSON */
    }
    throw new DemoError(`${baseUrl} answered HTTP ${res.statusCode}: ${msg}`);
  }
  let ttft = -1;
  let text = '';
  let usage: { prompt_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | undefined;
  let dynamoWorker: string | null = null;
  for await (const data of sseData(res.body)) {
    // Dynamo instance ids are u64 (beyond 2^53): read them from the text, not the parsed number.
    if (opts.dynamoWorkerName && dynamoWorker === null) dynamoWorker = /"decode_worker_id":(\d+)/.exec(data)?.[1] ?? null;
    let obj: { choices?: Array<{ delta?: { content?: string } }>; usage?: typeof usage };
    try {
      obj = JSON.parse(data);
    } catch {
      continue;
    }
    const piece = obj.choices?.[0]?.delta?.content;
    if (piece) {
      if (ttft < 0) ttft = performance.now() - started;
      text += piece;
    }
    if (obj.usage) usage = obj.usage;
  }
  const latency = performance.now() - started;
  const header = (name: string) => {
    const v = res.headers[name];
    return typeof v === 'string' ? v : Array.isArray(v) ? v[0]! : null;
  };
  const overlap = header('x-dynamo-lab-overlap-blocks');
  const servedBy = dynamoWorker !== null && opts.dynamoWorkerName ? opts.dynamoWorkerName(dynamoWorker) : null;
  return {
    mode: opts.mode ?? header('x-dynamo-lab-mode') ?? 'unknown',
    group: r.group ?? 'default',
    prompt: r.label ?? r.prompt,
    reuses_prefix: r.reuses_prefix ?? false,
    ...(r.follow_up ? { follow_up: true } : {}),
    worker: header('x-dynamo-lab-worker') ?? servedBy,
    ...(opts.dynamoWorkerName ? { served_by: servedBy } : {}),
    request_id: header('x-request-id'),
    cached_tokens: usage?.prompt_tokens_details?.cached_tokens ?? null,
    prompt_tokens: usage?.prompt_tokens ?? null,
    ttft_ms: Math.round((ttft < 0 ? latency : ttft) * 100) / 100,
    latency_ms: Math.round(latency * 100) / 100,
    overlap_blocks: overlap === null ? null : Number(overlap),
    output_text: text,
    messages: messagesOf(r, opts.history),
  };
}

export interface ExpectOptions {
  /** same-worker: every request after the first of its group reports at least this share of its prompt cached. */
  readonly minCachedShare?: number;
  /** same-worker: with the block size, each follow-up turn must read at least the previous turn's prompt (whole blocks) from cache. */
  readonly blockSize?: number;
}

/**
 * An expectation about where a group's requests went, as a pass/fail line: `same-worker` (every
 * request after the first of its group went to the first one's worker and read cached tokens;
 * options tighten it) or `alternate` (consecutive requests went to different workers).
 */
export function expectationCheck(
  results: readonly DemoResult[],
  expect: string | undefined,
  opts: ExpectOptions = {},
): { ok: boolean; text: string } | undefined {
  if (!expect) return undefined;
  const groups = new Map<string, DemoResult[]>();
  for (const r of results) groups.set(r.group, [...(groups.get(r.group) ?? []), r]);
  if (expect === 'same-worker') {
    const share = opts.minCachedShare;
    const followUps = results.some((r) => r.follow_up) && opts.blockSize !== undefined;
    for (const [g, rs] of groups) {
      const first = rs[0]!.worker;
      const strays = rs.slice(1).filter((r) => r.worker !== first);
      if (strays.length)
        return {
          ok: false,
          text: `in group "${g}" request 1 went to ${first} but ${strays.map((r) => `"${r.prompt}" went to ${r.worker}`).join(', ')}`,
        };
      const uncached = rs.slice(1).filter((r) => !r.cached_tokens);
      if (uncached.length)
        return { ok: false, text: `in group "${g}" ${uncached.map((r) => `"${r.prompt}"`).join(', ')} reported no cached tokens` };
      if (share !== undefined) {
        const low = rs.slice(1).filter((r) => (r.cached_tokens ?? 0) < share * (r.prompt_tokens ?? 0));
        if (low.length)
          return {
            ok: false,
            text: `in group "${g}" ${low.map((r) => `"${r.prompt}" had ${r.cached_tokens}/${r.prompt_tokens} cached`).join(', ')}: expected at least ${Math.round(share * 100)} % of each prompt`,
          };
      }
      if (followUps) {
        const bs = opts.blockSize!;
        for (let i = 1; i < rs.length; i++) {
          const r = rs[i]!;
          const need = Math.floor((rs[i - 1]!.prompt_tokens ?? 0) / bs) * bs;
          if (r.follow_up && (r.cached_tokens ?? 0) < need)
            return {
              ok: false,
              text: `in group "${g}" the follow-up "${r.prompt}" read ${r.cached_tokens} tokens from cache, less than the previous turn's ${need} (whole blocks)`,
            };
        }
      }
    }
    return {
      ok: true,
      text: `every request after the first of its scenario went to the same worker as the first and reported cached tokens${share !== undefined ? ` (at least ${Math.round(share * 100)} % of its prompt)` : ''}${followUps ? "; each follow-up turn read at least the previous turn's whole prompt blocks from cache" : ''}`,
    };
  }
  if (expect === 'alternate') {
    for (let i = 1; i < results.length; i++) {
      if (results[i]!.worker === results[i - 1]!.worker)
        return { ok: false, text: `requests ${i} and ${i + 1} both went to ${results[i]!.worker}; round-robin should alternate` };
    }
    return { ok: true, text: 'consecutive requests went to different workers' };
  }
  return { ok: false, text: `unknown expectation "${expect}" (use same-worker or alternate)` };
}

/** Check an expectation about where a group's requests went; returns a problem or null. */
export function checkExpectation(results: readonly DemoResult[], expect: string | undefined, opts: ExpectOptions = {}): string | null {
  const c = expectationCheck(results, expect, opts);
  return c && !c.ok ? c.text : null;
}
