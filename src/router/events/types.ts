/** Results of the KV event decoders: they never throw on malformed input, they say why instead. */
import type { RouterEvent } from '../types.js';

export interface DroppedEvent {
  /** Position of the event in its batch. */
  index: number;
  reason: string;
}

export type DecodeResult =
  | { ok: true; events: RouterEvent[]; dpRank?: number; dropped?: DroppedEvent[]; nextEventId?: number }
  | { ok: false; reason: string };

export interface EnvelopeMeta {
  publisherId: bigint;
  sequence: bigint;
  publishedAt: number;
  topic: string;
}

export type EnvelopeDecodeResult =
  | { ok: true; envelope: EnvelopeMeta; events: RouterEvent[]; dropped?: DroppedEvent[] }
  | { ok: false; reason: string };
