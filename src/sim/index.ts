/**
 * Simulated inference workers: vLLM-like engines under Dynamo mocker's model (paged KV
 * blocks, prefix cache with LRU eviction, vLLM-style scheduler, polynomial timing), with an
 * OpenAI-compatible HTTP server and KV events in-process and in vLLM's ZMQ wire format.
 */
export { SimWorker, type SimWorkerOptions, type SimWorkerStats } from './worker.js';
export { startSimWorkers } from './start.js';
export { ThreadedSimWorker, type ThreadedSimWorkerOptions } from './threads.js';
export { PromptTokenInbox, type PromptTokenSource } from './prompt-inbox.js';
export {
  SimEngine,
  SimRequestError,
  type SimEngineOptions,
  type EngineRequest,
  type EngineResult,
  type EngineStats,
  type FirstTokenInfo,
  type KvEventListener,
} from './engine.js';
export { RealClock, VirtualClock, type Clock, type Cancel } from './clock.js';
export { KvBlockManager, type BlockHolder, type BlockSource, type KvManagerOptions } from './kv-manager.js';
export { prefillMs, decodeMs, scaled, singleRequestItlMs, singleRequestTtftMs } from './timing.js';
export { ZmqKvPublisher, encodeVllmBatch, toVllmWireEvent, seqFrame, REPLAY_BUFFER_BATCHES, type VllmWireEvent } from './zmq.js';
export { Rng, seedFromString } from './rng.js';
