/**
 * Session affinity: a request carrying X-Dynamo-Session-ID (or x-dynamo-lab-session) goes to
 * the worker its session used last, while that worker is eligible and the entry is fresh.
 */
import type { IncomingMessage } from 'node:http';

export class SessionAffinity {
  private readonly sessions = new Map<string, { worker: string; expiresAt: number }>();
  /** Replica sync: told of every binding this router makes. */
  onRemember?: (session: string, worker: string) => void;

  /** @param ttlMs entry lifetime after its last use; 0 turns affinity off. */
  /** @param maxEntries most entries kept; the least recently used go first (default 100000). */
  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 100_000,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** The request's session id, when affinity is on and the header is sane. */
  sessionOf(req: IncomingMessage): string | undefined {
    if (this.ttlMs <= 0) return undefined;
    const raw = req.headers['x-dynamo-session-id'] ?? req.headers['x-dynamo-lab-session'];
    const v = Array.isArray(raw) ? raw[0] : raw;
    return v && v.length <= 256 ? v : undefined;
  }

  /** The session's worker if it is still fresh and among the eligible ones. */
  pinned(session: string | undefined, eligible: readonly string[], now: number): string | undefined {
    if (!session) return undefined;
    const s = this.sessions.get(session);
    if (!s) return undefined;
    if (s.expiresAt <= now) {
      this.sessions.delete(session);
      return undefined;
    }
    return eligible.includes(s.worker) ? s.worker : undefined;
  }

  remember(session: string, worker: string, now: number): void {
    const prev = this.sessions.get(session);
    this.set(session, worker, now + this.ttlMs, now);
    // Peers learn new or changed bindings, and refreshes once half the TTL has gone by.
    if (this.onRemember && (!prev || prev.worker !== worker || prev.expiresAt - now < this.ttlMs / 2)) this.onRemember(session, worker);
  }

  /** A binding another router replica made (replica sync). */
  rememberRemote(session: string, worker: string, now: number, ttlMs: number): void {
    if (this.ttlMs <= 0) return;
    this.set(session, worker, now + Math.min(ttlMs, this.ttlMs), now);
  }

  /** Live bindings as [session, worker, ttl left in ms] (replica snapshots). */
  entries(now: number): Array<[string, string, number]> {
    const out: Array<[string, string, number]> = [];
    for (const [k, v] of this.sessions) if (v.expiresAt > now) out.push([k, v.worker, v.expiresAt - now]);
    return out;
  }

  private set(session: string, worker: string, expiresAt: number, now: number): void {
    this.sessions.delete(session); // re-insert: the Map stays ordered by last use
    this.sessions.set(session, { worker, expiresAt });
    if (this.sessions.size > this.maxEntries) {
      const keep = Math.floor(this.maxEntries * 0.9);
      for (const [k, v] of this.sessions) {
        if (this.sessions.size <= keep && v.expiresAt > now) break;
        this.sessions.delete(k);
      }
    }
  }

  /** Drop the sessions pinned to a removed worker. */
  forgetWorker(id: string): void {
    for (const [sid, s] of this.sessions) if (s.worker === id) this.sessions.delete(sid);
  }
}
