/**
 * HTTP JSON helpers shared by the router server and the simulated worker: body reading with a
 * size limit, JSON body parsing and OpenAI-shaped errors (`{"error":{"message","type","code"}}`).
 */
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly code: string | null = null,
    /** Extra response headers (Allow on 405, Retry-After on 503/529). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown, headers: Record<string, string> = {}): void {
  const e = err instanceof HttpError ? err : new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`);
  sendJson(res, e.status, { error: { message: e.message, type: e.type, code: e.code } }, { ...e.headers, ...headers });
}

/**
 * The request body, at most `limitBytes`; a larger one is an HttpError 413 (`body_too_large`).
 * The rest of an oversized body is drained, so the client reads the 413 instead of a reset.
 */
export function readBody(req: IncomingMessage, limitBytes: number, deadlineMs = BODY_DEADLINE_MS): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limitBytes) {
      reject(
        new HttpError(
          413,
          `request body is ${declared} bytes; the limit is ${limitBytes} bytes`,
          'invalid_request_error',
          'body_too_large',
        ),
      );
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    // A client that trickles its body (or stops sending it) is cut off after the deadline.
    let ended = false;
    const timer = setTimeout(function expire() {
      if (failed || ended) return;
      // After a long event-loop stall timers run before pending reads: data already waiting in
      // the socket is not a slow client, so give it another period.
      if (req.readableLength > 0 || (req.socket?.readableLength ?? 0) > 0) {
        setTimeout(expire, deadlineMs).unref();
        return;
      }
      failed = true;
      reject(
        new HttpError(
          408,
          `the request body did not arrive within ${deadlineMs / 1000} s (${size} bytes received)`,
          'invalid_request_error',
          'body_timeout',
        ),
      );
      req.socket.destroySoon?.();
    }, deadlineMs);
    timer.unref();
    const onClose = () => {
      ended = true;
      clearTimeout(timer);
    };
    const onData = (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limitBytes) {
        failed = true;
        clearTimeout(timer);
        reject(new HttpError(413, `request body exceeds the limit of ${limitBytes} bytes`, 'invalid_request_error', 'body_too_large'));
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      ended = true;
      clearTimeout(timer);
      if (failed) return;
      // These listeners hold the chunks, and through `resolve` the body, for as long as the
      // request object lives: for a stream, until its last event. Once the body is read, nothing
      // here is needed; detached, the chunks die young and the body lives as long as its reader
      // keeps it. (Held, at 256 streams of 8k-token chat, they were ~18 MB of ArrayBuffers that
      // only a full GC frees; an IncomingMessage with no 'error' listener emits no error.)
      req.off('close', onClose);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      chunks.length = 0;
      resolve(body);
    };
    const onError = (err: Error) => {
      clearTimeout(timer);
      if (!failed)
        reject(new HttpError(400, `reading the request body failed: ${err.message}`, 'invalid_request_error', 'body_read_error'));
    };
    req.on('close', onClose);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    // Start the flow now rather than on the next tick: the body that came in the same read as the
    // headers then goes straight to 'data' instead of the stream's buffer, where a body larger than
    // its 16 KB high-water mark makes Node stop reading the socket and start again a tick later
    // (two epoll_ctl system calls per request).
    req.read(0);
  });
}

