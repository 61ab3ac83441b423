/**
 * SimWorker: one simulated vLLM-like engine (SimEngine on the real clock) behind an
 * OpenAI-compatible HTTP server (node:http), plus optional vLLM-format ZMQ KV events.
 *
 * HTTP routes (like vLLM's OpenAI server):
 *   POST /v1/chat/completions, POST /v1/completions (stream and non-stream)
 *   GET  /v1/models, GET /health, GET /metrics (vllm:* names), POST /tokenize,
 *   POST /detokenize, POST /reset_prefix_cache, GET /debug/sim (engine stats as JSON)
 * Every response carries `x-dynamo-lab-worker: <id>`.
 *
 * Over 400 lines on purpose: `generate` keeps the streaming and non-streaming OpenAI shapes of
 * one request side by side (request parsing is in requests.ts, multi-worker start in start.ts).
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { RouterEvent } from '../router/types.js';
import {
  chatPrompt,
  completionPrompt,
  DEFAULT_MODEL,
  idsFromBase64,
  loadChatTokenizer,
  PROMPT_IDS_HEADER,
  TOKEN_DATA_ENCODINGS,
  TokenizerError,
  type ChatTokenizer,
  type PromptLimits,
} from '../tokenizer/index.js';
import type { PromptTokenSource } from './prompt-inbox.js';
import { RealClock, type Clock } from './clock.js';
import { SimEngine, SimRequestError, type EngineResult, type EngineStats, type SimEngineOptions } from './engine.js';
import { simRegistry } from './prometheus.js';
import type { Registry } from 'prom-client';
import { ZmqKvPublisher } from './zmq.js';
import { checkJsonContentType, guardedServerOptions, guardServer, HttpError, parseJsonBody, readBody, splitTarget } from '../base/http.js';
import { listenOn } from '../base/net.js';
import { checkSampling, parseMaxTokens, parseStop } from './requests.js';
import { isObject } from '../base/values.js';

/** Engine knobs (see SimEngineOptions) plus what the HTTP worker adds. */
export interface SimWorkerOptions
  extends Pick<
    SimEngineOptions,
    | 'numGpuBlocks'
    | 'maxNumSeqs'
    | 'maxNumBatchedTokens'
    | 'speedup'
    | 'decodeSpeedup'
    | 'enablePrefixCaching'
    | 'enableChunkedPrefill'
    | 'preemptionMode'
    | 'seed'
  > {
  id: string;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** 0 = ephemeral (default). */
  port?: number;
  /** Served model name (default DEFAULT_MODEL). */
  model?: string;
  /** Tokens per KV block (default 16 here; the engine's own default differs). */
  blockSize?: number;
  /** vLLM-format KV events on a ZMQ PUB socket (pubPort 0 = pick a free port), optional replay ROUTER socket. */
  zmq?: { pubPort: number; replayPort?: number; host?: string };
  /** One line per request (and a few lifecycle lines). Default: silent. */
  log?: (line: string) => void;
  /** max_tokens when a request gives none (default: the rest of the context, like vLLM). */
  defaultMaxTokens?: number;
  /** The served model's context length (default 32768, Qwen2.5-1.5B-Instruct's; capped by the KV cache). */
  maxModelLen?: number;
  /** Largest accepted request body (default 8 MiB); larger -> 413. */
  maxBodyBytes?: number;
  /** Clock of the engine (default real time). */
  clock?: Clock;
  /** HF tokenizer directory or tokenizer.json (default: the shipped Qwen tokenizer and ChatML template). */
  tokenizer?: string;
  /** Prompt limits checked when tokenizing text (too many characters: 413; too many tokens: 400). */
  promptLimits?: PromptLimits;
  /**
   * Prompt token ids handed over by a router in the same process tree, by x-request-id (requests
   * that carry `x-dynamo-lab-prompt-ids: 1`): the worker does not tokenize those prompts again.
   */
  promptTokens?: PromptTokenSource;
  /** Text of the engine's output token ids; with it the worker loads its tokenizer only for text prompts. */
  tokenTexts?: ReadonlyMap<number, string>;
}

