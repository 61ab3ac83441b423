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
