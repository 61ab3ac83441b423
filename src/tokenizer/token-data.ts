/**
 * The prompt's token ids on the wire between the router and a simulated worker (tokenize once
 * over HTTP). Dynamo's own field is `nvext.token_data`, a JSON list. A dynamo-lab sim also takes
 * `nvext.token_data_b64`: the ids as little-endian uint32s in base64. Parsing 8k ids out of JSON
 * took the worker ~0.2 ms per request, decoding the base64 a tenth of that. A sim lists
 * TOKEN_DATA_B64 in its /health `token_data_encodings`; the router sends the compact form only to
 * a worker that lists it.
 */
import { LITTLE_ENDIAN } from '../base/endian.js';

/** The name of the compact form in /health `token_data_encodings`. */
export const TOKEN_DATA_B64 = 'base64-u32le';

/** What a dynamo-lab sim lists in /health `token_data_encodings`. */
export const TOKEN_DATA_ENCODINGS: readonly string[] = ['json', TOKEN_DATA_B64];

/** The ids as base64 of little-endian uint32s. */
export function idsToBase64(ids: Uint32Array): string {
  if (LITTLE_ENDIAN) return Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength).toString('base64');
  const b = Buffer.allocUnsafe(4 * ids.length);
  for (let i = 0; i < ids.length; i++) b.writeUInt32LE(ids[i]!, 4 * i);
  return b.toString('base64');
}

/**
 * The ids from base64 of little-endian uint32s, or why the text is not that (for the 400). Not
 * checked here: whether each id is below the vocabulary size.
 */
export function idsFromBase64(b64: string): Uint32Array | { error: string } {
  const bytes = Buffer.from(b64, 'base64');
  // Buffer's decoder skips what is not base64: fewer bytes than the length promises means there was some.
  const padding = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  if (b64.length % 4 !== 0 || bytes.length !== (b64.length / 4) * 3 - padding) return { error: 'as padded base64; it is not' };
  if (bytes.length === 0 || bytes.length % 4 !== 0)
    return { error: `as base64 of little-endian uint32s; it decodes to ${bytes.length} bytes, not a non-zero multiple of 4` };
  if (LITTLE_ENDIAN) return new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return Uint32Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readUInt32LE(4 * i));
}