export interface SimWorkerStats extends EngineStats {
  id: string;
  url: string;
  httpRequests: number;
  /** Prompts whose token ids a router handed over (in process, or as nvext.token_data): not tokenized here. */
  promptsHandedOver: number;
  /** Text prompts this worker tokenized itself. */
  promptsTokenized: number;
}

/**
 * `nvext.token_data`: the prompt's token ids, computed by a router that tokenizes exactly as this
 * worker does (its /health `tokenizer` fingerprint matched). Dynamo's own field: with it, Dynamo's
 * preprocessor skips tokenizing too. Or `nvext.token_data_b64`, the same ids in the compact form
 * this worker lists in /health `token_data_encodings` (tokenizer/token-data.ts). With either, the
 * prompt's text (`messages` / `prompt`) may be left out (/health `token_data_without_text`): the
 * ids are the prompt. Undefined when neither is given; 400 when the ids are not token ids, or both
 * fields are given.
 */
function tokenDataOf(body: Record<string, unknown>, vocabSize: number | undefined): ArrayLike<number> | undefined {
  const nvext = body.nvext;
  if (nvext === null || typeof nvext !== 'object' || Array.isArray(nvext)) return undefined;
  const { token_data: list, token_data_b64: b64 } = nvext as { token_data?: unknown; token_data_b64?: unknown };
  const given = (v: unknown) => v !== undefined && v !== null;
  if (!given(list) && !given(b64)) return undefined;
  const bad = (field: string, why: string) =>
    new HttpError(
      400,
      `nvext.${field} must ${field === 'token_data' ? 'be a non-empty array of' : 'hold'} the prompt's token ids (${why}); leave it out and the worker tokenizes the prompt itself`,
      'invalid_request_error',
      'invalid_token_data',
    );
  if (given(list) && given(b64)) throw bad('token_data', 'nvext.token_data_b64 was given too: send one of the two');
  let ids: ArrayLike<unknown>;
  const field = given(list) ? 'token_data' : 'token_data_b64';
  if (field === 'token_data') {
    if (!Array.isArray(list) || list.length === 0) throw bad(field, Array.isArray(list) ? 'it is empty' : `got ${typeof list}`);
    ids = list;
  } else {
    if (typeof b64 !== 'string') throw bad(field, `as a base64 string, got ${typeof b64}`);
    const decoded = idsFromBase64(b64);
    if (!(decoded instanceof Uint32Array)) throw bad(field, decoded.error);
    ids = decoded;
  }
  const limit = vocabSize ?? 2 ** 32;
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= limit)
      throw bad(
        field,
        `item ${i} is ${JSON.stringify(t)?.slice(0, 40)}${vocabSize ? `, not an id below the vocabulary size ${vocabSize}` : ''}`,
      );
  }
  return ids as ArrayLike<number>;
}

const DEFAULT_MAX_BODY = 8 * 1024 * 1024;
/** Qwen2.5-1.5B-Instruct's max_position_embeddings (config.json), vLLM's default max_model_len for it. */
const DEFAULT_MAX_MODEL_LEN = 32768;

function errorBody(status: number, message: string, type: string, code: string | null): string {
  return JSON.stringify({
    error: { message, type, code: code ?? (status === 404 ? 'not_found' : status >= 500 ? 'internal_error' : 'bad_request'), param: null },
  });
}

export class SimWorker {
  readonly id: string;
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly model: string;
  readonly engine: SimEngine;
  readonly zmqEndpoint?: string;
  readonly zmqReplayEndpoint?: string;

  private readonly server: http.Server;
  private tokenizer?: ChatTokenizer;
  private tokenizerLoading?: Promise<ChatTokenizer>;
  private readonly tokenizerSource?: string;
  private readonly promptLimits?: PromptLimits;
  private readonly promptTokens?: PromptTokenSource;
  private readonly zmq?: ZmqKvPublisher;
  private readonly log: (line: string) => void;
  private readonly defaultMaxTokens?: number;
  /** prompt + max_tokens may not exceed this (reported as max_model_len in /v1/models). */
  readonly maxModelLen: number;
  /** A new id per process: the router's health check notices a restart by it. */
  readonly instanceId = randomUUID();
  private readonly maxBody: number;
  private readonly tokenText: Map<number, string>;
  private closing?: Promise<void>;
  private httpRequests = 0;
  private promptsHandedOver = 0;
  private promptsTokenized = 0;
  private readonly inflight = new Set<string>();
  private readonly registry: Registry;

