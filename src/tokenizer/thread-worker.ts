/**
 * Entry point of a tokenizer thread (see threads.ts). It encodes batches of texts with one of two
 * engines, named in workerData:
 * - 'tiktoken': a rank-based byte-pair encoder (the `tiktoken` package: tiktoken's Rust core
 *   compiled to WebAssembly) built from the rank file the parent made of an HF tokenizer.json
 *   (fast-bpe.ts says when that gives the HF library's ids), for text without added tokens;
 * - 'hf': the HF `tokenizers` library itself, loaded from the tokenizer.json. Its Rust work runs on
 *   libuv's thread pool either way; what this thread takes off the parent's event loop is turning
 *   each result into ids (the binding builds a JS array element by element: ~0.6 ms for 6k tokens,
 *   which hundreds of requests finishing together turn into a stall of the parent's loop).
 *
 * workerData: { kind: 'tiktoken', ranks, pattern, nfc } | { kind: 'hf', path }
 * Messages from the parent:  {id, texts: string[]}
 * Messages to the parent:    {t:'ready'} once, then {id, ids: Uint32Array[]} (buffers transferred)
 *                            or {id, error}; {t:'failed', error} when the encoder cannot be built
 */
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type { ThreadEngine } from './threads.js';

type Encode = (texts: string[]) => Uint32Array[] | Promise<Uint32Array[]>;

const port = parentPort!;
const engine = workerData as ThreadEngine;
const require = createRequire(import.meta.url);

function build(): Encode {
  if (engine.kind === 'hf') {
    const { Tokenizer } = require('tokenizers') as {
      Tokenizer: {
        fromFile(path: string): {
          encodeBatch(texts: string[], opts: { addSpecialTokens: boolean }): Promise<{ getIds(): number[] }[]>;
        };
      };
    };
    const tok = Tokenizer.fromFile(engine.path);
    return async (texts) => (await tok.encodeBatch(texts, { addSpecialTokens: false })).map((e) => Uint32Array.from(e.getIds()));
  }
  const { Tiktoken } = require('tiktoken') as {
    Tiktoken: new (ranks: string, special: Record<string, number>, pat: string) => { encode_ordinary(text: string): Uint32Array };
  };
  const enc = new Tiktoken(engine.ranks, {}, engine.pattern);
  const nfc = engine.nfc;
  return (texts) => texts.map((t) => enc.encode_ordinary(nfc ? t.normalize('NFC') : t));
}

let encode: Encode;
try {
  encode = build();
  port.postMessage({ t: 'ready' });
} catch (err) {
  port.postMessage({ t: 'failed', error: (err as Error).message });
  process.exit(0);
}

port.on('message', (m: { id: number; texts: string[] }) => {
  Promise.resolve()
    .then(() => encode(m.texts))
    .then(
      (ids) =>
        port.postMessage(
          { id: m.id, ids },
          ids.map((a) => a.buffer as ArrayBuffer),
        ),
      (err: Error) => port.postMessage({ id: m.id, error: err.message }),
    );
});
