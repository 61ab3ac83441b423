/**
 * The request path: read and tokenise the request, ask the router core for a worker among the
 * eligible ones (session affinity first), proxy the request there with retries on another
 * worker before the first byte, relay the answer (SSE unbuffered), book TTFT/ITL and usage,
 * and free the router's booking when the response ends.
 */
import { nowMs } from '../base/clock.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { DirectTargetError, type KvRouter } from '../router/index.js';
import { PROMPT_IDS_HEADER } from '../tokenizer/index.js';
import { HttpError, parseJsonBody, readBody, sendError } from '../base/http.js';
import type { ServerContext } from './context.js';
import { checkTargetUsable, directTarget, validTargets } from './direct.js';
import { eligibleWorkers, type Eligible } from './eligibility.js';
import { bodyForms, checkFields, readOverrides, tokenizeRequest, withIdsForPrompt } from './request-body.js';
import { MS_BUCKETS, SECONDS_BUCKETS, round } from './observability.js';
import type { DecisionRecord, WorkerState } from './types.js';
import { SseRelay, sseError } from './sse-relay.js';
import { ChunkedWriter } from './chunked-writer.js';
import { promptIdsRoute } from './workers.js';
import { dispatchUpstream, type UpstreamAnswer } from './upstream.js';
import { extractUsage, recordUsage, TOKEN_BUCKETS } from './usage.js';

export async function proxyCompletion(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const { metrics, registry, totals } = ctx;
  const started = performance.now();
  metrics.inc('dynamo_component_router_requests_started_total', 'Requests received by the router');
  const raw = await readBody(req, ctx.opts.bodyLimitBytes ?? 8 * 1024 * 1024);
  // Requests take turns in a burst (pacer.ts), twice: to parse and look up cached tokens, then to
  // route and dispatch; sockets are polled between turns, so a burst does not stall /health.
  if (!(await takeTurn(ctx, res))) return;
  const { tokens, target, stream, clientWantsUsage, wantUsage, overrides, forms, idsInVocab } = await readRequest(ctx, req, path, raw);
  const tokenizedAt = performance.now();
  if (!(await takeTurn(ctx, res))) return;
  const router = ctx.core;
  if (router.mode !== ctx.mode) router.mode = ctx.mode;
  // Like vLLM: the worker builds its response id as `chatcmpl-<x-request-id>`, so the worker gets
  // the bare uuid and the client, /debug/decisions and the response body all see chatcmpl-<uuid>.
  const uuid = randomUUID().replace(/-/g, '');
  const requestId = `${path.includes('chat') ? 'chatcmpl' : 'cmpl'}-${uuid}`;
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
  metrics.observe(
    'dynamo_lab_router_overhead_tokenize_ms',
    'Router time to read, parse and tokenise the request (ms)',
    MS_BUCKETS,
    tokenizedAt - started,
  );

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
        if (target) checkTargetUsable(registry, target, nowMs());
        eligible = eligibleWorkers(ctx.opts, registry, metrics, router, tried);
      } catch (err) {
        totals.rejected++;
        throw err;
      }
      const now = nowMs();
      // Direct: the named worker (even when only it is busy) among the eligible ones, whose
      // costs the decision record still shows; no session pinning.
      const pinned = target ? undefined : ctx.sessions.pinned(session, eligible.ids, now);
      const allowed = target ? [...new Set([...eligible.ids, target.id])] : pinned ? [pinned] : eligible.ids;
      let decision;
      try {
        decision = router.route({
          requestId,
          tokens,
          nowMs: now,
          overrides,
          allowedWorkers: allowed,
          target: target ? { workerId: target.id, dpRank: target.dpRank } : undefined,
        });
      } catch (err) {
        if (err instanceof DirectTargetError)
          throw new HttpError(404, `${err.message}; valid: ${validTargets(registry)}`, 'invalid_request_error', 'worker_not_found');
        throw err;
      }
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
      // Tokenize once: a simulated worker with the router's tokenizer takes the router's ids in
      // place of the prompt (handed over in process, or in the body).
      const idsRoute = idsInVocab ? promptIdsRoute(st, ctx.tokenizer.fingerprint) : 'none';
      const handOver = idsRoute === 'in-process';
      if (handOver) st.ep.provideTokens!(uuid, tokens);
      let upstream: UpstreamAnswer;
      try {
        const dest = workerTarget(st.ep.url, path);
        upstream = await dispatchUpstream(
          ctx.agent,
          {
            origin: dest.origin,
            path: dest.path,
            method: 'POST',
            // A Dynamo frontend in --router-mode direct is told which worker to use.
            body: ctx.opts.dynamoDirect
              ? forms.forInstance(st.ep.dynamoWorkerId!)
              : idsRoute === 'none'
                ? forms.asSent()
                : withIdsForPrompt(
                    forms.rest,
                    wantUsage,
                    handOver ? undefined : { tokens, encoding: idsRoute === 'nvext.token_data_b64' ? 'base64' : 'json' },
                  ),
            headers: {
              'content-type': 'application/json',
              'x-request-id': uuid,
              ...(handOver ? { [PROMPT_IDS_HEADER]: '1' } : {}),
              ...(stream ? { accept: 'text/event-stream' } : {}),
            },
            headersTimeout: 300_000,
            bodyTimeout: 300_000,
          },
          client.signal,
        );
      } catch (err) {
        router.free(requestId, nowMs());
        ctx.queue?.notify();
        if (clientGone) {
          record.status = 'aborted';
          return;
        }
        if (target) {
          record.status = 'error';
          noteFailure(ctx, st, `failed before the first byte (${(err as Error).message})`, false);
          throw new HttpError(
            502,
            `worker ${st.ep.id} failed before the first byte (${(err as Error).message}); in direct mode the request is not sent elsewhere`,
            'server_error',
            'upstream_failed',
          );
        }
        record.status = 'retried';
        noteFailure(ctx, st, `failed before the first byte (${(err as Error).message})`);
        continue;
      }
      if (upstream.statusCode >= 500 && upstream.statusCode !== 529 && !target) {
        await upstream.dump().catch(() => {});
        router.free(requestId, nowMs());
        ctx.queue?.notify();
        record.status = 'retried';
        noteFailure(ctx, st, `answered ${upstream.statusCode}`);
        continue;
      }
      st.breaker.onSuccess();
      ctx.health.onRequestOk(st);
      await relay(ctx, upstream, res, record, router, stream, clientWantsUsage, st, started);
      return;
    }
  } catch (err) {
    totals.errors++;
    throw err;
  } finally {
    ctx.inflight.delete(client);
    if (clientGone) router.free(requestId, nowMs());
    ctx.queue?.notify();
  }
}

