/**
 * The request path: read and tokenise the request, ask the router core for a worker among the
 * eligible ones (session affinity first), proxy the request there with retries on another
 * worker before the first byte, relay the answer (SSE unbuffered), book TTFT/ITL and usage,
 * and free the router's booking when the response ends.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import type { KvRouter } from '../router/index.js';
import { PROMPT_IDS_HEADER, TokenizerError, type ChatMessage, type ChatTokenizer } from '../tokenizer/index.js';
import { SseTokenScanner } from './sse-tokens.js';
import { HttpError, parseJsonBody, readBody } from '../base/http.js';
import type { ServerContext } from './context.js';
import { eligibleWorkers, type Eligible } from './eligibility.js';
import { MS_BUCKETS, SECONDS_BUCKETS, round } from './observability.js';
import type { DecisionRecord, WorkerState } from './types.js';
import { extractUsage, recordUsage, TOKEN_BUCKETS } from './usage.js';

/**
 * The prompt's token ids, tokenised the way the workers do (the model's chat template for chat
 * requests), natively and off the event loop, through the per-piece token cache. Prompt limits
 * (the tokenizer's maxChars / maxTokens) answer 413 / 400.
 */
export async function tokenizeRequest(tokenizer: ChatTokenizer, path: string, body: Record<string, unknown>): Promise<number[]> {
  try {
    if (path === '/v1/chat/completions') {
      const messages = body.messages;
      if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, '"messages" must be a non-empty array of {role, content}', 'invalid_request_error', 'invalid_messages');
      for (const m of messages) {
        if (!m || typeof m !== 'object' || typeof (m as ChatMessage).role !== 'string') throw new HttpError(400, 'each message needs a string "role" and a "content"', 'invalid_request_error', 'invalid_messages');
      }
      return await tokenizer.encodeChat(messages as ChatMessage[]);
    }
    const prompt = body.prompt;
    if (typeof prompt === 'string') return await tokenizer.encode(prompt);
  } catch (err) {
    if (err instanceof TokenizerError) throw new HttpError(err.status === 500 ? 400 : err.status, err.message, 'invalid_request_error', err.code);
    throw err;
  }
  if (Array.isArray(body.prompt) && body.prompt.length > 0 && isTokenIds(body.prompt)) return body.prompt;
  throw new HttpError(400, '"prompt" must be a string or a non-empty array of token ids', 'invalid_request_error', 'invalid_prompt');
}

export async function proxyCompletion(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const { metrics, registry, totals } = ctx;
  const started = performance.now();
  metrics.inc('dynamo_component_router_requests_started_total', 'Requests received by the router');
  const raw = await readBody(req, ctx.opts.bodyLimitBytes ?? 8 * 1024 * 1024);
  const body = parseJsonBody(raw);
  const tokens = await tokenizeRequest(ctx.tokenizer, path, body);
  const tokenizedAt = performance.now();
  const stream = body.stream === true;
  const router = ctx.core;
  if (router.mode !== ctx.mode) router.mode = ctx.mode;
  const requestId = `${path.includes('chat') ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '').slice(0, 24)}`;
  const overrides = readOverrides(body);
  const session = ctx.sessions.sessionOf(req);
  const tried = new Set<string>();
  const client = new AbortController();
  ctx.inflight.add(client);
  let clientGone = false;
  res.on('close', () => {
    if (!res.writableFinished) {
      clientGone = true;
      client.abort();
    }
  });
  metrics.observe('dynamo_component_router_input_sequence_tokens', 'Input tokens per request', TOKEN_BUCKETS, tokens.length);
  metrics.observe('dynamo_lab_router_overhead_tokenize_ms', 'Router time to read, parse and tokenise the request (ms)', MS_BUCKETS, tokenizedAt - started);

  try {
    if (ctx.queue) {
      try {
        await ctx.queue.admit(client.signal);
      } catch (err) {
        totals.rejected++;
        if (clientGone) return;
        throw err;
      }
    }
    // Retry before the first byte: a worker that cannot be reached or answers 5xx is skipped.
    for (let attempt = 1; ; attempt++) {
      let eligible: Eligible;
      try {
        eligible = eligibleWorkers(ctx.opts, registry, metrics, router, tried);
      } catch (err) {
        totals.rejected++;
        throw err;
      }
      const now = Date.now();
      const pinned = ctx.sessions.pinned(session, eligible.ids, now);
      const decision = router.route({ requestId, tokens, nowMs: now, overrides, allowedWorkers: pinned ? [pinned] : eligible.ids });
      const record: DecisionRecord = { ...decision, at_ms: now, attempt };
      if (session) record.session = session;
      if (pinned) record.pinned = true;
      if (eligible.excluded.length) record.excluded = eligible.excluded;
      ctx.decisions.record(record, attempt === 1 ? started : undefined);
      if (session) ctx.sessions.remember(session, decision.chosen, now);
      const st = registry.get(decision.chosen)!;
      tried.add(st.ep.id);
      st.requests++;
      st.lastIsl = decision.isl_tokens;
      st.breaker.onAttempt(now);
      // Tokenize once: a co-located simulated worker takes the ids instead of the text's tokens.
      const handOver = st.ep.provideTokens !== undefined;
      if (handOver) st.ep.provideTokens!(requestId, tokens);
      let upstream;
      try {
        upstream = await request(`${st.ep.url}${path}`, {
          method: 'POST',
          body: raw,
          headers: {
            'content-type': 'application/json',
            'x-request-id': requestId,
            ...(handOver ? { [PROMPT_IDS_HEADER]: '1' } : {}),
            ...(stream ? { accept: 'text/event-stream' } : {}),
          },
          dispatcher: ctx.agent,
          signal: client.signal,
          headersTimeout: 300_000,
          bodyTimeout: 300_000,
        });
      } catch (err) {
        router.free(requestId, Date.now());
        ctx.queue?.notify();
        if (clientGone) {
          record.status = 'aborted';
          return;
        }
        record.status = 'retried';
        noteFailure(ctx, st, `failed before the first byte (${(err as Error).message})`);
        continue;
      }
      if (upstream.statusCode >= 500 && upstream.statusCode !== 529) {
        await upstream.body.dump().catch(() => {});
        router.free(requestId, Date.now());
        ctx.queue?.notify();
        record.status = 'retried';
        noteFailure(ctx, st, `answered ${upstream.statusCode}`);
        continue;
      }
      st.breaker.onSuccess();
      await relay(ctx, upstream, res, record, router, stream, st, started);
      return;
    }
  } catch (err) {
    totals.errors++;
    throw err;
  } finally {
    ctx.inflight.delete(client);
    if (clientGone) router.free(requestId, Date.now());
    ctx.queue?.notify();
  }
}

