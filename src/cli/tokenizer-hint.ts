import type { TokenizerError } from '../tokenizer/index.js';

/** What to try after a tokenizer failed to load (router and sim commands). */
export function tokenizerHint(err: TokenizerError): string {
  if (err.code === 'invalid_tokenizer_backend')
    return 'Unset DYNAMO_LAB_TOKENIZER_BACKEND, or set it to auto (tiktoken threads when exact), hf-thread or hf.';
  return 'Point --tokenizer at a model directory saved by transformers (tokenizer.json, tokenizer_config.json), or leave it out for the bundled Qwen tokenizer.';
}
