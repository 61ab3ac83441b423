/**
 * Parsing the simulated worker's OpenAI requests the way vLLM validates them: max_tokens, stop
 * (the prompt and chat messages: tokenizer/request-prompt.ts, shared with the router). Bad input
 * is an HttpError 400 with vLLM-like codes.
 */
import { HttpError } from '../base/http.js';
import { isObject } from '../base/values.js';

export function parseMaxTokens(body: Record<string, unknown>, defaultMaxTokens: number): number;
export function parseMaxTokens(body: Record<string, unknown>, defaultMaxTokens: undefined): number | undefined;
export function parseMaxTokens(body: Record<string, unknown>, defaultMaxTokens: number | undefined): number | undefined {
  const v = body.max_completion_tokens ?? body.max_tokens;
  if (v === undefined || v === null) return defaultMaxTokens;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new HttpError(400, `max_tokens must be an integer >= 1, got ${JSON.stringify(v)}`, 'invalid_request_error', 'invalid_max_tokens');
  }
  return v;
}

/**
 * The sampling fields a vLLM server checks before it accepts a request, checked here with vLLM's
 * ranges, although the simulated worker does not sample (its tokens are random): a client that
 * sends a value vLLM refuses gets the 400 it would get from vLLM, not a quiet success.
 */
export function checkSampling(body: Record<string, unknown>, kind: 'chat' | 'completion', maxTokens: number): void {
  const fail = (field: string, why: string): never => {
    throw new HttpError(400, `"${field}" ${why}`, 'invalid_request_error', `invalid_${field}`);
  };
  const num = (field: string, integer = false): number | undefined => {
    const v = body[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)))
      fail(field, `must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)?.slice(0, 40)}`);
    return v as number;
  };
  const range = (field: string, ok: (v: number) => boolean, want: string, integer = false) => {
    const v = num(field, integer);
    if (v !== undefined && !ok(v)) fail(field, `must be ${want}, got ${v}`);
    return v;
  };
  range('temperature', (v) => v >= 0, 'non-negative');
  range('top_p', (v) => v > 0 && v <= 1, 'in (0, 1]');
  range('top_k', (v) => v === -1 || v >= 0, '-1 or 0 (off), or at least 1', true);
  range('min_p', (v) => v >= 0 && v <= 1, 'in [0, 1]');
  range('presence_penalty', (v) => v >= -2 && v <= 2, 'in [-2, 2]');
  range('frequency_penalty', (v) => v >= -2 && v <= 2, 'in [-2, 2]');
  range('repetition_penalty', (v) => v > 0, 'greater than zero');
  num('seed', true);
  range('min_tokens', (v) => v >= 0 && v <= maxTokens, `in [0, max_tokens = ${maxTokens}]`, true);
  for (const field of ['ignore_eos', 'skip_special_tokens', 'echo'])
    if (body[field] !== undefined && body[field] !== null && typeof body[field] !== 'boolean') fail(field, 'must be true or false');
  if (kind === 'chat') {
    const lp = body.logprobs;
    if (lp !== undefined && lp !== null && typeof lp !== 'boolean') fail('logprobs', 'must be true or false in a chat request');
    const top = range('top_logprobs', (v) => v >= 0 && v <= 20, 'an integer in [0, 20]', true);
    if (top !== undefined && top > 0 && lp !== true) fail('top_logprobs', 'needs "logprobs": true');
  } else range('logprobs', (v) => v >= 0 && v <= 20, 'an integer in [0, 20]', true);
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!isObject(so)) fail('stream_options', 'must be an object such as {"include_usage": true}');
    if (body.stream !== true) fail('stream_options', 'can only be given with "stream": true');
  }
}

export interface StopCriteria {
  readonly strings: readonly string[];
  readonly tokenIds: ReadonlySet<number>;
  /** How many trailing chars of `text` could be the start of a stop string (held back from the stream). */
  holdBack(text: string): number;
}

/** `stop` (a string or up to 4 strings) and `stop_token_ids`, validated like vLLM's server. */
export function parseStop(body: Record<string, unknown>): StopCriteria {
  const raw = body.stop;
  let strings: string[] = [];
  if (typeof raw === 'string') strings = [raw];
  else if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) strings = raw as string[];
  else if (raw !== undefined && raw !== null)
    throw new HttpError(400, '"stop" must be a string or an array of strings', 'invalid_request_error', 'invalid_stop');
  strings = strings.filter((x) => x.length > 0);
  const ids = body.stop_token_ids;
  if (ids !== undefined && ids !== null && !(Array.isArray(ids) && ids.every((t) => Number.isInteger(t) && (t as number) >= 0))) {
    throw new HttpError(
      400,
      '"stop_token_ids" must be an array of token ids (integers >= 0)',
      'invalid_request_error',
      'invalid_stop_token_ids',
    );
  }
  const longest = strings.reduce((m, x) => Math.max(m, x.length), 0);
  return {
    strings,
    tokenIds: new Set((ids as number[] | undefined | null) ?? []),
    holdBack(text: string): number {
      for (let k = Math.min(longest - 1, text.length); k > 0; k--) {
        const end = text.slice(text.length - k);
        if (strings.some((x) => x.startsWith(end))) return k;
      }
      return 0;
    },
  };
}
