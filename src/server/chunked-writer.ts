/**
 * The body of a streamed response, framed as HTTP/1.1 chunks here, one buffer per write.
 *
 * Node frames a chunked body itself: each `res.write(data)` becomes four writes into the corked
 * socket (the size in hex, CRLF, the data, CRLF) and a writev of the four when it is uncorked. A
 * relayed SSE stream makes one `res.write` per event from the worker (about 20 for a 16-token
 * answer), so that machinery ran 80 socket writes per request on the router's thread. Here the
 * frame is built in one buffer (a copy of the event's ~200 bytes) and Node writes it as it is:
 * one socket write per event.
 *
 * Only after `writeHead()` chose chunked encoding (an HTTP/1.1 client, no content-length): the
 * writer then turns Node's framing off (`chunkedEncoding`, a field of every OutgoingMessage since
 * Node's first releases) for each of its own writes only, and writes the terminating chunk itself
 * at the end. Any other `res.end()` (an error path) still gets Node's framing and terminator, so a
 * kept-alive connection is never left mid-body. When Node did not choose chunked encoding (an
 * HTTP/1.0 client: the body ends when the connection closes), or the field is not there, the data
 * goes to `res.write` / `res.end` unchanged.
 */
import type { ServerResponse } from 'node:http';

const LAST_CHUNK = Buffer.from('0\r\n\r\n');

export class ChunkedWriter {
  private readonly res: ServerResponse & { chunkedEncoding?: boolean };
  private readonly framing: boolean;

  /** Call right after `res.writeHead()`. */
  constructor(res: ServerResponse) {
    this.res = res;
    this.framing = this.res.chunkedEncoding === true;
  }

  /** Write `data` (nothing when empty); false when the socket's buffer is full (wait for 'drain'). */
  write(data: Buffer | string): boolean {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (buf.length === 0) return true;
    if (!this.framing) return this.res.write(buf);
    this.res.chunkedEncoding = false;
    try {
      return this.res.write(frame(buf));
    } finally {
      this.res.chunkedEncoding = true;
    }
  }

  /** End the body, after `data` when given. */
  end(data?: Buffer | string): void {
    const buf = data === undefined ? undefined : typeof data === 'string' ? Buffer.from(data) : data;
    if (!this.framing) {
      if (buf && buf.length > 0) this.res.end(buf);
      else this.res.end();
      return;
    }
    this.res.chunkedEncoding = false;
    try {
      this.res.end(buf && buf.length > 0 ? frame(buf, LAST_CHUNK) : LAST_CHUNK);
    } finally {
      this.res.chunkedEncoding = true;
    }
  }
}

/** `data` as one chunk (`<size in hex>\r\n<data>\r\n`), then `after` when given, in one buffer. */
function frame(data: Buffer, after?: Buffer): Buffer {
  const size = data.length.toString(16);
  const out = Buffer.allocUnsafe(size.length + data.length + 4 + (after ? after.length : 0));
  let at = out.write(size, 0, 'latin1');
  out[at++] = 0x0d;
  out[at++] = 0x0a;
  at += data.copy(out, at);
  out[at++] = 0x0d;
  out[at++] = 0x0a;
  if (after) after.copy(out, at);
  return out;
}