/**
 * Parse, check and tokenise the request. The parsed body stays in here: the request path keeps
 * only what it needs of it (bodyForms), not the prompt's text.
 */
async function readRequest(ctx: ServerContext, req: IncomingMessage, path: string, raw: Buffer) {
  const body = parseJsonBody(raw);
  checkFields(body);
  // Direct mode: the client names the worker (400 / 404 before any work when it does not).
  const target = ctx.mode === 'direct' ? directTarget(req, body, ctx.registry) : undefined;
  const tokens = await tokenizeRequest(ctx.tokenizer, path, body);
  const stream = body.stream === true;
  // Streams always ask the worker for the usage chunk (the router books cached tokens and counts
  // tokens from it); it is passed on only when the client asked for it.
  const clientWantsUsage = stream && (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
  const wantUsage = stream && !clientWantsUsage;
  const forms = bodyForms(raw, body, wantUsage, ctx.opts.dynamoDirect === true);
  // A completion's ids come from the client and may lie beyond the vocabulary: those are not handed
  // to a worker as the router's own ids; the worker gets the request as sent and refuses it, as vLLM does.
  const idsInVocab = path === '/v1/chat/completions' || allBelow(tokens, ctx.tokenizer.vocabSize);
  return { tokens, target, stream, clientWantsUsage, wantUsage, overrides: readOverrides(body), forms, idsInVocab };
}

function allBelow(ids: Uint32Array, limit: number): boolean {
  for (let i = 0; i < ids.length; i++) if (ids[i]! >= limit) return false;
  return true;
}

/** Wait for this request's turn (pacer.ts); false when its client went away meanwhile: no work is done for it. */
async function takeTurn(ctx: ServerContext, res: ServerResponse): Promise<boolean> {
  await ctx.pacer.turn();
  return !res.destroyed;
}

function noteFailure(ctx: ServerContext, st: WorkerState, what: string, retrying = true): void {
  st.errors++;
  st.breaker.onFailure(nowMs());
  if (retrying)
    ctx.metrics.inc('dynamo_lab_router_retries_total', 'Requests retried on another worker before the first byte', { worker_id: st.ep.id });
  ctx.opts.log?.(
    `worker ${st.ep.id} ${what}${retrying ? '; trying another worker' : ''}${st.breaker.state(nowMs()) === 'open' ? ' (circuit opened)' : ''}`,
  );
  void ctx.health.check(st);
}

/** Pass the worker's answer through as it comes (SSE event by event), timing it and reading `usage`. */
async function relay(
  ctx: ServerContext,
  upstream: UpstreamAnswer,
  res: ServerResponse,
  record: DecisionRecord,
  router: KvRouter,
  stream: boolean,
  clientWantsUsage: boolean,
  st: WorkerState,
  started: number,
): Promise<void> {
  const headers: Record<string, string> = {
    'content-type': String(upstream.headers['content-type'] ?? (stream ? 'text/event-stream' : 'application/json')),
    'x-dynamo-lab-worker': record.chosen,
    'x-dynamo-lab-overlap-blocks': String(record.overlap_blocks),
    'x-dynamo-lab-mode': record.mode,
    'x-request-id': record.request_id,
  };
  const retryAfter = upstream.headers['retry-after'];
  if (typeof retryAfter === 'string') headers['retry-after'] = retryAfter;
  const sse = stream && upstream.statusCode < 400 ? new SseRelay(clientWantsUsage) : undefined;
  if (sse) headers['cache-control'] = 'no-cache';
  // A stream's headers go out now (one write with its first events when they came together, see
  // below); a whole answer's once it is complete, with its length.
  const out = sse ? new ChunkedWriter(res.writeHead(upstream.statusCode, headers)) : undefined;
  let firstAt = 0;
  let wrote = false;
  const body: Buffer[] = [];
  let bodyBytes = 0;
  // The worker's stream ended: end the client's in the same turn, so that when the worker's last
  // events and its end came in one read, they go on in one write.
  const endStream = (relay: SseRelay, out: ChunkedWriter) => {
    const rest = relay.finish();
    if (!relay.sawDone) {
      // The worker closed the stream without [DONE]: say so instead of a silent cut.
      out.write(rest);
      out.end(sseError('the worker ended the stream before it was complete', 'upstream_incomplete'));
      record.status = 'error';
      st.errors++;
      ctx.totals.errors++;
      ctx.metrics.inc(
        'dynamo_lab_router_streams_failed_total',
        'Streams the router ended with an SSE error because the worker failed mid-stream',
        { worker_id: st.ep.id },
      );
    } else {
      out.end(rest);
      record.status = 'ok';
    }
  };
  const onChunk = (chunk: Buffer) => {
    const now = nowMs();
    if (firstAt === 0) {
      firstAt = performance.now();
      // A non-streamed answer comes whole: its first byte is the best prefill signal there is.
      if (!sse) {
        router.markPrefillCompleted(record.request_id, now);
        ctx.queue?.notify();
      }
    }
    st.lastOkAt = now;
    if (sse && out) {
      const hadToken = sse.firstTokenAt > 0;
      const events = sse.push(chunk, performance.now());
      // Prefill ends at the first generated token (a role chunk may come first).
      if (!hadToken && sse.firstTokenAt > 0) {
        // kv-ttft learns from the TTFT the router sees: route time -> first generated token.
        router.observeTtft(record.request_id, now - record.at_ms);
        router.markPrefillCompleted(record.request_id, now);
        ctx.queue?.notify();
      }
      if (res.destroyed) throw new Error('the client went away');
      if (events.length > 0) {
        wrote = true;
        if (!out.write(events)) {
          // Stop reading from the worker until the client takes it, or goes away: a client that
          // stops reading and then disconnects must not hold its booking (and the worker's
          // stream) until expiry.
          upstream.pause();
          void drainedOrClosed(res).then(() => {
            if (res.destroyed) upstream.abort(new Error('the client went away'));
            else upstream.resume();
          });
        }
      }
    } else {
      // Non-streamed answers are held until complete, so a worker failing mid-body becomes a 502.
      bodyBytes += chunk.length;
      if (bodyBytes <= 64 * 1024 * 1024) body.push(chunk);
    }
  };
  try {
    const consumed = upstream.consume(onChunk, sse && out ? () => endStream(sse, out) : undefined);
    // consume() has passed on what came with the worker's headers; when that wrote nothing, the
    // headers go out alone now, as the worker sent them (one write instead of two when it did).
    if (sse && !wrote && !res.writableEnded) res.flushHeaders();
    await consumed;
    if (!sse) {
      const text = Buffer.concat(body);
      res.writeHead(upstream.statusCode, { ...headers, 'content-length': String(text.length) });
      res.end(text);
      record.status =
        upstream.statusCode < 400 ? 'ok' : upstream.statusCode < 500 || upstream.statusCode === 529 ? 'client_error' : 'error';
      if (record.status === 'error') {
        st.errors++;
        ctx.totals.errors++;
      }
    }
    if (sse && firstAt > 0) {
      const ttft = (sse.firstTokenAt || firstAt) - started; // time to the first generated token
      record.ttft_ms = round(ttft);
      st.lastTtftS = ttft / 1000;
      ctx.metrics.observe(
        'dynamo_component_router_time_to_first_token_seconds',
        'Time to first generated token as the router sees it (s)',
        SECONDS_BUCKETS,
        st.lastTtftS,
      );
      if (sse.tokenEvents > 1) {
        st.lastItlS = (sse.lastTokenAt - sse.firstTokenAt) / (sse.tokenEvents - 1) / 1000;
        ctx.metrics.observe(
          'dynamo_component_router_inter_token_latency_seconds',
          'Mean inter-token latency per request as the router sees it (s)',
          SECONDS_BUCKETS,
          st.lastItlS,
        );
      }
    }
    if (record.status === 'ok')
      recordUsage(sse ? sse.usage : extractUsage(Buffer.concat(body).toString('utf8')), record, st, ctx.totals, ctx.metrics);
  } catch (err) {
    if (res.destroyed || (res.writableEnded && !res.writableFinished)) {
      record.status = 'aborted';
    } else {
      // The worker failed mid-answer (connection reset, killed process): end the client's answer
      // properly, an SSE error event and [DONE] for streams, an OpenAI-shaped 502 otherwise.
      record.status = 'error';
      st.errors++;
      ctx.totals.errors++;
      const why = `the worker ${st.ep.id} failed mid-${sse ? 'stream' : 'answer'} (${(err as Error).message})`;
      ctx.opts.log?.(`request ${record.request_id}: ${why}`);
      void ctx.health.check(st);
      if (sse && out) {
        ctx.metrics.inc(
          'dynamo_lab_router_streams_failed_total',
          'Streams the router ended with an SSE error because the worker failed mid-stream',
          { worker_id: st.ep.id },
        );
        sse.finish(true);
        out.end(sseError(`${why}; retry the request`, 'upstream_failed'));
      } else {
        sendError(res, new HttpError(502, `${why}; retry the request`, 'server_error', 'upstream_failed'));
      }
    }
  } finally {
    router.free(record.request_id, nowMs());
    ctx.queue?.notify();
  }
}

function drainedOrClosed(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

const targets = new Map<string, { origin: string; base: string }>();

/** Origin and path of `${workerUrl}${path}` for undici's dispatch (worker URLs parsed once). */
function workerTarget(workerUrl: string, path: string): { origin: string; path: string } {
  let t = targets.get(workerUrl);
  if (!t) {
    const u = new URL(workerUrl);
    t = { origin: u.origin, base: u.pathname.replace(/\/+$/, '') };
    if (targets.size > 4096) targets.clear();
    targets.set(workerUrl, t);
  }
  return { origin: t.origin, path: t.base + path };
}
