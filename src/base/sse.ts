/**
 * Reading a server-sent-events stream (an OpenAI streaming response): yields the payload of
 * each `data:` line, skipping blank payloads and the final `[DONE]`. Bytes are decoded as a
 * stream, so a multi-byte UTF-8 character split across two chunks stays whole.
 */
export async function* sseData(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]' || data === '') continue;
      yield data;
    }
  }
}
