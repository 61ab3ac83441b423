/**
 * Finds generated tokens in an OpenAI SSE stream as it is relayed: the first event that carries
 * generated output (non-empty content / text / reasoning, or tool calls) is the first token; an
 * empty role chunk is not. Events carrying output are counted so the inter-token latency comes
 * from token events only. Chunk borders may split an event: the unfinished tail is carried over.
 */
const TOKEN = /"(?:content|text|reasoning_content|reasoning)":"[^"]|"tool_calls":\[\{/;
const FINISH = /"finish_reason":"/;

export class SseTokenScanner {
  /** performance.now() of the chunk with the first generated output (0 = not yet). */
  firstAt = 0;
  /** performance.now() of the last chunk with generated output. */
  lastAt = 0;
  /** Events carrying generated output. */
  tokenEvents = 0;
  private carry = '';

  /**
   * Feed one relayed chunk; returns true when it holds the first generated output (or a finish
   * reason before any output, so a request that generates nothing still ends its prefill).
   */
  push(chunk: Buffer | string, now: number): boolean {
    const s = this.carry + (typeof chunk === 'string' ? chunk : chunk.toString('latin1'));
    let start = 0;
    let first = false;
    for (let end = s.indexOf('\n\n'); end >= 0; end = s.indexOf('\n\n', start)) {
      const ev = s.slice(start, end);
      start = end + 2;
      if (TOKEN.test(ev)) {
        this.tokenEvents++;
        this.lastAt = now;
        if (this.firstAt === 0) first = true;
      } else if (this.firstAt === 0 && FINISH.test(ev)) first = true;
      if (first && this.firstAt === 0) this.firstAt = now;
    }
    this.carry = s.slice(start);
    // A single event larger than this is not an OpenAI stream chunk: keep the carry bounded.
    if (this.carry.length > 1 << 20) this.carry = this.carry.slice(-4096);
    return first;
  }
}
