/**
 * Loopback networking helpers: listening with a typed "port in use" error, picking a free
 * port, and checking whether a port is taken.
 */
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';

/** The address a server wanted is taken (EADDRINUSE). */
export class PortInUseError extends Error {
  readonly code = 'EADDRINUSE';
  constructor(
    readonly host: string,
    readonly port: number | string,
    detail?: string,
  ) {
    super(`port ${port} on ${host} is already in use${detail ? ` (${detail})` : ''}`);
    this.name = 'PortInUseError';
  }
}

/** True when `err` is an EADDRINUSE from Node or ZeroMQ. */
export function isAddrInUse(err: unknown): boolean {
  return err instanceof PortInUseError || (err as NodeJS.ErrnoException | null)?.code === 'EADDRINUSE';
}

/**
 * Pending connections the kernel holds until the server accepts them (capped by
 * net.core.somaxconn). Node's default, 511, overflows when a busy server is opened 2,000
 * connections at once: the kernel drops the handshakes it has no room for, and clients see
 * connect timeouts and resets before they could send a byte.
 */
export const LISTEN_BACKLOG = 4096;

/** `server.listen(port, host)` as a promise; EADDRINUSE becomes a PortInUseError. */
export function listenOn(server: Server, port: number, host: string, backlog = LISTEN_BACKLOG): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new PortInUseError(host, port) : err);
    server.once('error', onError);
    server.listen({ port, host, backlog }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** True when nothing accepts connections on 127.0.0.1:port. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(true));
  });
}

/** A port from the environment variable `name` (1..65535), else 0 (meaning: pick one). */
export function envPort(name: string): number {
  const v = Number(process.env[name] ?? 0);
  return Number.isInteger(v) && v > 0 && v < 65536 ? v : 0;
}
