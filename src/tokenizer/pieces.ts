/**
 * Tokenize only what is new.
 *
 * HF tokenizers split the input at added tokens (`<|im_start|>`, `<|eot_id|>`, ...) before
 * normalising and pre-tokenising, and encode each stretch of text between them on its own. So
 * when no added token strips whitespace around itself (lstrip/rstrip/single_word) and none is
 * matched against normalised text, `encode(text)` equals the concatenation, piece by piece, of
 * the added tokens' ids and `encode(stretch)` for each stretch in between. A chat template
 * delimits every message with such tokens, so each message's text is one stretch: a multi-turn
 * request re-uses the ids of the turns already seen and only the new turn goes to the tokenizer.
 *
 * The cache is bounded in bytes and evicts the least recently used pieces.
 */
import { xxh3 } from '@node-rs/xxhash';

export interface AddedTokenSpec {
  id: number;
  content: string;
  special?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
  normalized?: boolean;
}

/** Whether splitting at added tokens reproduces the tokenizer exactly (see the file comment). */
export function piecewiseExact(added: readonly AddedTokenSpec[], hasNormalizer: boolean): boolean {
  return added.every((t) => !t.lstrip && !t.rstrip && !t.single_word && (!t.normalized || !hasNormalizer));
}

/** Splits text at added tokens: leftmost match, longest token first (as the HF library matches them). */
export class AddedTokenSplitter {
  private readonly ids = new Map<string, number>();
  /** Added tokens by first UTF-16 unit, longest first. */
  private readonly byFirst = new Map<number, string[]>();
  /** The first units, as one char (the common case: every token starts with '<') or a class. */
  private readonly firstChar: string | undefined;
  private readonly firstRe: RegExp | undefined;

  constructor(added: readonly AddedTokenSpec[]) {
    for (const t of added) if (t.content.length > 0) this.ids.set(t.content, t.id);
    for (const c of [...this.ids.keys()].sort((a, b) => b.length - a.length)) {
      const k = c.charCodeAt(0);
      let l = this.byFirst.get(k);
      if (!l) this.byFirst.set(k, (l = []));
      l.push(c);
    }
    const firsts = [...this.byFirst.keys()];
    if (firsts.length === 1) this.firstChar = String.fromCharCode(firsts[0]!);
    else if (firsts.length > 1) this.firstRe = new RegExp(`[${firsts.map((k) => `\\u${k.toString(16).padStart(4, '0')}`).join('')}]`, 'g');
  }

  private nextFirst(s: string, from: number): number {
    if (this.firstChar !== undefined) return s.indexOf(this.firstChar, from);
    if (!this.firstRe) return -1;
    this.firstRe.lastIndex = from;
    return this.firstRe.exec(s)?.index ?? -1;
  }

  /** Calls `text(s)` for each non-empty stretch and `token(id)` for each added token, in order. */
  split(s: string, text: (piece: string) => void, token: (id: number) => void): void {
    let last = 0;
    for (let i = this.nextFirst(s, 0); i >= 0; i = this.nextFirst(s, i)) {
      let hit: string | undefined;
      for (const c of this.byFirst.get(s.charCodeAt(i))!) {
        if (s.startsWith(c, i)) {
          hit = c;
          break;
        }
      }
      if (hit === undefined) {
        i++;
        continue;
      }
      if (i > last) text(s.slice(last, i));
      token(this.ids.get(hit)!);
      i += hit.length;
      last = i;
    }
    if (last < s.length) text(s.slice(last));
  }
}

interface Entry {
  readonly text: string;
  readonly ids: Uint32Array;
  readonly bytes: number;
}

export interface PieceCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  /** Tokens served from the cache / produced by the tokenizer. */
  hitTokens: number;
  missTokens: number;
}

/** V8 hashes only the length of strings longer than this; long pieces are keyed by a content hash. */
const MAX_DIRECT_KEY = 16_000;
let keyScratch = Buffer.allocUnsafe(64 * 1024);

/** Bounded LRU of piece text → token ids. */
export class PieceCache {
  private readonly map = new Map<string, Entry>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private hitTokens = 0;
  private missTokens = 0;

  constructor(readonly maxBytes: number) {}

  /**
   * The map key of a piece: the text itself, or for a long one its length and a hash of its
   * characters' low bytes. Copying those out is one native pass (latin1); hashing the string
   * through the binding's UTF-8 conversion took 4x as long (76 vs 17 us for 30k characters). The
   * key only picks the entry: `get` compares the whole text, so two texts whose low bytes agree
   * cost a re-encode, never a wrong answer.
   */
  static keyOf(text: string): string {
    if (text.length <= MAX_DIRECT_KEY) return text;
    if (keyScratch.length < text.length) keyScratch = Buffer.allocUnsafe(Math.max(text.length, 2 * keyScratch.length));
    const n = keyScratch.write(text, 0, 'latin1');
    return `\u0000${text.length}:${xxh3.xxh64(keyScratch.subarray(0, n)).toString(36)}`;
  }

