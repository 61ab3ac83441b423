/**
 * A faster encoder for byte-level BPE tokenizers (Qwen, Llama 3, GPT-style), on its own threads.
 *
 * Why: on the request path the router tokenizes every prompt, and on a busy machine that time
 * is most of the router's share of TTFT. The HF `tokenizers` library (native.ts) builds a full
 * Encoding (offsets, alignments, normalised-string bookkeeping) to return ids; the `tiktoken`
 * package (tiktoken's Rust core as WebAssembly, no install script) merges byte pairs by rank
 * and returns only ids. On this project's machine it encodes a 6k-token prompt in about 40 % of
 * the HF library's CPU time.
 *
 * When it gives the same ids: a BPE vocabulary whose pre-tokenizer is a Split regex followed by
 * ByteLevel (or ByteLevel with its own regex), normaliser none or NFC, no byte fallback or word
 * affixes, and merges listed in the order of the ids they produce (a token's rank is its id, as
 * tiktoken ranks them). HF then merges the listed pair whose result has the lowest id, and so
 * does tiktoken, except where a pair that is not listed joins into a token: in a vocabulary built
 * by BPE training that state does not arise. That argument is not a proof for every file a user
 * may give, so before the first request uses it, the encoder is checked against the HF library
 * on a sample of many scripts, digits, code and whitespace (VERIFY_SAMPLE); any difference, or
 * any failure of a thread, and the tokenizer stays on the HF library (the reason is kept).
 *
 * Only stretches without added tokens come here (pieces.ts splits those out first).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** How to build the fast encoder for one tokenizer.json, or why it cannot be used. */
export type FastBpeSpec = { pattern: string; nfc: boolean } | { reason: string };

/** The GPT-2 pattern the ByteLevel pre-tokenizer uses when `use_regex` is on. */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

type Json = Record<string, unknown> | null | undefined;

/** Whether (and how) `json` (a parsed tokenizer.json) can be encoded by rank-based BPE. */
export function fastBpeSpec(json: Record<string, unknown>): FastBpeSpec {
  const model = json.model as Json;
  if (model?.type !== 'BPE') return { reason: `the model is ${String(model?.type ?? 'missing')}, not BPE` };
  if (model.byte_fallback) return { reason: 'the BPE model uses byte fallback' };
  if (model.continuing_subword_prefix || model.end_of_word_suffix) return { reason: 'the BPE model uses word prefixes or suffixes' };
  if (model.dropout !== null && model.dropout !== undefined) return { reason: 'the BPE model uses dropout' };
  const norm = json.normalizer as Json;
  let nfc: boolean;
  if (norm === null || norm === undefined) nfc = false;
  else if (norm.type === 'NFC') nfc = true;
  else return { reason: `the normaliser is ${String(norm.type)} (only none or NFC)` };
  const pre = json.pre_tokenizer as Json;
  let pattern: string | undefined;
  const byteLevel = (p: Json, regex: boolean) => p?.type === 'ByteLevel' && !p.add_prefix_space && (p.use_regex ?? true) === regex;
  if (pre?.type === 'Sequence') {
    const seq = (pre.pretokenizers ?? []) as Json[];
    const split = seq[0];
    const regex = (split?.pattern as Json)?.Regex;
    if (
      seq.length === 2 &&
      split?.type === 'Split' &&
      split.behavior === 'Isolated' &&
      !split.invert &&
      typeof regex === 'string' &&
      byteLevel(seq[1], false)
    )
      pattern = regex;
  } else if (byteLevel(pre, true)) pattern = GPT2_PATTERN;
  if (pattern === undefined) return { reason: 'the pre-tokenizer is not a Split regex followed by ByteLevel' };
  const vocab = model.vocab as Record<string, number> | undefined;
  const merges = model.merges as (string | [string, string])[] | undefined;
  if (!vocab || !Array.isArray(merges)) return { reason: 'the BPE model has no vocab or merges' };
  let last = -1;
  for (const m of merges) {
    const joined = typeof m === 'string' ? m.replace(' ', '') : m[0] + m[1];
    const id = vocab[joined];
    if (id === undefined) return { reason: `merge "${typeof m === 'string' ? m : m.join(' ')}" makes a token not in the vocab` };
    if (id < last) return { reason: 'the merges are not in the order of the token ids they make' };
    last = id;
  }
  return { pattern, nfc };
}

/**
 * Longest stretch (in UTF-8 bytes, about) of one character class the fast encoder takes. tiktoken
 * merges a pre-token's byte pairs in a loop that is quadratic in the pre-token's length, where the
 * HF library's is n log n: 20k letters in one piece cost it 341 ms against 15 ms, 100k letters
 * 12 s against 47 ms, and a paragraph of Chinese is one piece (CJK characters are letters). Text
 * holding a longer run goes to the HF library. 60k characters of random letters cut into pieces
 * of 128 / 256 / 512 / 1024 took tiktoken 19 / 23 / 40 / 60 ms against 40 / 26 / 27 / 28 ms for
 * the HF library: up to this limit the fast encoder is never the slower one.
 */
