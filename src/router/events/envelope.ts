/**
 * (b) Dynamo event-plane envelope { publisher_id, sequence, published_at, topic, payload: bin }
 *     whose payload is a Dynamo RouterEvent batch in msgpack (the NATS message body); also the
 *     ZMQ event-plane frame (5-byte header + envelope).
 */
import { decodeDynamoEvents } from './dynamo.js';
import type { EnvelopeDecodeResult, EnvelopeMeta } from './types.js';
import { decodeMsgpack, describe, isObj, toSafeInt, toU64 } from './values.js';

/** Event-plane envelope {publisher_id, sequence, published_at, topic, payload} (NATS message body). */
export function decodeNatsEnvelope(bytes: Uint8Array): EnvelopeDecodeResult {
  try {
    const d = decodeMsgpack(bytes);
    if (!d.ok) return d;
    const v = d.value;
    if (!isObj(v)) return { ok: false, reason: 'envelope is not a map' };
    const publisherId = toU64(v.publisher_id);
    const sequence = toU64(v.sequence);
    const publishedAt = toSafeInt(v.published_at);
    if (publisherId === undefined) return { ok: false, reason: 'envelope.publisher_id missing or invalid' };
    if (sequence === undefined) return { ok: false, reason: 'envelope.sequence missing or invalid' };
    if (typeof v.topic !== 'string') return { ok: false, reason: 'envelope.topic missing' };
    let payload: Uint8Array;
    if (v.payload instanceof Uint8Array) payload = v.payload;
    else if (Array.isArray(v.payload) && v.payload.every((x) => typeof x === 'number' && x >= 0 && x <= 255 && Number.isInteger(x))) {
      payload = Uint8Array.from(v.payload as number[]); // serde may write Vec<u8> as an int array
    } else return { ok: false, reason: 'envelope.payload is not binary' };
    const inner = decodeDynamoEvents(payload);
    if (!inner.ok) return { ok: false, reason: `envelope payload: ${inner.reason}` };
    const envelope: EnvelopeMeta = { publisherId, sequence, publishedAt: publishedAt ?? 0, topic: v.topic };
    return inner.dropped
      ? { ok: true, envelope, events: inner.events, dropped: inner.dropped }
      : { ok: true, envelope, events: inner.events };
  } catch (e) {
    return { ok: false, reason: `undecodable envelope: ${describe(e)}` };
  }
}

/** ZMQ event-plane frame: [version=1 u8][payload_len u32 BE] + msgpack envelope. */
export function decodeEventPlaneFrame(frame: Uint8Array): EnvelopeDecodeResult {
  if (frame.length < 5) return { ok: false, reason: 'frame shorter than its 5-byte header' };
  if (frame[0] !== 1) return { ok: false, reason: `unsupported frame version ${frame[0]}` };
  const len = ((frame[1]! << 24) | (frame[2]! << 16) | (frame[3]! << 8) | frame[4]!) >>> 0;
  if (len !== frame.length - 5) return { ok: false, reason: `frame length ${len} does not match ${frame.length - 5} payload bytes` };
  return decodeNatsEnvelope(frame.subarray(5));
}
