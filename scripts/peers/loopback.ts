/**
 * The loopback guard: every TCP/UDP socket of the processes a run started (their whole process
 * groups) must have 127.0.0.1 / ::1 as its local address, and its peer (if any) too. Read with
 * `ss` (iproute2), matched to the processes through `users:(("name",pid=N,...))`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { $ } from 'zx';

export interface SocketRow {
  proto: string;
  state: string;
  local: string;
  peer: string;
  pid: number;
  process: string;
}

export interface LoopbackReport {
  ok: boolean;
  pids: number[];
  sockets: number;
  listening: number;
  offenders: SocketRow[];
}

/** Every pid whose process group is one of `pgids` (each daemon runs in its own group). */
export function groupPids(pgids: readonly number[]): number[] {
  const want = new Set(pgids);
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = readFileSync(`/proc/${ent}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ... ; comm may contain spaces/parens: split after the last ')'
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pgrp = Number(rest[2]);
      if (want.has(pgrp)) out.push(Number(ent));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function hostOf(addr: string): string {
  // 127.0.0.1:8000, [::1]:8000, [::ffff:127.0.0.1]:8000, *:8000, 0.0.0.0:*, 127.0.0.1%lo:53
  const m = /^(\[[^\]]*\]|[^:]*(?::[^:]*)*?)(?::(\*|\d+))$/.exec(addr);
  let host = m ? m[1]! : addr;
  if (host.startsWith('[')) host = host.slice(1, -1);
  return host.replace(/%.*$/, '');
}

export function isLoopback(addr: string, isPeer: boolean): boolean {
  const h = hostOf(addr);
  if (isPeer && (h === '*' || h === '0.0.0.0' || h === '::')) return true; // no peer (listening / unconnected UDP)
  return h === '127.0.0.1' || h === '::1' || h === '::ffff:127.0.0.1' || /^127\./.test(h);
}

export async function socketsOf(pids: readonly number[]): Promise<SocketRow[]> {
  const want = new Set(pids);
  const rows: SocketRow[] = [];
  for (const [proto, flag] of [
    ['tcp', '-t'],
    ['udp', '-u'],
  ] as const) {
    const out = (await $`ss -Hanp ${flag}`).stdout;
    for (const line of out.split('\n')) {
      if (line.trim() === '') continue;
      const cols = line.trim().split(/\s+/);
      // State Recv-Q Send-Q Local Peer Process
      const [state, , , local, peer] = cols as [string, string, string, string, string];
      for (const m of line.matchAll(/\("([^"]*)",pid=(\d+),fd=\d+\)/g)) {
        const pid = Number(m[2]);
        if (want.has(pid)) rows.push({ proto, state, local, peer, pid, process: m[1]! });
      }
    }
  }
  return rows;
}

/** Check every socket of the process groups `pgids`; ok=false lists each socket not on loopback. */
export async function checkLoopback(pgids: readonly number[]): Promise<LoopbackReport> {
  const pids = groupPids(pgids);
  const rows = await socketsOf(pids);
  const offenders = rows.filter((r) => !isLoopback(r.local, false) || !isLoopback(r.peer, true));
  return {
    ok: offenders.length === 0 && pids.length > 0,
    pids,
    sockets: rows.length,
    listening: rows.filter((r) => r.state === 'LISTEN').length,
    offenders,
  };
}

export function describeOffenders(r: LoopbackReport): string {
  return r.offenders
    .slice(0, 12)
    .map((o) => `  ${o.proto} ${o.state} ${o.local} -> ${o.peer} (${o.process} pid ${o.pid})`)
    .join('\n');
}
