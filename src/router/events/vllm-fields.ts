/**
 * What vllm.ts (the generic decoder) and vllm-fast.ts agree on: the positional field order of
 * vLLM's tagged-array events, the storage tier of each `medium`, and the cache groups that are not
 * main attention.
 */
import type { StorageTier } from '../types.js';

/** vLLM `medium` -> storage tier; undefined = unknown medium (the event is dropped). */
export function mediumToTier(medium: unknown): StorageTier | undefined {
  if (medium === null || medium === undefined) return 'device';
  if (typeof medium !== 'string') return undefined;
  switch (medium.toUpperCase()) {
    case 'GPU':
    case 'DEVICE':
      return 'device';
    case 'CPU':
    case 'CPU_PINNED':
    case 'CPU_TIER1':
      return 'host_pinned';
    case 'DISK':
    case 'NVME':
    case 'STORAGE':
    case 'CPU_TIER2':
      return 'disk';
    case 'EXTERNAL':
    case 'NETWORK':
    case 'REMOTE':
    case 'SHARED':
      return 'external';
    default:
      return undefined;
  }
}

/** Field order of msgspec tagged arrays after the tag. */
export const STORED_ORDER = [
  'block_hashes',
  'parent_block_hash',
  'token_ids',
  'block_size',
  'lora_id',
  'medium',
  'lora_name',
  'extra_keys',
  'group_idx',
  'kv_cache_spec_kind',
  'kv_cache_spec_sliding_window',
  'locality',
  'ownership',
  'session_id',
] as const;
export const REMOVED_ORDER = ['block_hashes', 'medium', 'group_idx'] as const;

/** kv_cache_spec_kind of a cache group that is not main attention (its events are dropped). */
export const NON_MAIN_ATTENTION = /sliding|mamba|chunk|cross|local/i;
