/**
 * The router's side of a streamed answer: the worker's SSE bytes in, whole events out, with
 * the token events timed (TTFT, ITL) and the usage chunk read (and left out when the client
 * did not ask for it).
 */
import type { Usage } from './usage.js';

/** An OpenAI-shaped error event, then [DONE]: how a stream that cannot go on ends. */
export function sseError(message: string, code: string): string {
  return `data: ${JSON.stringify({ error: { message, type: 'server_error', code } })}\n\ndata: [DONE]\n\n`;
}

/**
 * Splits the worker's SSE byte stream into whole events (an event may arrive split across
 * chunks, or several in one), counts token events, reads the usage chunk and leaves it out
 * when the client did not ask for it.
 */
export class SseRelay {
  private pending = '';
  sawDone = false;
  tokenEvents = 0;
  firstTokenAt = 0;
  lastTokenAt = 0;
  usage: Usage = {};

  constructor(private readonly passUsage: boolean) {}

  /** Feed decoded text; returns what to send on now (whole events only). */
  push(text: string, now: number): string {
    this.pending += text;
    let out = '';
    for (;;) {
      const m = /\r?\n\r?\n/.exec(this.pending);
      if (!m) break;
      const ev = this.pending.slice(0, m.index + m[0].length);
      this.pending = this.pending.slice(m.index + m[0].length);
      out += this.event(ev, now);
    }
    return out;
  }

  /** The end of the stream: whatever is left (dropped when the stream failed mid-event). */
  finish(text: string, failed = false): string {
    this.pending += text;
    const rest = this.pending;
    this.pending = '';
    if (failed || rest.trim() === '') return '';
    return this.event(rest + '\n\n', performance.now());
  }

  private event(ev: string, now: number): string {
    let data = '';
    for (const line of ev.split(/\r?\n/)) if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(line[5] === ' ' ? 6 : 5);
    if (data === '') return ev;
    if (data === '[DONE]') {
      this.sawDone = true;
      return ev;
    }
    if (data.includes('"usage"')) {
      try {
        const obj = JSON.parse(data) as {
          choices?: unknown[];
          usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | null;
        };
        if (obj.usage)
          this.usage = {
            prompt: obj.usage.prompt_tokens,
            completion: obj.usage.completion_tokens,
            cached: obj.usage.prompt_tokens_details?.cached_tokens,
          };
        if (Array.isArray(obj.choices) && obj.choices.length === 0) return this.passUsage ? ev : '';
      } catch {
        // not JSON: pass it on untouched
      }
    }
    if (TOKEN_EVENT.test(data)) {
      if (this.firstTokenAt === 0) this.firstTokenAt = now;
      this.tokenEvents++;
      this.lastTokenAt = now;
    } else if (this.firstTokenAt === 0 && FINISH_EVENT.test(data)) this.firstTokenAt = now; // nothing generated: prefill still ended
    return ev;
  }
}

/** An event that carries generated output (content, text, reasoning or tool calls), not the empty role chunk. */
const TOKEN_EVENT = /"(?:content|text|reasoning_content|reasoning)":"[^"]|"tool_calls":\[\{/;
const FINISH_EVENT = /"finish_reason":"/;
