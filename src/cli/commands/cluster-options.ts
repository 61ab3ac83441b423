/**
 * Option parsing and output helpers shared by the cluster commands (check, install, deploy,
 * logs, cleanup, doctor).
 */
import chalk from 'chalk';
import type { CommandContext, ParsedValues } from '../command.js';
import { UsageError } from '../../base/errors.js';
import { ClusterInputError } from '../../cluster/errors.js';

/** Cluster input errors name the option (`pattern`, `grep`, `router`); the CLI names the flag. */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ClusterInputError) throw new UsageError(`--${err.option}: ${err.message}.`, err.hint);
    throw err;
  }
}

export function str(v: ParsedValues[string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function intOpt(v: ParsedValues[string], flag: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${flag} must be an integer between ${min} and ${max}, got "${String(v)}".`);
  return n;
}

export function numOpt(v: ParsedValues[string], flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${flag} must be a non-negative number, got "${String(v)}".`);
  return n;
}

/** "90" (seconds), "90s", "15m", "1h", "500ms" -> milliseconds. */
export function parseDuration(v: string | undefined, flag: string, defMs: number): number {
  if (v === undefined) return defMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new UsageError(`--${flag} must be a duration like 90s, 15m or 1h, got "${v}".`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000));
}

export function json(ctx: CommandContext, doc: unknown): void {
  ctx.stdout.write(JSON.stringify(doc, null, 2) + '\n');
}

export function say(ctx: CommandContext, line: string): void {
  ctx.stderr.write(line + '\n');
}

export const ok = (s: string) => chalk.green(s);
export const warn = (s: string) => chalk.yellow(s);

/** The namespace of the lab objects: --namespace, else "dynamo". */
export function loadKubeContextNamespace(kopts: { namespace?: string }): string {
  return kopts.namespace || 'dynamo';
}
