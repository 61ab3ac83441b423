/**
 * Shared KV-event and worker types of the router core (dynamo-facts §3.1).
 *
 * These are the decoded, transport-independent shapes: the simulated workers emit them
 * in-process, the ZMQ / NATS decoders produce them, and the indexer consumes them.
 * Hashes are u64 as bigint; a Stored event may also carry its hashes as u32 pairs (`pairs`),
 * which is what the indexer works on.
 */
import { fromPairs } from './u64.js';

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

/** A Stored event's hashes as interleaved u32 halves of each u64: [lo0, hi0, lo1, hi1, ...]. */
export interface StoredPairs {
  /** Engine block hashes (`blockHash`). */
  readonly block: Uint32Array;
  /** Local block hashes (`tokensHash`), the same length. */
  readonly tokens: Uint32Array;
}

export interface StoredData {
  readonly type: 'stored';
  readonly parentHash: bigint | null;
  readonly blocks: readonly StoredBlock[];
  /**
   * The same blocks as u32 pairs, from producers that hold them in that form (`storedFromPairs`):
   * the indexer reads these directly, and `blocks` is built only if something else reads it.
   */
  readonly pairs?: StoredPairs;
}

export type KvCacheEventData =
  | StoredData
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

/** A Stored event built from u32 pairs; `blocks` (bigints) is made on first read. */
class StoredFromPairs implements StoredData {
  readonly type = 'stored' as const;
  #blocks?: StoredBlock[];

  constructor(
    readonly parentHash: bigint | null,
    readonly pairs: StoredPairs,
  ) {}

  get blocks(): readonly StoredBlock[] {
    if (!this.#blocks) {
      const b = fromPairs(this.pairs.block);
      const t = fromPairs(this.pairs.tokens);
      this.#blocks = b.map((blockHash, i) => ({ blockHash, tokensHash: t[i]! }));
    }
    return this.#blocks;
  }
}

/**
 * A Stored event from hashes already held as u32 pairs (a simulated worker's thread, a decoder
 * that hashed in pairs): no bigint per block on the way to the indexer. Throws when the two
 * arrays are not pairs of the same length.
 */
export function storedFromPairs(parentHash: bigint | null, block: Uint32Array, tokens: Uint32Array): StoredData {
  if (block.length % 2 !== 0 || block.length !== tokens.length)
    throw new RangeError(`stored pairs: ${block.length} block and ${tokens.length} token halves (need two equal, even lengths)`);
  return new StoredFromPairs(parentHash, { block, tokens });
}
