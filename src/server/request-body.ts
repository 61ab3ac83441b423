/**
 * The client's request body as the router reads and reshapes it: the prompt's token ids (chat
 * template or prompt string, through the tokenizer), the fields the router itself checks, the
 * per-request router overrides (nvext), and the rewrites of the body sent on (the usage option
 * for streams; the token ids in place of the prompt; the chosen Dynamo instance for a frontend in
 * --router-mode direct).
 */
import { randomUUID } from 'node:crypto';
import { chatPrompt, completionPrompt, idsJson, idsToBase64, TokenizerError, type ChatTokenizer } from '../tokenizer/index.js';
import { HttpError } from '../base/http.js';
import { describeValue as describe } from '../base/values.js';

/**
 * The prompt's token ids, tokenised the way the workers do (the model's chat template for chat
 * requests, with the request's tools and template options, see chatPrompt), natively and off the
 * event loop, through the per-piece token cache. Prompt limits (the tokenizer's maxChars /
 * maxTokens) answer 413 / 400.
 */
export async function tokenizeRequest(tokenizer: ChatTokenizer, path: string, body: Record<string, unknown>): Promise<Uint32Array> {
  try {
    if (path === '/v1/chat/completions') {
      const { messages, opts } = chatPrompt(body);
      return await tokenizer.encodeChatIds(messages, opts);
    }
    const prompt = completionPrompt(body.prompt, body.messages !== undefined);
    return typeof prompt === 'string' ? await tokenizer.encodeIds(prompt) : prompt;
  } catch (err) {
    if (err instanceof TokenizerError) throw err.toHttpError();
    throw err;
  }
}

/** A stand-in value, replaced by the instance id's digits after JSON.stringify. */
const INSTANCE_SLOT = `dynamo-lab-backend-instance-id-${randomUUID()}`;

/**
 * The request body with `nvext.backend_instance_id` = Dynamo worker `id` (a u64 in decimal), the
 * field a Dynamo frontend in --router-mode direct routes by. The id is written digit for digit:
 * as a JS number it would lose precision beyond 2^53.
 */
export function withBackendInstanceId(body: Record<string, unknown>, id: string): string {
  if (!/^\d+$/.test(id)) throw new Error(`a Dynamo instance id is a decimal integer, not "${id}"`);
  const nvext = body.nvext !== null && typeof body.nvext === 'object' && !Array.isArray(body.nvext) ? body.nvext : {};
  return JSON.stringify({ ...body, nvext: { ...nvext, backend_instance_id: INSTANCE_SLOT } }).replace(`"${INSTANCE_SLOT}"`, id);
}

const USAGE_OPTION = '"stream_options":{"include_usage":true},';

/** The body's `stream_options` with `include_usage` set. */
export function usageOn(body: Record<string, unknown>): Record<string, unknown> {
  return { ...(body.stream_options as object | undefined), include_usage: true };
}

/**
 * `field` (`"key":value,`, ASCII) spliced in after the opening brace of a JSON object body that has at
 * least one member, or undefined when the body is not shaped so (a copy of the bytes: re-serialising
 * a long prompt costs far more).
 */
function spliceFirst(raw: Buffer, field: string): Buffer | undefined {
  let i = 0;
  while (i < raw.length && raw[i] !== 0x7b) i++; // '{' after JSON whitespace: the body parsed as an object
  let j = i + 1;
  while (j < raw.length && (raw[j] === 0x20 || raw[j] === 0x09 || raw[j] === 0x0a || raw[j] === 0x0d)) j++;
  if (!(i < raw.length && j < raw.length && raw[j] !== 0x7d)) return undefined;
  const out = Buffer.allocUnsafe(raw.length + field.length);
  raw.copy(out, 0, 0, i + 1);
  const at = i + 1 + out.write(field, i + 1, 'latin1');
  raw.copy(out, at, i + 1);
  return out;
}

/**
 * The body with `stream_options.include_usage` set. Without a `stream_options` key the option is
 * spliced in after the opening brace; otherwise the parsed body is serialised again.
 */
export function withUsageOption(raw: Buffer, body: Record<string, unknown>): Buffer | string {
  if (!Object.hasOwn(body, 'stream_options')) {
    const spliced = spliceFirst(raw, USAGE_OPTION);
    if (spliced) return spliced;
  }
  return JSON.stringify({ ...body, stream_options: usageOn(body) });
}

/**
 * What the request path keeps of the client's body once the prompt is tokenised, to send on to
 * whichever worker it picks (once per attempt): never the parsed prompt. A stream holds these for
 * its whole length, and with 256 streams in flight 256 parsed prompts (~32 KB of text each at 8k
 * tokens) were copied by every young-generation GC and then promoted: the GC's work per scavenge
 * fell by three quarters without them (bench:proxy chat, 256 streams).
 */
export interface BodyForms {
  /** The body without `messages` / `prompt` (the long part), for withIdsForPrompt. */
  readonly rest: Record<string, unknown>;
  /** The client's body as it came (with the usage option when asked), for a worker that tokenizes it itself. */
  asSent(): Buffer | string;
  /** The body for a Dynamo frontend in --router-mode direct, naming instance `id` (only with `forDynamoDirect`). */
  forInstance(id: string): string;
}