export const MAX_FAST_RUN = 256;

/** ASCII character classes for `hasLongRun`: 0 letter, 1 digit, 2 whitespace, 3 other. */
const ASCII_CLASS = Uint8Array.from({ length: 128 }, (_, c) =>
  (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ? 0 : c >= 48 && c <= 57 ? 1 : c === 32 || (c >= 9 && c <= 13) ? 2 : 3,
);

/**
 * Whether `text` may hold a pre-token longer than `limit` bytes. Conservative: a run ends only at
 * an ASCII character of another class than the run's ASCII characters; a non-ASCII character
 * (a letter, mark, symbol or space of any script) never ends a run and counts 3 bytes. A
 * pre-token of the supported patterns is letters, digits, other symbols or whitespace, with at
 * most one leading character and, after symbols, newlines: one of at most two runs. So a text
 * with a pre-token over twice the limit always has a run over the limit (a property test checks
 * this against the pre-tokenizer's own regex).
 */
export function hasLongRun(text: string, limit = MAX_FAST_RUN): boolean {
  if (text.length <= limit / 3) return false;
  let cls = -1;
  let run = 0;
  let tail = 0; // bytes of the non-ASCII characters since the last ASCII one
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 128) {
      const k = ASCII_CLASS[c]!;
      if (k !== cls) {
        // The non-ASCII characters just before may belong to this run as well as to the last.
        cls = k;
        run = tail;
      }
      run += 1;
      tail = 0;
    } else {
      run += 3;
      tail += 3;
    }
    if (run > limit) return true;
  }
  return false;
}

interface Pending {
  resolve(ids: Uint32Array[]): void;
  reject(err: Error): void;
}

interface Thread {
  worker: Worker;
  /** Batches sent and not answered yet (the thread with fewest gets the next batch). */
  pending: Map<number, Pending>;
}

export type FastBpeState = 'idle' | 'starting' | 'on' | 'off';

/**
 * Tokenizer threads: DYNAMO_LAB_TOKENIZER_THREADS, else 2 (1 on a single core). Each holds its
 * own encoder (~80 MB for a 150k vocabulary); two keep up with the router's own thread, which
 * stays the limit at a few hundred 8k-token requests per second.
 */
function defaultThreads(): number {
  const n = Number(process.env.DYNAMO_LAB_TOKENIZER_THREADS);
  if (Number.isInteger(n) && n >= 1 && n <= 64) return n;
  return Math.min(2, availableParallelism());
}

/**
 * Tokenizer threads running fast-bpe-worker.ts. Started on first use (a command that never
 * tokenizes pays nothing); until they are built and verified, callers use the HF library.
 */
export class FastBpePool {
  private threads: Thread[] = [];
  private nextId = 1;
  private _state: FastBpeState = 'idle';
  private _reason: string | undefined;
  private started: Promise<void> | undefined;

  constructor(
    /** tiktoken's rank file for the vocabulary (byte-level.ts tiktokenRanks). */
    private readonly ranks: string,
    private readonly spec: { pattern: string; nfc: boolean },
    /** Compares the pool's ids with the reference on a sample; a message when they differ. */
    private readonly verify: (encode: (texts: string[]) => Promise<Uint32Array[]>) => Promise<string | undefined>,
    private readonly size = defaultThreads(),
  ) {}

  get state(): FastBpeState {
    return this._state;
  }

  /** Why the pool is off (build or verification failed, a thread died). */
  get reason(): string | undefined {
    return this._reason;
  }

  /** Build the threads and verify them (once); resolves when the state is 'on' or 'off'. */
  start(): Promise<void> {
    this.started ??= this.boot();
    return this.started;
  }

  private async boot(): Promise<void> {
    this._state = 'starting';
    try {
      const fromTs = import.meta.url.endsWith('.ts');
      const url = new URL(fromTs ? './fast-bpe-worker.ts' : './fast-bpe-worker.js', import.meta.url);
      await Promise.all(Array.from({ length: this.size }, () => this.spawn(url)));
      const diff = await this.verify((texts) => this.encodeBatch(texts, true));
      if (diff) throw new Error(`it differs from the HF library: ${diff}`);
      this._state = 'on';
    } catch (err) {
      this.turnOff((err as Error).message);
    }
  }

