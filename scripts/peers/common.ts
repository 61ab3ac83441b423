/**
 * Shared helpers of the peer benchmarks (scripts/peers/): paths, logging, machine load,
 * starting and stopping long-running processes (argv arrays, own process group), waiting on
 * HTTP conditions. Everything binds and talks on 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { loadavg, homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';

$.verbose = false;
$.quiet = true;

export const LOOPBACK = '127.0.0.1';

/** ~/.cache/dynamo-lab (or $XDG_CACHE_HOME/dynamo-lab). */
export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME && process.env.XDG_CACHE_HOME !== '' ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'dynamo-lab');
}

export const fromTs = import.meta.url.endsWith('.ts');
/** The project root (works from scripts/peers/*.ts and from dist/scripts/peers/*.js). */
export function repoRoot(): string {
  return fileURLToPath(new URL(fromTs ? '../..' : '../../..', import.meta.url));
}
/** argv prefix that runs the dynamo-lab CLI of this checkout. */
export function cliArgv(): string[] {
  const cli = fileURLToPath(new URL(fromTs ? '../../src/cli/main.ts' : '../../src/cli/main.js', import.meta.url));
  return fromTs ? [process.execPath, '--import', 'tsx', cli] : [process.execPath, cli];
}

/** `dynamo-lab sim` on loopback, any free port, with the given worker shape (JSON worker list, no chatter). */
export function simArgv(shape: { workers: number; gpuBlocks: number; blockSize: number; speedup: number }): string[] {
  return [
    ...cliArgv(),
    'sim',
    '--workers',
    String(shape.workers),
    '--port',
    '0',
    '--host',
    LOOPBACK,
    '--gpu-blocks',
    String(shape.gpuBlocks),
    '--block-size',
    String(shape.blockSize),
    '--speedup',
    String(shape.speedup),
    '--json',
    '--quiet',
  ];
}

export const say = (s: string): void => {
  process.stderr.write(s + '\n');
};

export interface Load {
  at: string;
  loadavg1: number;
  loadavg5: number;
  loadavg15: number;
  uptime: string;
}
/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on Linux's x86 and arm builds). */
const CLK_TCK = 100;

/**
 * CPU seconds (user + system) used so far by every live process in each of these process groups
 * (a daemon is started in its own group, so its group is it and every child it started). Read
 * from /proc; {} where there is no /proc.
 */
export function groupCpuSeconds(groups: ReadonlyMap<string, number>): Record<string, number> {
  const byGroup = new Map<number, number>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return {};
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // Fields after the command name (which may hold spaces): state ppid pgrp ... utime(14) stime(15).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(f[2]);
    byGroup.set(pgrp, (byGroup.get(pgrp) ?? 0) + (Number(f[11]) + Number(f[12])) / CLK_TCK);
  }
  const out: Record<string, number> = {};
  for (const [name, pg] of groups) out[name] = byGroup.get(pg) ?? 0;
  return out;
}

/** The machine load now (`uptime`'s line and /proc/loadavg's numbers). */
export async function machineLoad(): Promise<Load> {
  const [l1, l5, l15] = loadavg();
  let line = '';
  try {
    line = (await $`uptime`).stdout.trim();
  } catch {
    line = `load average: ${l1!.toFixed(2)}, ${l5!.toFixed(2)}, ${l15!.toFixed(2)}`;
  }
  return { at: new Date().toISOString(), loadavg1: round(l1!, 2), loadavg5: round(l5!, 2), loadavg15: round(l15!, 2), uptime: line };
}

export function round(x: number, d = 3): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A long-running child in its own process group; its output goes to a log file (and is kept in memory). */
export interface Daemon {
  name: string;
  proc: ChildProcess;
  logPath: string;
  /** stdout + stderr so far (bounded to the last 8 MB). */
  output(): string;
  exited: Promise<number | null>;
}

/** Every daemon still running: ended when this process exits or is interrupted (they run in their own process groups). */
const live = new Set<Daemon>();
let hooked = false;
let interruptedBy: NodeJS.Signals | undefined;
/** The signal that interrupted the run, if one did (exit with 130 then). */
export const interrupted = (): NodeJS.Signals | undefined => interruptedBy;
function killAllNow(signal: NodeJS.Signals): void {
  for (const d of live) {
    try {
      if (d.proc.pid !== undefined) process.kill(-d.proc.pid, signal);
    } catch {
      /* gone */
    }
  }
}
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => killAllNow('SIGKILL'));
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      interruptedBy = sig;
      say(`\n${sig}: stopping everything this benchmark started…`);
      killAllNow('SIGTERM');
      setTimeout(() => process.exit(130), 3000);
    });
  }
}

