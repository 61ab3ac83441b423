/**
 * KV event decoders (dynamo-facts §3), one file per wire format. Pure functions over bytes (no
 * I/O): they never throw on malformed input, they return `{ ok: false, reason }` instead.
 *
 *   dynamo.ts    Dynamo RouterEvent (msgpack or JSON)
 *   envelope.ts  Dynamo event-plane envelope (NATS body, ZMQ event-plane frame)
 *   vllm.ts      vLLM ZMQ KV-event batches
 */
export type { DecodeResult, DroppedEvent, EnvelopeDecodeResult, EnvelopeMeta } from './types.js';
export { parseJsonExact, toU64 } from './values.js';
export { convertDynamoRouterEvent, decodeDynamoEvents } from './dynamo.js';
export { decodeEventPlaneFrame, decodeNatsEnvelope } from './envelope.js';
export { decodeVllmZmqBatch, mediumToTier } from './vllm.js';
