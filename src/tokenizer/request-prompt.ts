/**
 * The prompt of an OpenAI request, checked and prepared as vLLM prepares it, so that the router
 * (which predicts a worker's cached blocks from its own tokens) and a simulated worker read a
 * request alike, and like a vLLM worker would.
 *
 * A completion's `prompt`: a string or token ids, or a one-element array of either (batches of
 * several prompts are refused: one prompt per request).
 *
 * What a chat request's template reads:
 *
 * - `messages`: every field of a message reaches the template (`name`, `tool_calls`,
 *   `tool_call_id`, ...); text content parts become one string joined by "\n", as vLLM joins them
 *   for a template that reads `content` as a string; `content: null` renders as "".
 * - an assistant message's `tool_calls[].function.arguments`, a JSON string on the wire, reaches the
 *   template parsed (vLLM parses it, since templates such as Qwen's print it with `tojson`);
 * - `tools` in vLLM's field order: `type`, `function` {`name`, `description`, `parameters`}, absent
 *   fields as null, extra fields after them (Dynamo 1.6.1's frontend leaves absent fields out: a
 *   tool without a description or parameters renders a few tokens shorter there, measured with
 *   Qwen3's template; with both given the two agree);
 * - `add_generation_prompt` (default true), `continue_final_message` (default false; not both),
 *   `chat_template_kwargs` (extra template variables, e.g. `{"enable_thinking": false}`).
 *
 * Bad input is a TokenizerError 400 naming the field, which the HTTP layers answer as an
 * OpenAI-shaped error.
 */
import { describeValue as describe, isObject } from '../base/values.js';
import { TokenizerError } from './chat-tokenizer.js';
import { type ChatMessage, contentText, type RenderOptions } from './template.js';

export interface ChatPrompt {
  readonly messages: ChatMessage[];
  readonly opts: RenderOptions;
}

/** Request fields that name template variables of their own; `chat_template_kwargs` may not set them. */
const RESERVED_KWARGS = ['messages', 'tools', 'add_generation_prompt', 'continue_final_message'];

function bad(message: string, code: string): TokenizerError {
  return new TokenizerError(message, 400, code);
}

/** The chat request `body`'s messages and template options, prepared as vLLM prepares them. */
export function chatPrompt(body: Record<string, unknown>): ChatPrompt {
  const messages = chatMessages(body.messages, body.prompt !== undefined);
  const opts: { -readonly [K in keyof RenderOptions]: RenderOptions[K] } = {};
  const agp = optionalBoolean(body, 'add_generation_prompt');
  const cont = optionalBoolean(body, 'continue_final_message');
  if (agp !== undefined) opts.addGenerationPrompt = agp;
  if (cont) {
    if (opts.addGenerationPrompt !== false)
      throw bad(
        '"continue_final_message": true continues the last message, so it needs "add_generation_prompt": false (the default is true)',
        'invalid_continue_final_message',
      );
    opts.continueFinalMessage = true;
  }
  const tools = chatTools(body.tools);
  if (tools) opts.tools = tools;
  const kwargs = body.chat_template_kwargs;
  if (kwargs !== undefined && kwargs !== null) {
    if (!isObject(kwargs))
      throw bad(
        `"chat_template_kwargs" must be an object of template variables (e.g. {"enable_thinking": false}), not ${describe(kwargs)}`,
        'invalid_chat_template_kwargs',
      );
    const reserved = RESERVED_KWARGS.find((k) => k in kwargs);
    if (reserved)
      throw bad(
        `"chat_template_kwargs" may not set "${reserved}": it is a field of the request itself; set it there`,
        'invalid_chat_template_kwargs',
      );
    opts.kwargs = kwargs;
  }
  return { messages, opts };
}

function optionalBoolean(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw bad(`"${key}" must be true or false, not ${describe(v)}`, `invalid_${key}`);
  return v;
}

