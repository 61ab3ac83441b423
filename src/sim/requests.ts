/**
 * Parsing the simulated worker's OpenAI requests the way vLLM validates them: max_tokens, stop
 * (the prompt and chat messages: tokenizer/request-prompt.ts, shared with the router). Bad input
 * is an HttpError 400 with vLLM-like codes.
 */
import { HttpError } from '../base/http.js';

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

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
