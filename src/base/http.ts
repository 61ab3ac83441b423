/**
 * HTTP JSON helpers shared by the router server and the simulated worker: body reading with a
 * size limit, JSON body parsing and OpenAI-shaped errors (`{"error":{"message","type","code"}}`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly code: string | null = null,
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
  sendJson(res, e.status, { error: { message: e.message, type: e.type, code: e.code } }, headers);
}

/**
 * The request body, at most `limitBytes`; a larger one is an HttpError 413 (`body_too_large`).
 * The rest of an oversized body is drained, so the client reads the 413 instead of a reset.
 */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limitBytes) {
      reject(new HttpError(413, `request body is ${declared} bytes; the limit is ${limitBytes} bytes`, 'invalid_request_error', 'body_too_large'));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limitBytes) {
        failed = true;
        reject(new HttpError(413, `request body exceeds the limit of ${limitBytes} bytes`, 'invalid_request_error', 'body_too_large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed) reject(err);
    });
  });
}

export function parseJsonBody(buf: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body is not valid JSON: ${(err as Error).message}`, 'invalid_request_error', 'invalid_json');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'request body must be a JSON object', 'invalid_request_error', 'invalid_json');
  return parsed as Record<string, unknown>;
}
