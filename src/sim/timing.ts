/**
 * Dynamo mocker's default timing model (dynamo-facts §5, "polynomial"): the same constants
 * in Dynamo v1.1 and in aisimulate. Times are milliseconds before the speedup division.
 */

/** Prefill time for one pass that computes `newTokens` prompt tokens in total (batch * per-request). */
export function prefillMs(newTokens: number): number {
  if (newTokens <= 0) return 0;
  const t = newTokens;
  return 4.209989e-7 * t * t + 1.518344e-2 * t + 16.50142;
}

/**
 * Decode time of one pass. `usage` = active KV tokens / (num_gpu_blocks * block_size), i.e.
 * active (referenced) blocks / num_gpu_blocks, as in Dynamo v1.1.
 */
export function decodeMs(usage: number): number {
  const u = Math.min(1, Math.max(0, usage));
  return Math.max(1.0, -25.74 * u * u + 54.01 * u + 5.74);
}

/** Divide by a speedup ratio; a ratio <= 0 means "no delay" for the engine (returns 0). */
export function scaled(ms: number, speedup: number): number {
  if (!(speedup > 0)) return 0;
  return ms / speedup;
}

/**
 * The model's time to first token for a lone request on an idle engine: the prompt is
 * computed in chunks of at most `maxNumBatchedTokens` (one pass each) and the last chunk's pass
 * emits the first token; no request is decoding, so no pass has a decode term (Dynamo 1.6.1's
 * mocker). `cachedTokens` are skipped (prefix cache hit). Speedup 1.
 */
export function singleRequestTtftMs(opts: { promptTokens: number; cachedTokens?: number; maxNumBatchedTokens: number }): number {
  const cached = Math.min(opts.cachedTokens ?? 0, opts.promptTokens);
  let remaining = opts.promptTokens - cached;
  let ms = 0;
  while (remaining > 0) {
    const n = Math.min(remaining, opts.maxNumBatchedTokens);
    ms += prefillMs(n);
    remaining -= n;
  }
  return ms;
}

/**
 * The model's time between two output tokens of a lone request: one decode pass at the
 * request's length (prompt + tokens generated so far) over the cache's capacity. Speedup 1.
 */
export function singleRequestItlMs(opts: { sequenceTokens: number; blockSize: number; numGpuBlocks: number }): number {
  return decodeMs(opts.sequenceTokens / (opts.numGpuBlocks * opts.blockSize));
}