export function bodyForms(raw: Buffer, body: Record<string, unknown>, wantUsage: boolean, forDynamoDirect: boolean): BodyForms {
  const { messages: _m, prompt: _p, ...rest } = body;
  // The client's own stream_options needs the body serialised again (withUsageOption), so that is
  // done now; otherwise the option is spliced into the raw bytes when a worker needs them.
  let sent: Buffer | string | undefined = !wantUsage ? raw : Object.hasOwn(body, 'stream_options') ? withUsageOption(raw, body) : undefined;
  // Without a stream_options key, the raw body's only other fallback (no member to splice before)
  // is `{}`, whose rest is the whole body.
  const asSent = () => (sent ??= withUsageOption(raw, rest));
  if (!forDynamoDirect)
    return {
      rest,
      asSent,
      forInstance: () => {
        throw new Error('bodyForms: forInstance needs forDynamoDirect');
      },
    };
  const whole = wantUsage ? { ...body, stream_options: usageOn(body) } : body;
  return { rest, asSent, forInstance: (id) => withBackendInstanceId(whole, id) };
}

/** A stand-in value, replaced by the token ids after JSON.stringify. */
const TOKEN_DATA_SLOT = `"dynamo-lab-token-data-${randomUUID()}"`;

/**
 * The body for a worker that takes the router's token ids in place of the prompt, as Dynamo's
 * frontend sends its workers a preprocessed request (token ids, not messages): the client's fields
 * without `messages` / `prompt`, the usage option when `includeUsage`, and the ids as
 * `nvext.token_data` (`json`, Dynamo's field for a pre-tokenized prompt) or `nvext.token_data_b64`
 * (`base64`, see tokenizer/token-data.ts). Ids the client put in its `nvext` are left out either
 * way. No ids when `ids` is undefined: they were handed over in process. What is left of the body is small: the prompt
 * was the long part, so leaving it out saves the router writing it and the worker parsing it.
 */
export function withIdsForPrompt(
  body: Record<string, unknown>,
  includeUsage: boolean,
  ids?: { tokens: Uint32Array; encoding: 'json' | 'base64' },
): Buffer | string {
  const { messages: _m, prompt: _p, ...rest } = body;
  if (includeUsage) rest.stream_options = usageOn(body);
  // Ids the client put in its nvext are never sent on: the router's are the prompt.
  const nvext = body.nvext !== null && typeof body.nvext === 'object' && !Array.isArray(body.nvext) ? body.nvext : undefined;
  const { token_data: _, token_data_b64: __, ...others } = (nvext ?? {}) as Record<string, unknown>;
  if (nvext) rest.nvext = others;
  if (!ids) return JSON.stringify(rest);
  const field = ids.encoding === 'json' ? 'token_data' : 'token_data_b64';
  rest.nvext = { ...others, [field]: TOKEN_DATA_SLOT.slice(1, -1) };
  const json = JSON.stringify(rest);
  const at = json.indexOf(TOKEN_DATA_SLOT);
  // The ids (ASCII) written into the body as they are, without first joining them with the rest into one more long string.
  const [open, encoded, close] = ids.encoding === 'json' ? ['[', idsJson(ids.tokens), ']'] : ['"', idsToBase64(ids.tokens), '"'];
  const head = json.slice(0, at);
  const tail = json.slice(at + TOKEN_DATA_SLOT.length);
  const out = Buffer.allocUnsafe(Buffer.byteLength(head) + open.length + encoded.length + close.length + Buffer.byteLength(tail));
  let n = out.write(head, 0, 'utf8');
  n += out.write(open, n, 'latin1');
  n += out.write(encoded, n, 'latin1');
  n += out.write(close, n, 'latin1');
  out.write(tail, n, 'utf8');
  return out;
}

/** The fields the router itself reads must have the right types (the worker checks the rest). */
export function checkFields(body: Record<string, unknown>): void {
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean')
    throw new HttpError(400, `"stream" must be true or false, not ${describe(body.stream)}`, 'invalid_request_error', 'invalid_stream');
  const so = body.stream_options;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so)))
    throw new HttpError(
      400,
      '"stream_options" must be an object such as {"include_usage": true}',
      'invalid_request_error',
      'invalid_stream_options',
    );
  if (so && body.stream !== true)
    throw new HttpError(400, '"stream_options" is only allowed when "stream" is true', 'invalid_request_error', 'invalid_stream_options');
  if (body.model !== undefined && typeof body.model !== 'string')
    throw new HttpError(400, `"model" must be a string, not ${describe(body.model)}`, 'invalid_request_error', 'invalid_model');
}

export function readOverrides(
  body: Record<string, unknown>,
): { overlapScoreCredit?: number; prefillLoadScale?: number; temperature?: number } | undefined {
  const nvext = body.nvext as { router_config_override?: Record<string, unknown> } | undefined;
  const o = nvext?.router_config_override;
  if (!o || typeof o !== 'object') return undefined;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  return {
    overlapScoreCredit: num(o.overlap_score_credit),
    prefillLoadScale: num(o.prefill_load_scale),
    temperature: num(o.router_temperature),
  };
}
