/**
 * Parsing the simulated worker's OpenAI requests the way vLLM validates them: chat messages,
 * completion prompts (text or token ids), max_tokens. Bad input is an HttpError 400 with
 * vLLM-like codes.
 */
import type { ChatMessage } from '../tokenizer/index.js';
import { HttpError } from '../base/http.js';

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new HttpError(400, '"messages" must be a non-empty array', 'invalid_request_error', 'invalid_messages');
  return v.map((m, i) => {
    if (!isObject(m) || typeof m.role !== 'string') throw new HttpError(400, `messages[${i}] must be an object with a string "role"`, 'invalid_request_error', 'invalid_messages');
    const c = m.content;
    if (!(c === undefined || c === null || typeof c === 'string' || Array.isArray(c))) {
      throw new HttpError(400, `messages[${i}].content must be a string, an array of content parts or null`, 'invalid_request_error', 'invalid_messages');
    }
    return { role: m.role, content: (c ?? null) as ChatMessage['content'] };
  });
}

export function parseMaxTokens(body: Record<string, unknown>, defaultMaxTokens: number): number {
  const v = body.max_completion_tokens ?? body.max_tokens;
  if (v === undefined || v === null) return defaultMaxTokens;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new HttpError(400, `max_tokens must be an integer >= 1, got ${JSON.stringify(v)}`, 'invalid_request_error', 'invalid_max_tokens');
  }
  return v;
}

/** A completion prompt: its token ids, or the text the worker must tokenize. */
export function completionPrompt(p: unknown): number[] | string {
  if (typeof p === 'string') return p;
  if (Array.isArray(p)) {
    if (p.length > 0 && p.every((t) => typeof t === 'number' && Number.isInteger(t) && t >= 0)) return p as number[];
    if (p.length === 1) return completionPrompt(p[0]);
    if (p.length > 1) throw new HttpError(400, 'batched prompts are not supported by the simulated worker; send one prompt per request', 'invalid_request_error', 'invalid_prompt');
  }
  throw new HttpError(400, '"prompt" must be a non-empty string or an array of token ids', 'invalid_request_error', 'invalid_prompt');
}
