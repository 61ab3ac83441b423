/** A CommandContext for calling a command's run() in-process, capturing what it writes. */
import { PassThrough } from 'node:stream';
import type { Command, CommandContext, ParsedValues } from '../../src/cli/command.js';

export function ctxWith(signal: AbortSignal, json: boolean): { ctx: CommandContext; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const ctx = { globals: { json, verbose: false }, signal, stdout, stderr, interactive: false } as unknown as CommandContext;
  return { ctx, out: () => out, err: () => err };
}

/** What node:util parseArgs hands a command when no flag is given: its option table's defaults. */
export function optionDefaults(options: Command['options']): ParsedValues {
  const v: ParsedValues = {};
  for (const [name, spec] of Object.entries(options)) if (spec.default !== undefined) v[name] = spec.default as string | boolean;
  return v;
}