  private constructor(init: {
    opts: SimWorkerOptions;
    server: http.Server;
    port: number;
    host: string;
    engine: SimEngine;
    tokenizer?: ChatTokenizer;
    zmq?: ZmqKvPublisher;
  }) {
    const { opts } = init;
    this.id = opts.id;
    this.server = init.server;
    this.port = init.port;
    this.host = init.host;
    const urlHost = init.host === '0.0.0.0' || init.host === '::' ? '127.0.0.1' : init.host.includes(':') ? `[${init.host}]` : init.host;
    this.url = `http://${urlHost}:${init.port}`;
    this.model = opts.model ?? DEFAULT_MODEL;
    this.engine = init.engine;
    this.tokenizer = init.tokenizer;
    this.tokenizerSource = opts.tokenizer;
    this.promptLimits = opts.promptLimits;
    this.promptTokens = opts.promptTokens;
    this.tokenText = new Map(opts.tokenTexts ?? []);
    this.zmq = init.zmq;
    this.zmqEndpoint = init.zmq?.endpoint;
    this.zmqReplayEndpoint = init.zmq?.replayEndpoint;
    this.log = opts.log ?? (() => {});
    this.defaultMaxTokens = opts.defaultMaxTokens;
    this.maxModelLen = Math.min(opts.maxModelLen ?? DEFAULT_MAX_MODEL_LEN, init.engine.maxSequenceTokens());
    this.maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
    this.registry = simRegistry(this.engine, { model_name: this.model, worker_id: this.id });
  }

  /** Start the engine, the HTTP server (and the ZMQ publisher when asked). */
  static async start(opts: SimWorkerOptions): Promise<SimWorker> {
    if (!opts.id) throw new Error('SimWorker needs an id');
    // Without a token-text table the worker needs its tokenizer to stream: load it now (~0.5 s)
    // rather than on the first request. With one, it loads on the first text prompt.
    const tokenizer = opts.tokenTexts ? undefined : await loadChatTokenizer(opts.tokenizer, { limits: opts.promptLimits });
    const engine = new SimEngine(
      {
        id: opts.id,
        blockSize: opts.blockSize ?? 16,
        numGpuBlocks: opts.numGpuBlocks ?? 16384,
        maxNumSeqs: opts.maxNumSeqs ?? 256,
        maxNumBatchedTokens: opts.maxNumBatchedTokens ?? 8192,
        speedup: opts.speedup ?? 1,
        decodeSpeedup: opts.decodeSpeedup ?? 1,
        enablePrefixCaching: opts.enablePrefixCaching ?? true,
        enableChunkedPrefill: opts.enableChunkedPrefill ?? true,
        preemptionMode: opts.preemptionMode ?? 'lifo',
        seed: opts.seed,
      },
      opts.clock ?? new RealClock(),
    );
    let zmq: ZmqKvPublisher | undefined;
    const host = opts.host ?? '127.0.0.1';
    try {
      if (opts.zmq) {
        zmq = await ZmqKvPublisher.start({
          host: opts.zmq.host ?? host,
          pubPort: opts.zmq.pubPort,
          replayPort: opts.zmq.replayPort,
          blockSize: engine.blockSize,
          dpRank: engine.dpRank,
        });
        const pub = zmq;
        engine.onKvEvent((ev, tokenIds) => pub.publish(ev, tokenIds));
      }
      const server = http.createServer(guardedServerOptions());
      guardServer(server);
      const { port } = await listenOn(server, opts.port ?? 0, host);
      const worker = new SimWorker({ opts, server, port, host, engine, tokenizer, zmq });
      engine.onCallbackError = (err) => worker.log(`[${worker.id}] internal error: ${(err as Error)?.stack ?? err}`);
      server.on('request', (req, res) => worker.handle(req, res));
      worker.log(
        `[${worker.id}] simulated vLLM worker on ${worker.url} (model ${worker.model}, block size ${engine.blockSize}, ${engine.numGpuBlocks} KV blocks, speedup ${engine.speedup}${zmq ? `, KV events ${zmq.endpoint}${zmq.replayEndpoint ? ` replay ${zmq.replayEndpoint}` : ''}` : ''})`,
      );
      return worker;
    } catch (err) {
      engine.close();
      await zmq?.close();
      throw err;
    }
  }

