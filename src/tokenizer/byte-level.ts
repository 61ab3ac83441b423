/**
 * GPT-2's byte-level alphabet: a ByteLevel vocabulary writes each byte of a token as one
 * printable character (bytes that are not printable are shifted to U+0100 and up).
 */

/** Byte of each alphabet character by char code (U+0000..U+0143), -1 outside the alphabet. */
const BYTE_OF = (() => {
  const codes = new Int16Array(0x144).fill(-1);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    codes[printable ? b : 256 + extra++] = b;
  }
  return codes;
})();

/** The bytes a ByteLevel token stands for; a character outside the alphabet stays as its UTF-8. */
export function byteLevelBytes(token: string): Uint8Array {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < BYTE_OF.length ? BYTE_OF[c]! : -1;
    if (b < 0) return mixedBytes(token);
    out[i] = b;
  }
  return out;
}

/** byteLevelBytes for a token with characters outside the alphabet (rare: none in Qwen or Llama 3). */
function mixedBytes(token: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of token) {
    const c = ch.charCodeAt(0);
    const b = ch.length === 1 && c < BYTE_OF.length ? BYTE_OF[c]! : -1;
    if (b < 0) bytes.push(...Buffer.from(ch, 'utf8'));
    else bytes.push(b);
  }
  return Uint8Array.from(bytes);
}

const B64 = Uint8Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', (c) => c.charCodeAt(0));

/**
 * A ByteLevel vocabulary as tiktoken's rank file: one "base64(token bytes) rank" line per token,
 * the rank being the token's id. Written straight into one byte buffer (a Buffer.toString call
 * per token took 4x as long for a 150k vocabulary, on the thread that loads the tokenizer).
 */
export function tiktokenRanks(vocab: Record<string, number>): string {
  let out = new Uint8Array(1 << 22);
  let k = 0;
  for (const token in vocab) {
    const b = byteLevelBytes(token);
    const need = k + Math.ceil(b.length / 3) * 4 + 13;
    if (need > out.length) {
      const bigger = new Uint8Array(Math.max(need, out.length * 2));
      bigger.set(out.subarray(0, k));
      out = bigger;
    }
    let i = 0;
    for (; i + 2 < b.length; i += 3) {
      const v = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
      out[k++] = B64[v >>> 18]!;
      out[k++] = B64[(v >>> 12) & 63]!;
      out[k++] = B64[(v >>> 6) & 63]!;
      out[k++] = B64[v & 63]!;
    }
    if (i < b.length) {
      const two = i + 1 < b.length;
      const v = (b[i]! << 16) | (two ? b[i + 1]! << 8 : 0);
      out[k++] = B64[v >>> 18]!;
      out[k++] = B64[(v >>> 12) & 63]!;
      out[k++] = two ? B64[(v >>> 6) & 63]! : 61; // '='
      out[k++] = 61;
    }
    out[k++] = 32;
    const id = String(vocab[token]);
    for (let j = 0; j < id.length; j++) out[k++] = id.charCodeAt(j);
    out[k++] = 10;
  }
  return Buffer.from(out.buffer, 0, Math.max(0, k - 1)).toString('latin1');
}
