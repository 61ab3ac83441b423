/** A CommandContext for calling a command's run() in-process, capturing what it writes. */
import { PassThrough } from 'node:stream';
import type { CommandContext } from '../../src/cli/command.js';

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
