/**
 * The SSE relay of a streamed answer, on bytes: splits the worker's stream into whole events (an
 * event may arrive split across chunks, or several in one; `\n\n` or `\r\n\r\n` ends one), counts
 * token events, reads the usage chunk and leaves it out when the client did not ask for it.
 *
 * It works on the Buffers the worker sent and passes them on as they are (the same Buffer, or a
 * view of it) unless an event is left out: no UTF-8 decoding of every chunk and no re-encoding on
 * the way out. Events of one `data:` line (what vLLM, SGLang and the simulated workers send) are
 * checked on their bytes; anything else (comments, `event:` / `id:` lines, multi-line data) takes
 * the general path on text, with the same result.
 */
import type { Usage } from './usage.js';

/** An OpenAI-shaped error event, then [DONE]: how a stream that cannot go on ends. */
export function sseError(message: string, code: string): string {
  return `data: ${JSON.stringify({ error: { message, type: 'server_error', code } })}\n\ndata: [DONE]\n\n`;
}

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);
const DATA = Buffer.from('data:');

/** An event that carries generated output (content, text, reasoning or tool calls), not the empty role chunk. */
const TOKEN_EVENT = /"(?:content|text|reasoning_content|reasoning)":"[^"]|"tool_calls":\[\{/;
const FINISH_EVENT = /"finish_reason":"/;

/** End (exclusive) of the first event in buf[from..]: just after a blank line (`\r?\n\r?\n`), or -1. */
function eventEnd(buf: Buffer, from: number): number {
  for (let i = buf.indexOf(LF, from); i >= 0; i = buf.indexOf(LF, i + 1)) {
    const a = buf[i + 1];
    if (a === LF) return i + 2;
    if (a === CR && buf[i + 2] === LF) return i + 3;
    if (a === undefined || (a === CR && i + 2 >= buf.length)) return -1;
  }
  return -1;
}

export class SseRelay {
  private pending: Buffer = EMPTY;
  sawDone = false;
  tokenEvents = 0;
  firstTokenAt = 0;
  lastTokenAt = 0;
  usage: Usage = {};

  constructor(private readonly passUsage: boolean) {}

  /** Feed the next bytes; returns what to send on now (whole events only; empty when none). */
  push(chunk: Buffer, now: number): Buffer {
    const buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let start = 0;
    let kept: Buffer[] | undefined; // set once an event is left out
    for (let end = eventEnd(buf, 0); end >= 0; end = eventEnd(buf, start)) {
      const pass = this.event(buf, start, end, now);
      if (!pass && !kept) kept = start > 0 ? [buf.subarray(0, start)] : [];
      else if (pass && kept) kept.push(buf.subarray(start, end));
      start = end;
    }
    // Copy the partial event: `buf` may be a large chunk that should not stay referenced.
    this.pending = start === buf.length ? EMPTY : Buffer.from(buf.subarray(start));
    if (kept) return kept.length === 1 ? kept[0]! : Buffer.concat(kept);
    return start === buf.length ? buf : buf.subarray(0, start);
  }

  /** The end of the stream: whatever is left (dropped when the stream failed mid-event). */
  finish(failed = false): Buffer {
    const rest = this.pending;
    this.pending = EMPTY;
    if (failed || rest.toString('utf8').trim() === '') return EMPTY;
    const ev = Buffer.concat([rest, Buffer.from('\n\n')]);
    return this.event(ev, 0, ev.length, performance.now()) ? ev : EMPTY;
  }

  /** Account for the event buf[start..end); whether to pass it on. */
  private event(buf: Buffer, start: number, end: number, now: number): boolean {
    // Fast path: one `data:` line, then the blank line.
    const nl = buf.indexOf(LF, start);
    const singleDataLine =
      end - start > 5 && buf.compare(DATA, 0, 5, start, start + 5) === 0 && (end - nl === 2 || (end - nl === 3 && buf[nl + 1] === CR));
    if (!singleDataLine) return this.eventText(buf.toString('utf8', start, end), now);
    const from = start + (buf[start + 5] === 0x20 ? 6 : 5);
    const lineEnd = buf[nl - 1] === CR ? nl - 1 : nl;
    if (from >= lineEnd) return true; // empty data
    // The patterns below are ASCII, so they match the latin1 reading of the bytes as they match the UTF-8 text.
    const data = buf.toString('latin1', from, lineEnd);
    if (data === '[DONE]') {
      this.sawDone = true;
      return true;
    }
    if (data.includes('"usage"')) {
      const keep = this.usageEvent(buf.toString('utf8', from, lineEnd));
      if (keep !== undefined) return keep;
    }
    this.tokens(data, now);
    return true;
  }

  /** General path: the event as text (any lines). */
  private eventText(ev: string, now: number): boolean {
    let data = '';
    for (const line of ev.split(/\r?\n/)) if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(line[5] === ' ' ? 6 : 5);
    if (data === '') return true;
    if (data === '[DONE]') {
      this.sawDone = true;
      return true;
    }
    if (data.includes('"usage"')) {
      const keep = this.usageEvent(data);
      if (keep !== undefined) return keep;
    }
    this.tokens(data, now);
    return true;
  }

  /** Reads usage from a data payload; false = leave the event out (a usage-only chunk the client did not ask for). */
  private usageEvent(data: string): boolean | undefined {
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
      if (Array.isArray(obj.choices) && obj.choices.length === 0) return this.passUsage;
    } catch {
      // not JSON: pass it on untouched
    }
    return undefined;
  }

  private tokens(data: string, now: number): void {
    if (TOKEN_EVENT.test(data)) {
      if (this.firstTokenAt === 0) this.firstTokenAt = now;
      this.tokenEvents++;
      this.lastTokenAt = now;
    } else if (this.firstTokenAt === 0 && FINISH_EVENT.test(data)) this.firstTokenAt = now; // nothing generated: prefill still ended
  }
}
