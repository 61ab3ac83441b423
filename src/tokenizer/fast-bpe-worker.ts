/**
 * Entry point of a tokenizer thread (see fast-bpe.ts). It builds a rank-based byte-pair encoder
 * (the `tiktoken` package: tiktoken's Rust core compiled to WebAssembly) from an HF tokenizer.json
 * and encodes batches of text stretches that hold no added tokens.
 *
 * workerData: { ranks, pattern, nfc } (ranks: tiktoken's rank file, built once by the parent: a thread
 * that parsed tokenizer.json itself would hold twice the memory)
 * Messages from the parent:  {id, texts: string[]}
 * Messages to the parent:    {t:'ready'} once, then {id, ids: Uint32Array[]} (buffers transferred)
 *                            or {id, error}; {t:'failed', error} when the encoder cannot be built
 */
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

interface TiktokenLike {
  encode_ordinary(text: string): Uint32Array;
}
interface Data {
  ranks: string;
  pattern: string;
  nfc: boolean;
}

const port = parentPort!;
const { ranks, pattern, nfc } = workerData as Data;

function build(): TiktokenLike {
  const { Tiktoken } = createRequire(import.meta.url)('tiktoken') as {
    Tiktoken: new (ranks: string, special: Record<string, number>, pat: string) => TiktokenLike;
  };
  return new Tiktoken(ranks, {}, pattern);
}

let enc: TiktokenLike;
try {
  enc = build();
  port.postMessage({ t: 'ready' });
} catch (err) {
  port.postMessage({ t: 'failed', error: (err as Error).message });
  process.exit(0);
}

port.on('message', (m: { id: number; texts: string[] }) => {
  try {
    const ids = m.texts.map((t) => enc.encode_ordinary(nfc ? t.normalize('NFC') : t));
    port.postMessage(
      { id: m.id, ids },
      ids.map((a) => a.buffer as ArrayBuffer),
    );
  } catch (err) {
    port.postMessage({ id: m.id, error: (err as Error).message });
  }
});