export function startDaemon(
  name: string,
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; logDir: string },
): Daemon {
  mkdirSync(opts.logDir, { recursive: true });
  const logPath = join(opts.logDir, `${name}.log`);
  const log: WriteStream = createWriteStream(logPath);
  const proc = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: stop() ends it and every child it started, by its id
  });
  let buf = '';
  const onData = (d: Buffer) => {
    log.write(d);
    buf += d.toString('utf8');
    if (buf.length > 8_000_000) buf = buf.slice(-6_000_000);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  hookExit();
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => {
      live.delete(daemon);
      log.end();
      resolve(code);
    });
    proc.once('error', (e) => {
      buf += `\n[spawn error] ${e.message}\n`;
      resolve(-1);
    });
  });
  const daemon: Daemon = { name, proc, logPath, output: () => buf, exited };
  live.add(daemon);
  return daemon;
}

/** SIGTERM the daemon's process group, SIGKILL after `graceMs`. */
export async function stopDaemon(d: Daemon, graceMs = 8000): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null || d.proc.pid === undefined) return;
  const pgid = d.proc.pid;
  try {
    process.kill(-pgid, 'SIGTERM');
  } catch {
    return;
  }
  const done = await Promise.race([d.exited.then(() => true), sleep(graceMs).then(() => false)]);
  // The group may outlive its leader (python workers): end what is left of it too.
  try {
    process.kill(-pgid, done ? 0 : 'SIGKILL');
    if (done) {
      await sleep(300);
      process.kill(-pgid, 'SIGKILL');
    }
  } catch {
    /* group gone */
  }
}

/** Wait until `check` returns a value (not undefined), polling; fail with `what` and the daemons' log tails. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  opts: { timeoutMs: number; daemons?: Daemon[]; intervalMs?: number },
): Promise<T> {
  const end = performance.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    for (const d of opts.daemons ?? []) {
      if (d.proc.exitCode !== null)
        throw new Error(`${d.name} exited (${d.proc.exitCode}) while waiting for ${what}; log ${d.logPath}:\n${tail(d.output(), 30)}`);
    }
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (performance.now() > end) {
      const logs = (opts.daemons ?? []).map((d) => `--- ${d.name} (${d.logPath})\n${tail(d.output(), 20)}`).join('\n');
      throw new Error(
        `timed out after ${opts.timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}\n${logs}`,
      );
    }
    await sleep(opts.intervalMs ?? 250);
  }
}

export function tail(s: string, lines: number): string {
  return s.split('\n').slice(-lines).join('\n');
}

export async function getJson(url: string, timeoutMs = 3000): Promise<unknown> {
  const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!r.ok) throw new Error(`GET ${url}: ${r.status}`);
  return r.json();
}
export async function getText(url: string, timeoutMs = 3000): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!r.ok) throw new Error(`GET ${url}: ${r.status}`);
  return r.text();
}

/** A free TCP port on 127.0.0.1 (bound and released). */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, LOOPBACK, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}
/** `n` consecutive free ports (first..first+n-1), found by probing. */
export async function freePortRange(n: number): Promise<number> {
  const net = await import('node:net');
  const probe = (p: number) =>
    new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(p, LOOPBACK, () => s.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20000 + Math.floor(Math.random() * 30000);
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = await probe(first + i);
    if (ok) return first;
  }
  throw new Error(`no ${n} consecutive free ports found on ${LOOPBACK}`);
}

/** Parse Prometheus text into name{labels} -> value (samples only). */
export function parseProm(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) for (const lm of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return out;
}
export function promSum(samples: ReturnType<typeof parseProm>, name: string, filter: Record<string, string> = {}): number {
  let s = 0;
  for (const x of samples) if (x.name === name && Object.entries(filter).every(([k, v]) => x.labels[k] === v)) s += x.value;
  return s;
}

/** Minimal flag parsing: --name value, --flag (boolean), repeated values joined by ','. */
export function parseFlags(
  argv: readonly string[],
  spec: Record<string, 'string' | 'boolean'>,
): Record<string, string | boolean | undefined> {
  const out: Record<string, string | boolean | undefined> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}' (flags start with --; see --help)`);
    const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    const kind = spec[name];
    if (!kind)
      throw new Error(
        `unknown flag --${name} (known: ${Object.keys(spec)
          .map((k) => '--' + k)
          .join(' ')})`,
      );
    if (kind === 'boolean') out[name] = inline === undefined ? true : inline !== 'false';
    else {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`--${name} needs a value`);
      out[name] = v;
    }
  }
  return out;
}