  get(key: string, text: string): Uint32Array | undefined {
    const e = this.map.get(key);
    if (e === undefined || e.text !== text) return undefined;
    this.map.delete(key);
    this.map.set(key, e);
    this.hits++;
    this.hitTokens += e.ids.length;
    return e.ids;
  }

  set(key: string, text: string, ids: Uint32Array): void {
    this.misses++;
    this.missTokens += ids.length;
    const bytes = 2 * text.length + 4 * ids.length + 96;
    // One huge piece would flush everything else: keep pieces up to an eighth of the budget.
    if (bytes > this.maxBytes / 8) return;
    const old = this.map.get(key);
    if (old) {
      this.bytes -= old.bytes;
      this.map.delete(key);
    }
    this.map.set(key, { text, ids, bytes });
    this.bytes += bytes;
    if (this.bytes > this.maxBytes) {
      for (const [k, e] of this.map) {
        this.map.delete(k);
        this.bytes -= e.bytes;
        if (this.bytes <= this.maxBytes) break;
      }
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  stats(): PieceCacheStats {
    return {
      entries: this.map.size,
      bytes: this.bytes,
      maxBytes: this.maxBytes,
      hits: this.hits,
      misses: this.misses,
      hitTokens: this.hitTokens,
      missTokens: this.missTokens,
    };
  }
}

/** Each cached piece's ids as JSON list items ("1,2,3"), made once per piece. */
const pieceJson = new WeakMap<Uint32Array, string>();
/** The pieces an encoded prompt was assembled from (added-token ids and cached pieces' ids). */
const partsOf = new WeakMap<Uint32Array, readonly (number | Uint32Array)[]>();

/**
 * The ids of a prompt `encode` returned, as JSON list items ("1,2,3", no brackets). Assembled from
 * the pieces' own JSON, made once per cached piece: a repeated system prompt or earlier turn is not
 * turned into digits again for every request (the router sends these ids as `nvext.token_data`).
 */
export function idsJson(ids: Uint32Array): string {
  const parts = partsOf.get(ids);
  if (!parts) return ids.join(',');
  let out = '';
  for (const p of parts) {
    let piece: string;
    if (typeof p === 'number') piece = String(p);
    else {
      if (p.length === 0) continue;
      let j = pieceJson.get(p);
      if (j === undefined) pieceJson.set(p, (j = p.join(',')));
      piece = j;
    }
    out = out.length === 0 ? piece : `${out},${piece}`;
  }
  return out;
}

/**
 * Encode `s` piecewise: cached pieces are reused, the rest go to `encodeBatch` in one call.
 * Concurrent requests that miss on the same piece share one encode.
 */
export class PiecewiseEncoder {
  private readonly inflight = new Map<string, Promise<Uint32Array>>();

  constructor(
    private readonly splitter: AddedTokenSplitter,
    readonly cache: PieceCache,
    private readonly encodeBatch: (texts: string[]) => Promise<ArrayLike<number>[]>,
  ) {}

  /** Token ids of `s` as one fresh Uint32Array (the caller may transfer or keep it; cache entries are never handed out). */
  async encode(s: string): Promise<Uint32Array> {
    // parts: a number is an added token's id; a string is a stretch of text to look up.
    const parts: (number | Uint32Array | Promise<Uint32Array>)[] = [];
    const missTexts: string[] = [];
    const missKeys: string[] = [];
    const missSlots: number[] = [];
    this.splitter.split(
      s,
      (piece) => {
        const key = PieceCache.keyOf(piece);
        const hit = this.cache.get(key, piece);
        if (hit) return void parts.push(hit);
        const pending = this.inflight.get(key);
        if (pending) return void parts.push(pending);
        missSlots.push(parts.length);
        missTexts.push(piece);
        missKeys.push(key);
        parts.push(new Uint32Array(0)); // placeholder
      },
      (id) => void parts.push(id),
    );
    if (missTexts.length > 0) {
      const batch = this.encodeBatch(missTexts).then((all) => all.map((ids) => (ids instanceof Uint32Array ? ids : Uint32Array.from(ids))));
      for (let i = 0; i < missTexts.length; i++) {
        const p = batch.then((all) => all[i]!);
        this.inflight.set(missKeys[i]!, p);
        parts[missSlots[i]!] = p;
      }
      try {
        const all = await batch;
        for (let i = 0; i < missTexts.length; i++) this.cache.set(missKeys[i]!, missTexts[i]!, all[i]!);
      } finally {
        for (const k of missKeys) this.inflight.delete(k);
      }
    }
    let n = 0;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      const v = p instanceof Promise ? await p : p;
      parts[i] = v;
      n += typeof v === 'number' ? 1 : v.length;
    }
    // The ids as u32, what the router hashes and hands to co-located workers: pieces are copied
    // in with memcpy (a number[] would cost an element loop here and another one in the hashing).
    const out = new Uint32Array(n);
    let k = 0;
    for (const v of parts as (number | Uint32Array)[]) {
      if (typeof v === 'number') out[k++] = v;
      else {
        out.set(v, k);
        k += v.length;
      }
    }
    partsOf.set(out, parts as (number | Uint32Array)[]);
    return out;
  }
}