export function parseJsonBody(buf: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body is not valid JSON: ${(err as Error).message}`, 'invalid_request_error', 'invalid_json');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new HttpError(400, 'request body must be a JSON object', 'invalid_request_error', 'invalid_json');
  return parsed as Record<string, unknown>;
}

/** How long a client may take to send its whole body (ms). */
const BODY_DEADLINE_MS = 30_000;

export interface HttpGuardOptions {
  /** Time to receive the request headers (default 60 s, Node's; shorter ones cut off healthy clients of a saturated router). */
  readonly headersTimeoutMs?: number;
  /** Time to receive the whole request, body included (default 70 s). */
  readonly requestTimeoutMs?: number;
  /** Idle keep-alive connections are closed after this (default 5 s). */
  readonly keepAliveTimeoutMs?: number;
  /** A connection with no traffic either way for this long is closed (default 120 s; SSE token streams are traffic). */
  readonly idleTimeoutMs?: number;
}

/**
 * Options for http.createServer: the header/request timeouts only take effect through the
 * constructor (its connection check runs every second instead of Node's default 30 s).
 */
export function guardedServerOptions(o: HttpGuardOptions = {}): ServerOptions {
  return {
    maxHeaderSize: 16 * 1024,
    headersTimeout: o.headersTimeoutMs ?? 60_000,
    requestTimeout: o.requestTimeoutMs ?? 70_000,
    connectionsCheckingInterval: 1000,
    keepAliveTimeout: o.keepAliveTimeoutMs ?? 5_000,
  };
}

/**
 * Timeouts that bound slow clients, and OpenAI-shaped JSON for what Node's HTTP parser rejects
 * (bad request line, oversized headers -> 431, header/request timeouts -> 408) instead of an
 * empty non-JSON answer.
 */
export function guardServer(server: Server, o: HttpGuardOptions = {}): void {
  server.headersTimeout = o.headersTimeoutMs ?? 60_000;
  server.requestTimeout = o.requestTimeoutMs ?? 70_000;
  server.keepAliveTimeout = o.keepAliveTimeoutMs ?? 5_000;
  server.setTimeout(o.idleTimeoutMs ?? 120_000, (socket) => socket.destroy());
  server.on('clientError', (err: NodeJS.ErrnoException & { bytesParsed?: number; rawPacket?: Buffer }, socket: Socket) => {
    if (!socket.writable || (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, code, message] = clientErrorShape(err);
    const text = JSON.stringify({ error: { message, type: 'invalid_request_error', code } });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
  });
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  431: 'Request Header Fields Too Large',
};

function clientErrorShape(err: NodeJS.ErrnoException): [number, string, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'headers_too_large', 'request headers are too large (limit 16 KiB): send fewer or shorter headers'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      return [408, 'request_timeout', 'the request did not arrive in time: send the headers and body without pausing'];
    case 'HPE_INVALID_METHOD':
      return [400, 'invalid_method', 'unknown HTTP method: use GET or POST (DELETE for /admin/workers/<id>)'];
    case 'HPE_INVALID_URL':
      return [400, 'invalid_url', 'the request target is not a valid URL path'];
    case 'HPE_CHUNK_SIZE':
    case 'HPE_INVALID_CHUNK_SIZE':
      return [400, 'invalid_chunked_body', 'the chunked request body is malformed'];
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
      return [400, 'invalid_content_length', 'the Content-Length header is invalid or conflicts with Transfer-Encoding'];
    default:
      return [400, 'bad_request', `malformed HTTP request (${err.code ?? err.message}): check the request line and headers`];
  }
}

/** Path and query of a request target, never throwing (`//`, `%E0%A4%A`, absolute-form targets). */
export function splitTarget(target: string | undefined): { path: string; query: URLSearchParams } {
  let t = target ?? '/';
  if (!t.startsWith('/')) {
    // absolute-form (http://host/path) or `*`
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/i.exec(t);
    t = m ? m[1] || '/' : '/' + t;
  }
  const q = t.indexOf('?');
  const path = (q >= 0 ? t.slice(0, q) : t).replace(/#.*$/, '');
  let query: URLSearchParams;
  try {
    query = new URLSearchParams(q >= 0 ? t.slice(q + 1) : '');
  } catch {
    query = new URLSearchParams();
  }
  return { path, query };
}

/** decodeURIComponent that answers 400 for malformed escapes instead of throwing URIError. */
export function decodePathSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, `malformed percent-escape in the path segment "${s}"`, 'invalid_request_error', 'invalid_path');
  }
}

/**
 * 415 for a body that announces a non-JSON media type. A missing type and curl's default
 * (application/x-www-form-urlencoded) are read as JSON, like vLLM's server does.
 */
export function checkJsonContentType(req: IncomingMessage): void {
  const ct = req.headers['content-type'];
  if (ct === undefined || ct === '') return;
  const media = ct.split(';')[0]!.trim().toLowerCase();
  if (
    media === 'application/json' ||
    media.endsWith('+json') ||
    media === 'application/x-www-form-urlencoded' ||
    media === 'text/plain' ||
    media === '*/*'
  )
    return;
  req.resume();
  throw new HttpError(
    415,
    `Content-Type ${media} is not supported: send the body as application/json`,
    'invalid_request_error',
    'unsupported_media_type',
  );
}

/** A routing table lookup: the handler, or 404 (unknown path) / 405 with Allow (known path, other method). */
export function methodNotAllowed(path: string, method: string, allowed: readonly string[]): HttpError {
  return new HttpError(
    405,
    `method ${method} is not allowed on ${path}; use ${allowed.join(' or ')}`,
    'invalid_request_error',
    'method_not_allowed',
    { allow: allowed.join(', ') },
  );
}