  /** In-process KV events (Dynamo RouterEvent), in order, eventId from 0. Returns an unsubscribe. */
  onKvEvent(listener: (ev: RouterEvent) => void): () => void {
    return this.engine.onKvEvent((ev) => listener(ev));
  }

  cachedBlockCount(): number {
    return this.engine.cachedBlockCount();
  }

  stats(): SimWorkerStats {
    return {
      id: this.id,
      url: this.url,
      httpRequests: this.httpRequests,
      promptsHandedOver: this.promptsHandedOver,
      promptsTokenized: this.promptsTokenized,
      ...this.engine.stats(),
    };
  }

  /** Close HTTP and ZMQ, abort in-flight requests. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.engine.close();
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
      await this.zmq?.close();
    })();
    return this.closing;
  }

  /** The tokenizer, loaded on first use when the worker started without it. */
  private tok(): Promise<ChatTokenizer> {
    if (this.tokenizer) return Promise.resolve(this.tokenizer);
    this.tokenizerLoading ??= loadChatTokenizer(this.tokenizerSource, { limits: this.promptLimits }).then((t) => (this.tokenizer = t));
    return this.tokenizerLoading;
  }

  /** `fn` with the tokenizer (loaded on first use); its errors (bad template, prompt limits) answer as 4xx in handle(). */
  private async tokenizing<T>(fn: (t: ChatTokenizer) => Promise<T> | T): Promise<T> {
    return fn(await this.tok());
  }

