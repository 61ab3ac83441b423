/**
 * Shared KV-event and worker types of the router core (dynamo-facts §3.1).
 *
 * These are the decoded, transport-independent shapes: the simulated workers emit them
 * in-process, the ZMQ / NATS decoders produce them, and the indexer consumes them.
 * Hashes are u64 as bigint.
 */

/** A worker as the router knows it. Strings so that sim workers, URLs and k8s pods fit. */
export type WorkerId = string;

export interface WorkerKey {
  readonly workerId: WorkerId;
  /** Data-parallel rank inside the worker (0 when the engine has no DP). */
  readonly dpRank: number;
}

export interface StoredBlock {
  /** Engine / external sequence hash: the per-worker lookup key for parent and remove. */
  readonly blockHash: bigint;
  /** LocalBlockHash over the block's tokens: what the radix tree navigates by. */
  readonly tokensHash: bigint;
}

export type KvCacheEventData =
  | { readonly type: 'stored'; readonly parentHash: bigint | null; readonly blocks: readonly StoredBlock[] }
  | { readonly type: 'removed'; readonly blockHashes: readonly bigint[] }
  | { readonly type: 'cleared' };

export type StorageTier = 'device' | 'host_pinned' | 'disk' | 'external';

/** Dynamo's RouterEvent: one KV cache event of one (worker, dp_rank). */
export interface RouterEvent {
  readonly workerId: WorkerId;
  readonly dpRank: number;
  /** Monotonic per (worker, dp_rank) publisher, from 0. */
  readonly eventId: number;
  readonly storageTier?: StorageTier;
  readonly data: KvCacheEventData;
}
