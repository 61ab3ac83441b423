/**
 * Reading a server-sent-events stream (an OpenAI streaming response): yields the `data` of each
 * event, skipping blank payloads and the final `[DONE]`. Bytes are decoded as a stream, so a
 * multi-byte UTF-8 character split across two chunks stays whole; the event framing (CRLF,
 * multi-line `data:`, comments) is eventsource-parser's.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export async function* sseData(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  const ready: string[] = [];
  const parser = createParser({
    onEvent: (ev: EventSourceMessage) => {
      if (ev.data !== '' && ev.data !== '[DONE]') ready.push(ev.data);
    },
  });
  for await (const chunk of body) {
    parser.feed(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    while (ready.length > 0) yield ready.shift()!;
  }
  // Flush the decoder; a stream that ends without the blank line after its last event still
  // delivers that event (blank lines alone dispatch nothing).
  parser.feed(decoder.decode() + '\n\n');
  while (ready.length > 0) yield ready.shift()!;
}
