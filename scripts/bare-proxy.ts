/**
 * The least a Node.js proxy in front of one OpenAI-style worker does: read the request, parse its
 * JSON (any router must, to see the prompt), send the same bytes on with undici and pass the
 * answer back chunk by chunk. No tokenizing, no routing, no accounting. bench-proxy.ts runs it
 * beside `dynamo-lab router` so the router's throughput can be read against what the platform
 * (node:http + undici, on this machine) costs by itself.
 *
 * With --tcp it does not speak HTTP at all: each client connection gets its own connection to the
 * worker and the bytes are piped both ways. That is the cost of the extra hop alone (a process in
 * between, two more sockets), without parsing or writing HTTP.
 *
 *   node dist/scripts/bare-proxy.js <worker base URL> [--tcp]    prints {"url": ...} once listening
 */
import { createServer } from 'node:http';
import { connect, createServer as createTcpServer, type Server } from 'node:net';
import { Agent, request } from 'undici';

const target = process.argv[2];
if (!target) {
  process.stderr.write('usage: bare-proxy <worker base URL> [--tcp]\n');
  process.exit(2);
}
const TCP = process.argv[3] === '--tcp';
// The router's own settings: keep-alive connections to the worker, clients kept 65 s.
const agent = new Agent({ keepAliveTimeout: 30_000, connections: 1024, pipelining: 1 });
const server = createServer(async (req, res) => {
  try {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    JSON.parse(body.toString('utf8'));
    const up = await request(`${target}${req.url}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      dispatcher: agent,
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type'] ?? 'application/json') });
    res.flushHeaders();
    for await (const c of up.body) res.write(c);
    res.end();
  } catch (err) {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: (err as Error).message, type: 'server_error', code: 'bare_proxy' } }));
  }
});
server.keepAliveTimeout = 65_000;

const worker = new URL(target);
const relay = createTcpServer((client) => {
  const up = connect(Number(worker.port), worker.hostname);
  client.pipe(up);
  up.pipe(client);
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
  client.on('close', () => up.destroy());
  up.on('close', () => client.destroy());
});

const listening: Server = TCP ? relay : server;
listening.listen(0, '127.0.0.1', () => {
  const addr = listening.address();
  if (addr && typeof addr === 'object') process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${addr.port}` })}\n`);
});
process.on('SIGTERM', () => {
  listening.close();
  void agent.close();
  process.exit(0);
});
