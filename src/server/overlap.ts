/**
 * What the router's index holds of a request's prompt (POST /debug/overlap, RouterServer.overlapOf):
 * the prompt tokenised as the proxy does it, looked up per worker; nothing is routed or booked.
 */
import type { ServerContext } from './context.js';
import { tokenizeRequest } from './request-body.js';

/** What the router's index holds of a request's prompt: the full blocks per worker (a query: nothing is booked). */
export interface OverlapView {
  isl_tokens: number;
  block_size: number;
  /** Full blocks of the prompt (the most any worker can hold). */
  prompt_blocks: number;
  /** Per worker, how many leading blocks of the prompt its cache holds (the router's index). */
  workers: Record<string, number>;
}

/** Tokenise a chat (`messages`) or completions (`prompt`) request body as the proxy does, and look it up in the index. */
export async function overlapOf(ctx: ServerContext, body: Record<string, unknown>): Promise<OverlapView> {
  const path = body.messages !== undefined ? '/v1/chat/completions' : '/v1/completions';
  const tokens = await tokenizeRequest(ctx.tokenizer, path, body);
  const bs = ctx.core.blockSize;
  const workers: Record<string, number> = {};
  for (const id of ctx.registry.ids()) workers[id] = 0;
  for (const o of ctx.core.overlaps(tokens)) workers[o.workerId] = Math.max(workers[o.workerId] ?? 0, o.overlap_blocks);
  return { isl_tokens: tokens.length, block_size: bs, prompt_blocks: Math.floor(tokens.length / bs), workers };
}
