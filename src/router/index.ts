/** KV router core: pure library (no I/O). */
export * from './types.js';
export * from './hashing.js';
export * from './indexer.js';
export * from './sequences.js';
export * from './selector.js';
export * from './router.js';
export * from './ttft-model.js';
export * from './policy-config.js';
export { U64Table, toPairs, fromPairs, splitU64, joinU64, asU64 } from './u64.js';
export * from './events/index.js';
