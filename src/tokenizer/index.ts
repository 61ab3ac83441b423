/**
 * The tokenizer and chat template shared by the router and the simulated workers, so both hash
 * exactly the same tokens. See chat-tokenizer.ts (loading, limits, cache), threads.ts (tokenizer
 * threads), fast-bpe.ts (when byte-level BPE by rank gives the HF library's ids), native.ts (the HF
 * `tokenizers` N-API binding), template.ts (Jinja chat templates), request-prompt.ts (a request's
 * prompt, chat messages and template options, as vLLM prepares them) and pieces.ts (the
 * per-piece token cache).
 */
export {
  ChatTokenizer,
  DEFAULT_CACHE_BYTES,
  describeBackend,
  DEFAULT_MODEL,
  loadTokenizer as loadChatTokenizer,
  TokenizerError,
  type LoadOptions,
  type PromptLimits,
  type TokenizerBackendChoice,
  type TokenizerBackendName,
} from './chat-tokenizer.js';
export {
  ChatTemplate,
  ChatTemplateError,
  DEFAULT_CHATML_TEMPLATE,
  DEFAULT_SYSTEM_PROMPT,
  type ChatMessage,
  type RenderOptions,
} from './template.js';
export { type ChatPrompt, chatPrompt, completionPrompt } from './request-prompt.js';
export { NativeTokenizer, NativeTokenizerError } from './native.js';
export { idsJson, type PieceCacheStats } from './pieces.js';
export { idsFromBase64, idsToBase64, TOKEN_DATA_B64, TOKEN_DATA_ENCODINGS } from './token-data.js';
import { loadTokenizer as loadChatTokenizer } from './chat-tokenizer.js';
import { ChatTemplate, DEFAULT_CHATML_TEMPLATE, type ChatMessage } from './template.js';

const defaultTemplate = new ChatTemplate(DEFAULT_CHATML_TEMPLATE);

/** The default (Qwen2.5-style ChatML) rendering of a conversation. */
export function applyChatTemplate(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
  return defaultTemplate.render(messages, { addGenerationPrompt });
}

/** Tokenize an OpenAI chat request's messages with the default tokenizer and template. */
export async function tokenizeChat(messages: readonly ChatMessage[]): Promise<number[]> {
  return (await loadChatTokenizer()).encodeChat(messages);
}

/**
 * Request header a router sets when it handed the prompt's token ids to a co-located simulated
 * worker (same process tree), keyed by x-request-id: the worker uses those ids instead of
 * tokenizing the text again (tokenize once).
 */
export const PROMPT_IDS_HEADER = 'x-dynamo-lab-prompt-ids';