  // ---------------------------------------------------------------- HTTP

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.httpRequests++;
    res.setHeader('x-dynamo-lab-worker', this.id);
    this.route(req, res).catch((err: unknown) => {
      // A request the tokenizer layer refused (its prompt, messages or template options).
      if (err instanceof TokenizerError) err = err.toHttpError();
      if (err instanceof HttpError) {
        for (const [k, v] of Object.entries(err.headers)) if (!res.headersSent) res.setHeader(k, v);
        this.sendError(res, err.status, err.message, err.type, err.code);
      } else {
        this.log(`[${this.id}] internal error: ${(err as Error)?.stack ?? err}`);
        this.sendError(res, 500, `internal error: ${(err as Error)?.message ?? err}`, 'internal_error', 'internal_error');
      }
    });
  }

  private sendJson(res: http.ServerResponse, status: number, body: unknown): void {
    if (res.headersSent) {
      if (!res.writableEnded) res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendError(
    res: http.ServerResponse,
    status: number,
    message: string,
    type = 'invalid_request_error',
    code: string | null = null,
  ): void {
    if (res.headersSent) {
      if (!res.writableEnded) res.end();
      return;
    }
    const text = errorBody(status, message, type, code);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = splitTarget(req.url).path.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const routes: Record<string, Record<string, () => Promise<void> | void>> = {
      '/v1/chat/completions': { POST: () => this.generate(req, res, 'chat') },
      '/v1/completions': { POST: () => this.generate(req, res, 'completion') },
      '/v1/models': { GET: () => this.models(res) },
      '/health': {
        GET: () =>
          this.sendJson(res, 200, {
            status: 'ok',
            worker: this.id,
            instance_id: this.instanceId,
            // A router whose tokenizer has this fingerprint sends the prompt's ids (nvext.token_data,
            // or the compact nvext.token_data_b64) in place of its text.
            ...(this.tokenizer
              ? { tokenizer: this.tokenizer.fingerprint, token_data_encodings: TOKEN_DATA_ENCODINGS, token_data_without_text: true }
              : {}),
          }),
      },
      '/metrics': { GET: () => this.metrics(res) },
      '/tokenize': { POST: () => this.tokenize(req, res) },
      '/detokenize': { POST: () => this.detokenize(req, res) },
      '/reset_prefix_cache': { POST: () => this.resetPrefixCache(res) },
      '/debug/sim': { GET: () => this.sendJson(res, 200, this.stats()) },
    };
    const r = routes[path];
    if (!r) {
      req.resume();
      throw new HttpError(404, `no route ${method} ${path.slice(0, 200)}`, 'not_found_error', 'not_found');
    }
    const h = r[method] ?? (method === 'HEAD' ? r.GET : undefined);
    if (!h) {
      req.resume();
      throw new HttpError(
        405,
        `method ${method} not allowed on ${path}; use ${Object.keys(r).join(' or ')}`,
        'invalid_request_error',
        'method_not_allowed',
        { allow: Object.keys(r).join(', ') },
      );
    }
    if (method === 'POST') checkJsonContentType(req);
    await h();
  }

  private models(res: http.ServerResponse): void {
    this.sendJson(res, 200, {
      object: 'list',
      data: [
        {
          id: this.model,
          object: 'model',
          created: Math.floor(Date.now() / 1000),
          owned_by: 'dynamo-lab',
          root: this.model,
          parent: null,
          max_model_len: this.maxModelLen,
        },
      ],
    });
  }

  private async metrics(res: http.ServerResponse): Promise<void> {
    const text = await this.registry.metrics();
    res.writeHead(200, { 'content-type': this.registry.contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async tokenize(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseJsonBody(await readBody(req, this.maxBody));
    let tokens: number[];
    if (body.messages !== undefined) {
      tokens = await this.tokenizing((t) => {
        const { messages, opts } = chatPrompt(body);
        return t.encodeChat(messages, opts);
      });
    } else if (typeof body.prompt === 'string') {
      const prompt = body.prompt;
      tokens = await this.tokenizing((t) => t.encode(prompt));
    } else {
      throw new HttpError(400, 'give "prompt" (a string) or "messages"', 'invalid_request_error', 'invalid_prompt');
    }
    this.sendJson(res, 200, { tokens, count: tokens.length, max_model_len: this.maxModelLen });
  }

  private async detokenize(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseJsonBody(await readBody(req, this.maxBody));
    if (!Array.isArray(body.tokens) || !body.tokens.every((t) => Number.isInteger(t) && t >= 0)) {
      throw new HttpError(400, '"tokens" must be an array of token ids', 'invalid_request_error', 'invalid_tokens');
    }
    const ids = body.tokens as number[];
    this.sendJson(res, 200, { prompt: await (await this.tok()).decode(ids) });
  }

  private resetPrefixCache(res: http.ServerResponse): void {
    const n = this.engine.resetPrefixCache();
    this.log(`[${this.id}] prefix cache reset: ${n} inactive blocks dropped`);
    this.sendJson(res, 200, { dropped_blocks: n });
  }

  /** Text of one output token: always valid UTF-8 (replacement characters are substituted). */
  private textOf(id: number): string {
    let t = this.tokenText.get(id);
    if (t === undefined) {
      // Only reached without a token-text table entry; generate() loaded the tokenizer then.
      t = (this.tokenizer?.tokenText(id) ?? '').replace(/\uFFFD/g, ' ');
      if (t.length === 0) t = ' ';
      this.tokenText.set(id, t);
    }
    return t;
  }

  private async generate(req: http.IncomingMessage, res: http.ServerResponse, kind: 'chat' | 'completion'): Promise<void> {
    const body = parseJsonBody(await readBody(req, this.maxBody));
    if (body.model !== undefined && body.model !== null && body.model !== this.model) {
      throw new HttpError(
        404,
        `The model \`${String(body.model).slice(0, 200)}\` does not exist. This worker serves \`${this.model}\` (see GET /v1/models).`,
        'invalid_request_error',
        'model_not_found',
      );
    }
    let tokens: ArrayLike<number> | undefined;
    const given = req.headers['x-request-id'];
    // Tokenize once: a co-located router already tokenized this prompt and handed the ids over.
    const handedOver = this.promptTokens !== undefined && typeof given === 'string' && req.headers[PROMPT_IDS_HEADER] === '1';
    if (handedOver) tokens = await this.promptTokens!.take(given as string, 2000);
    // Or a router with the same tokenizer sent them in the body, as Dynamo's frontend does.
    if (!tokens) tokens = tokenDataOf(body, this.tokenizer?.vocabSize);
    if (tokens) {
      // The ids are the prompt: a router that sends them leaves the text out (see /health
      // token_data_without_text), as Dynamo's frontend sends its workers token ids, not messages.
      this.promptsHandedOver++;
    } else {
      if ((kind === 'chat' ? body.messages : body.prompt) === undefined && handedOver)
        throw new HttpError(
          503,
          `the router's token ids for request ${String(given)} did not arrive within 2 s and the request carries no prompt text; retry it`,
          'server_error',
          'prompt_ids_missing',
        );
      if (kind === 'chat') {
        // As a Uint32Array: the engine makes its one copy (toNumberArray).
        tokens = await this.tokenizing((t) => {
          const { messages, opts } = chatPrompt(body);
          return t.encodeChatIds(messages, opts);
        });
        this.promptsTokenized++;
      } else {
        const input = completionPrompt(body.prompt, body.messages !== undefined);
        if (typeof input === 'string') {
          tokens = await this.tokenizing((t) => t.encodeIds(input));
          this.promptsTokenized++;
        } else {
          // The client's own ids: like vLLM, none beyond the vocabulary.
          const vocab = (await this.tok()).vocabSize;
          const at = input.findIndex((t) => t >= vocab);
          if (at >= 0)
            throw new HttpError(
              400,
              `Token id ${input[at]} (prompt[${at}]) is out of vocabulary: this model's ids are 0..${vocab - 1}`,
              'invalid_request_error',
              'invalid_prompt',
            );
          tokens = input;
        }
      }
    }
    if (this.tokenText.size === 0 && !this.tokenizer) await this.tok();
    const given_max = parseMaxTokens(body, undefined);
    // Like vLLM: no max_tokens means the rest of the context.
    const maxTokens = given_max ?? this.defaultMaxTokens ?? Math.max(1, this.maxModelLen - tokens!.length);
    if (tokens!.length + maxTokens > this.maxModelLen) {
      throw new HttpError(
        400,
        `This model's maximum context length is ${this.maxModelLen} tokens. However, you requested ${tokens!.length + maxTokens} tokens (${tokens!.length} in the ${kind === 'chat' ? 'messages' : 'prompt'}, ${maxTokens} in the completion). Please reduce the length of the ${kind === 'chat' ? 'messages' : 'prompt'} or completion.`,
        'invalid_request_error',
        'context_length_exceeded',
      );
    }
    if (body.n !== undefined && body.n !== null && body.n !== 1) {
      throw new HttpError(
        400,
        `n = ${JSON.stringify(body.n).slice(0, 40)} is not supported by the simulated worker: it returns one choice per request (n = 1); send n separate requests`,
        'invalid_request_error',
        'invalid_n',
      );
    }
    if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean')
      throw new HttpError(400, '"stream" must be true or false', 'invalid_request_error', 'invalid_stream');
    checkSampling(body, kind, maxTokens);
    const stop = parseStop(body);
    const stream = body.stream === true;
    const streamOptions = isObject(body.stream_options) ? body.stream_options : undefined;
    const includeUsage = streamOptions?.include_usage === true;
    // Like vLLM: the id is built from the caller's x-request-id when given (unique in flight).
    const base = typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID().replace(/-/g, '');
    let requestId = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${base}`;
    if (this.inflight.has(requestId)) requestId = `${requestId}-${randomUUID().slice(0, 8)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = this.model;
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';

    try {
      this.engine.validate({ requestId, tokens, maxTokens });
    } catch (err) {
      if (err instanceof SimRequestError) throw new HttpError(400, err.message, 'invalid_request_error', err.code);
      throw err;
    }
    if (res.destroyed) return;

    const usageOf = (r: EngineResult | { promptTokens: number; completionTokens: number; cachedTokens: number }) => ({
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
      total_tokens: r.promptTokens + r.completionTokens,
      prompt_tokens_details: { cached_tokens: r.cachedTokens },
    });
    let text = '';
    let sent = 0; // chars of `text` already streamed (text that may begin a stop string is held back)
    let stopped: string | number | undefined;
    // Like vLLM, the chat role chunk goes out with the first token (not before prefill), in one write.
    let rolePending = stream && kind === 'chat';
    const writeChunk = (obj: unknown) => {
      if (res.writableEnded || res.destroyed) return;
      let out = `data: ${JSON.stringify(obj)}\n\n`;
      if (rolePending) {
        rolePending = false;
        out =
          `data: ${JSON.stringify(chunk({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }))}\n\n` +
          out;
      }
      res.write(out);
    };
    const chunk = (choice: Record<string, unknown> | null, usage?: unknown) => ({
      id: requestId,
      object: chunkObject,
      created,
      model,
      choices: choice ? [choice] : [],
      ...(usage !== undefined ? { usage } : {}),
    });

    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': requestId });
      res.flushHeaders();
    }
    this.inflight.add(requestId);
    res.on('close', () => {
      // Client went away before we finished: abort and free the blocks.
      if (this.inflight.has(requestId)) this.engine.abort(requestId);
    });

    this.engine.submit({
      requestId,
      tokens,
      maxTokens,
      onToken: (tok) => {
        if (stopped !== undefined) return;
        if (stop.tokenIds.has(tok)) {
          stopped = tok;
          this.engine.abort(requestId);
          return;
        }
        text += this.textOf(tok);
        let upTo = text.length;
        for (const s of stop.strings) {
          const at = text.indexOf(s, Math.max(0, sent - s.length + 1));
          if (at >= 0 && at < upTo) {
            upTo = at;
            stopped = s;
          }
        }
        if (stopped !== undefined) text = text.slice(0, upTo);
        else upTo = text.length - stop.holdBack(text);
        if (stream && upTo > sent) {
          const t = text.slice(sent, upTo);
          sent = upTo;
          writeChunk(
            kind === 'chat'
              ? chunk({ index: 0, delta: { content: t }, logprobs: null, finish_reason: null })
              : chunk({ index: 0, text: t, logprobs: null, finish_reason: null }),
          );
        }
        if (stopped !== undefined) this.engine.abort(requestId);
      },
      onDone: (r) => {
        this.inflight.delete(requestId);
        const ttft = r.ttftMs !== undefined ? `${r.ttftMs.toFixed(1)} ms` : 'n/a';
        this.log(
          `[${this.id}] request ${requestId} prefix cache hit: ${r.cachedBlocks}/${r.promptBlocks} blocks (${r.cachedTokens}/${r.promptTokens} tokens) ttft=${ttft} output=${r.completionTokens} tokens${r.preemptions ? ` preemptions=${r.preemptions}` : ''}${r.status === 'aborted' ? ' ABORTED' : ''}`,
        );
        if (r.status === 'aborted' && stopped === undefined) {
          if (res.writableEnded || res.destroyed) return;
          if (stream) {
            writeChunk({ error: { message: 'request aborted (worker shutting down)', type: 'server_error', code: 'aborted' } });
            res.end('data: [DONE]\n\n');
          } else {
            this.sendError(res, 503, 'request aborted (worker shutting down)', 'server_error', 'aborted');
          }
          return;
        }
        const usage = usageOf(r);
        const finish = stopped !== undefined ? 'stop' : 'length';
        const stopReason = stopped ?? null;
        if (stream) {
          const tail = text.slice(sent); // held back for a stop string that did not come
          writeChunk(
            kind === 'chat'
              ? chunk({ index: 0, delta: tail ? { content: tail } : {}, logprobs: null, finish_reason: finish, stop_reason: stopReason })
              : chunk({ index: 0, text: tail, logprobs: null, finish_reason: finish, stop_reason: stopReason }),
          );
          // vLLM: one usage chunk (empty choices) only when stream_options.include_usage is set.
          if (includeUsage) writeChunk(chunk(null, usage));
          if (!res.writableEnded && !res.destroyed) res.end('data: [DONE]\n\n');
          return;
        }
        this.sendJson(res, 200, {
          id: requestId,
          object,
          created,
          model,
          choices: [
            kind === 'chat'
              ? { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish, stop_reason: stopReason }
              : { index: 0, text, logprobs: null, finish_reason: finish, stop_reason: stopReason },
          ],
          usage,
        });
      },
    });
  }
}