function noteFailure(ctx: ServerContext, st: WorkerState, what: string): void {
  st.errors++;
  st.breaker.onFailure(Date.now());
  ctx.metrics.inc('dynamo_lab_router_retries_total', 'Requests retried on another worker before the first byte', { worker_id: st.ep.id });
  ctx.opts.log?.(`worker ${st.ep.id} ${what}; trying another worker${st.breaker.state(Date.now()) === 'open' ? ' (circuit opened)' : ''}`);
  void ctx.health.check(st);
}

/** Pass the worker's answer through as it comes, timing it and keeping its tail for `usage`. */
async function relay(ctx: ServerContext, upstream: Awaited<ReturnType<typeof request>>, res: ServerResponse, record: DecisionRecord, router: KvRouter, stream: boolean, st: WorkerState, started: number): Promise<void> {
  const headers: Record<string, string> = {
    'content-type': String(upstream.headers['content-type'] ?? (stream ? 'text/event-stream' : 'application/json')),
    'x-dynamo-lab-worker': record.chosen,
    'x-dynamo-lab-overlap-blocks': String(record.overlap_blocks),
    'x-dynamo-lab-mode': record.mode,
    'x-request-id': record.request_id,
  };
  if (stream) headers['cache-control'] = 'no-cache';
  const retryAfter = upstream.headers['retry-after'];
  if (typeof retryAfter === 'string') headers['retry-after'] = retryAfter;
  res.writeHead(upstream.statusCode, headers);
  res.flushHeaders();
  // Prefill ends at the first generated token, not at the first chunk (a role chunk may come
  // first): that is when the router releases the request's prefill load and times TTFT.
  const scan = stream ? new SseTokenScanner() : undefined;
  let first = true;
  // The last chunks (<= 8 KiB) hold `usage` (the final SSE chunk or the end of the JSON body).
  const tail: Buffer[] = [];
  let tailBytes = 0;
  try {
    for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
      if (scan) {
        if (scan.push(chunk, performance.now())) {
          // kv-ttft learns from the TTFT the router sees: route time -> first generated token.
          router.observeTtft(record.request_id, Date.now() - record.at_ms);
          router.markPrefillCompleted(record.request_id, Date.now());
          ctx.queue?.notify();
        }
      } else if (first) {
        // A non-streamed answer comes whole: its first byte is the best prefill signal there is.
        first = false;
        router.markPrefillCompleted(record.request_id, Date.now());
        ctx.queue?.notify();
      }
      tail.push(chunk);
      tailBytes += chunk.length;
      while (tail.length > 1 && tailBytes - tail[0]!.length >= 8192) tailBytes -= tail.shift()!.length;
      if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
    }
    res.end();
    record.status = upstream.statusCode < 400 ? 'ok' : 'error';
    if (record.status === 'error') {
      st.errors++;
      ctx.totals.errors++;
    }
    if (scan && scan.firstAt > 0) {
      record.ttft_ms = round(scan.firstAt - started);
      st.lastTtftS = (scan.firstAt - started) / 1000;
      ctx.metrics.observe('dynamo_component_router_time_to_first_token_seconds', 'Time to first generated token as the router sees it (s)', SECONDS_BUCKETS, st.lastTtftS);
      // Token events after the first one; several may share a chunk, so this is a mean.
      const gaps = scan.tokenEvents - 1;
      if (gaps > 0) {
        st.lastItlS = (scan.lastAt - scan.firstAt) / gaps / 1000;
        ctx.metrics.observe('dynamo_component_router_inter_token_latency_seconds', 'Mean inter-token latency per request as the router sees it (s)', SECONDS_BUCKETS, st.lastItlS);
      }
    }
    recordUsage(extractUsage(Buffer.concat(tail).toString('utf8')), record, st, ctx.totals, ctx.metrics);
  } catch (err) {
    record.status = 'aborted';
    st.errors++;
    res.destroy(err as Error);
  } finally {
    router.free(record.request_id, Date.now());
    ctx.queue?.notify();
  }
}

function isTokenIds(a: unknown[]): a is number[] {
  for (let i = 0; i < a.length; i++) {
    const t = a[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) return false;
  }
  return true;
}

function readOverrides(body: Record<string, unknown>): { overlapScoreCredit?: number; prefillLoadScale?: number; temperature?: number } | undefined {
  const nvext = body.nvext as { router_config_override?: Record<string, unknown> } | undefined;
  const o = nvext?.router_config_override;
  if (!o || typeof o !== 'object') return undefined;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  return { overlapScoreCredit: num(o.overlap_score_credit), prefillLoadScale: num(o.prefill_load_scale), temperature: num(o.router_temperature) };
}