/** `messages`, checked, each with its content as the template sees it. */
export function chatMessages(v: unknown, hasPrompt = false): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) {
    const what = v === undefined ? 'is missing' : Array.isArray(v) ? 'is empty' : `is ${describe(v)}`;
    const hint = hasPrompt && v === undefined ? '; a "prompt" goes to /v1/completions' : '';
    throw bad(
      `"messages" ${what}: a chat request needs a non-empty array of {"role", "content"} (e.g. [{"role": "user", "content": "Hello"}])${hint}`,
      'invalid_messages',
    );
  }
  return v.map((m, i) => {
    if (!isObject(m) || typeof m.role !== 'string')
      throw bad(`messages[${i}] must be an object with a string "role" and a "content"`, 'invalid_messages');
    const content = messageContent(m.content, i);
    const toolCalls = m.role === 'assistant' && Array.isArray(m.tool_calls) ? m.tool_calls.map(parsedArguments) : m.tool_calls;
    if (content === m.content && toolCalls === m.tool_calls) return m as ChatMessage;
    const out: Record<string, unknown> = { ...m, content };
    if (toolCalls !== undefined) out.tool_calls = toolCalls;
    return out as ChatMessage;
  });
}

/** A message's content as the template reads it: a string ("" for none), text parts joined by "\n". */
function messageContent(c: unknown, i: number): string {
  if (typeof c === 'string') return c;
  if (c === undefined || c === null) return '';
  if (Array.isArray(c)) {
    c.forEach((p, j) => {
      if (!isObject(p))
        throw bad(
          `messages[${i}].content[${j}] must be a content part ({"type": "text", "text": ...}), not ${describe(p)}`,
          'invalid_messages',
        );
    });
    return contentText(c);
  }
  throw bad(
    `messages[${i}].content must be a string, an array of content parts ({"type": "text", "text": ...}) or null, not ${describe(c)}`,
    'invalid_messages',
  );
}

/**
 * A tool call with its `function.arguments` parsed from JSON, `{}` when empty or absent (as vLLM
 * does); arguments that are not JSON are kept as sent (vLLM refuses them; the router passes them on).
 */
function parsedArguments(call: unknown): unknown {
  if (!isObject(call) || !isObject(call.function)) return call;
  const args = call.function.arguments;
  if (args !== undefined && args !== null && typeof args !== 'string') return call;
  let parsed: unknown;
  try {
    parsed = args === undefined || args === null || args === '' ? {} : JSON.parse(args);
  } catch {
    return call;
  }
  return { ...call, function: { ...call.function, arguments: parsed } };
}

/** `tools`, checked, in vLLM's field order (undefined when there are none). */
export function chatTools(v: unknown): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v))
    throw bad(`"tools" must be an array of {"type": "function", "function": {...}}, not ${describe(v)}`, 'invalid_tools');
  if (v.length === 0) return undefined;
  return v.map((t, i) => {
    if (!isObject(t) || !isObject(t.function) || typeof t.function.name !== 'string')
      throw bad(`tools[${i}] must be {"type": "function", "function": {"name": ..., "parameters": ...}}`, 'invalid_tools');
    if (t.type !== undefined && t.type !== 'function')
      throw bad(`tools[${i}].type must be "function", not ${JSON.stringify(t.type)}`, 'invalid_tools');
    const { name, description, parameters, ...moreFn } = t.function;
    const { type: _type, function: _fn, ...more } = t;
    return {
      type: 'function',
      function: { name, description: description ?? null, parameters: parameters ?? null, ...moreFn },
      ...more,
    };
  });
}

/**
 * A completion request's `prompt`: the text to tokenize, or its token ids. `hasMessages` (the body
 * carries chat messages) adds a pointer to the chat endpoint to the error.
 */
export function completionPrompt(p: unknown, hasMessages = false): string | Uint32Array {
  if (typeof p === 'string') return p;
  if (Array.isArray(p) && p.length > 0) {
    const ids = tokenIds(p);
    if (ids) return ids;
    if (p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) return completionPrompt(p[0]);
    if (p.every((x) => typeof x === 'string' || Array.isArray(x)))
      throw bad(`"prompt" holds ${p.length} prompts; send one prompt per request (batched prompts are not supported)`, 'invalid_prompt');
  }
  const what = p === undefined ? 'is missing' : `is ${describe(p)}${Array.isArray(p) && p.length > 0 ? ' that is not all token ids' : ''}`;
  const hint = p === undefined && hasMessages ? '; chat "messages" go to /v1/chat/completions' : '';
  throw bad(
    `"prompt" ${what}: a completion request needs a string or a non-empty array of token ids (integers 0..2^32-1)${hint}`,
    'invalid_prompt',
  );
}

/** Token ids as u32s in one pass; undefined when an element is not one (the router's hot path for id prompts). */
function tokenIds(a: unknown[]): Uint32Array | undefined {
  const out = new Uint32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const t = a[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 0xffffffff) return undefined;
    out[i] = t;
  }
  return out;
}