  private spawn(url: URL): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(url, {
        workerData: { ranks: this.ranks, ...this.spec },
        // The process's own flags, less those a thread refuses (`node --input-type=module -e ...`).
        execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
      });
      const t: Thread = { worker, pending: new Map() };
      worker.on('message', (m: { t?: string; id?: number; ids?: Uint32Array[]; error?: string }) => {
        if (m.t === 'ready') {
          // From now on referenced only while it has work (encodeBatch), so an idle pool never
          // keeps a process alive (until ready, the caller may be waiting for it).
          worker.unref();
          this.threads.push(t);
          return resolve();
        }
        if (m.t === 'failed') return reject(new Error(`a tokenizer thread could not build its encoder: ${m.error}`));
        const p = t.pending.get(m.id!);
        if (!p) return;
        t.pending.delete(m.id!);
        if (t.pending.size === 0) worker.unref();
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.ids!);
      });
      const fail = (why: string) => {
        reject(new Error(why));
        this.turnOff(why);
      };
      worker.on('error', (err) => fail(`a tokenizer thread failed: ${err.message}`));
      worker.on('exit', (code) => {
        if (this._state !== 'off') fail(`a tokenizer thread exited (code ${code})`);
      });
    });
  }

  /** Token ids of each text (none may hold added tokens), on the thread with the fewest batches waiting. */
  encodeBatch(texts: string[], verifying = false): Promise<Uint32Array[]> {
    if (this._state !== 'on' && !(verifying && this._state === 'starting'))
      return Promise.reject(new Error(`the fast encoder is ${this._state}`));
    let t = this.threads[0]!;
    for (const x of this.threads) if (x.pending.size < t.pending.size) t = x;
    const id = this.nextId++;
    if (t.pending.size === 0) t.worker.ref();
    return new Promise((resolve, reject) => {
      t.pending.set(id, { resolve, reject });
      t.worker.postMessage({ id, texts });
    });
  }

  private turnOff(reason: string): void {
    if (this._state === 'off') return;
    this._state = 'off';
    this._reason = reason;
    for (const t of this.threads) {
      for (const p of t.pending.values()) p.reject(new Error(reason));
      t.pending.clear();
      void t.worker.terminate();
    }
    this.threads = [];
  }

  /** Stop the threads (the tokenizer goes on with the HF library). */
  close(): void {
    this.turnOff('closed');
  }
}

/**
 * Text the fast encoder must tokenize exactly as the HF library does before it is used: prose
 * with contractions in every case, digits, code with tabs, CRLF and runs of spaces, and a line
 * in each of many scripts, with emoji, combining marks (NFC) and symbols.
 */
export const VERIFY_SAMPLE: readonly string[] = [
  "The router's cache: it'S, they'RE, we'VE, I'M, you'LL, he'D -- don't won't can't Y'all.",
  'Numbers 0 1 12 123 1234 12345 3.14159 1,000,000 2026-11-30 0x1F 1e-9 ½ ² ٣ ४ 五',
  'def f(x):\n\treturn x  +  1\r\n\r\n    if a == b:   \n        pass\n\n\n  trailing   \n',
  '{"model":"qwen","messages":[{"role":"user","content":"hi"}],"stream":true}  <div class="a">&amp;</div>',
  'https://example.com/a/b?c=d&e=f#g  user@example.org  C:\\Windows\\path  ~/.config/x.y',
  '数据库缓存路由器的性能，真的很快。日本語のテキストとカタカナ、ひらがな。한국어 문장입니다.',
  'Ελληνικά κείμενα, Русский текст, Українська мова, Български, Српски.',
  'العربية نص تجريبي، עברית טקסט, فارسی, اردو',
  'हिन्दी पाठ, বাংলা লেখা, தமிழ், ગુજરાતી, ไทย ข้อความ, ລາວ, ភាសាខ្មែរ, မြန်မာ',
  'Emoji 🙂👍🏽👩‍💻🏳️‍🌈 🇩🇪 ✔ ✖ → ← ★ ☃ ♥ € £ ¥ ₹ © ® ™ § ¶ • … — – « » “ ” ‘ ’',
  'Combining: e\u0301 a\u0308 n\u0303 A\u030a \u1100\u1161\u11a8 o\u0302\u0323 Zalgo z\u0351\u0352a\u0353l\u0354g\u0355o',
  'Mixed  \t\t spaces\u00a0nbsp\u2009thin\u3000ideographic\u200bzero-width\u2028line\u2029para\u000bvt\u000cff',
  '!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} \'\'\' """ ``` ~~~ |||',
  'CamelCaseWords snake_case_words kebab-case-words SCREAMING_CASE mIxEd CaSe ALLCAPS\nNEWLINE\n\n',
  'Français: déjà vu, naïve, façade, cœur. Español: ñandú, acción. Deutsch: Straße, Übermäßig. Türkçe: İıĞğŞş.',
  '   leading spaces\n\n\n\n\n   \n\t\n\r\n\r\r\n end  ',
];
