/**
 * The HF `tokenizers` library (Rust, through N-API) for one tokenizer.json.
 *
 * `encode`/`encodeBatch`/`decode` are asynchronous: the Rust work runs on libuv's thread pool,
 * so a long prompt never blocks the event loop that relays streams and answers /health.
 * The npm package bundles prebuilt binaries for the common platforms (no install script runs).
 *
 * Loading (`Tokenizer.fromFile`) is synchronous and takes ~0.3–1 s for a 150k vocabulary:
 * done once per process at startup.
 */
import { createRequire } from 'node:module';

/** The part of the `tokenizers` N-API surface used here. */
interface RawEncoding {
  getIds(): number[];
}
interface RawTokenizer {
  encode(text: string, pair: null, opts: { addSpecialTokens: boolean }): Promise<RawEncoding>;
  encodeBatch(texts: string[], opts: { addSpecialTokens: boolean }): Promise<RawEncoding[]>;
  decode(ids: number[], skipSpecialTokens: boolean): Promise<string>;
  decodeBatch(ids: number[][], skipSpecialTokens: boolean): Promise<string[]>;
  getVocabSize(withAddedTokens?: boolean): number;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
}
interface RawModule {
  Tokenizer: { fromFile(path: string): RawTokenizer };
}

export class NativeTokenizerError extends Error {}

let mod: RawModule | undefined;

function nativeModule(): RawModule {
  if (mod) return mod;
  const require = createRequire(import.meta.url);
  try {
    mod = require('tokenizers') as RawModule;
  } catch (err) {
    throw new NativeTokenizerError(
      `cannot load the native HF tokenizer (npm package "tokenizers") for ${process.platform}-${process.arch}: ${(err as Error).message}. ` +
        'Reinstall dependencies with `npm ci`; the package ships prebuilt binaries for linux, macOS and Windows on x64 and arm64.',
    );
  }
  return mod;
}

/** A loaded HF tokenizer.json. Special tokens are never added implicitly: chat templates write them. */
export class NativeTokenizer {
  private constructor(private readonly tok: RawTokenizer) {}

  /** Synchronous (parses the JSON and builds the model in Rust). */
  static fromFile(path: string): NativeTokenizer {
    return new NativeTokenizer(nativeModule().Tokenizer.fromFile(path));
  }

  get vocabSize(): number {
    return this.tok.getVocabSize(true);
  }

  /** Token ids of `text`, computed on the thread pool. */
  async encode(text: string): Promise<number[]> {
    return (await this.tok.encode(text, null, { addSpecialTokens: false })).getIds();
  }

  /** Several texts in one native call (one thread-pool hop; the library may spread them over threads). */
  async encodeBatch(texts: readonly string[]): Promise<number[][]> {
    if (texts.length === 0) return [];
    if (texts.length === 1) return [await this.encode(texts[0]!)];
    return (await this.tok.encodeBatch([...texts], { addSpecialTokens: false })).map((e) => e.getIds());
  }

  decode(ids: readonly number[]): Promise<string> {
    return this.tok.decode([...ids], false);
  }

  decodeBatch(ids: readonly (readonly number[])[]): Promise<string[]> {
    return this.tok.decodeBatch(
      ids.map((a) => [...a]),
      false,
    );
  }

  tokenToId(token: string): number | undefined {
    return this.tok.tokenToId(token) ?? undefined;
  }

  idToToken(id: number): string | undefined {
    return this.tok.idToToken(id) ?? undefined;
  }
}
