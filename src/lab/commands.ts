/**
 * Turning lab commands (argv arrays) into what a person sees: variables substituted,
 * secrets masked, shell-quoted for copy-paste. The argv itself is never re-split.
 */
import { quoteArg } from '../base/shell.js';
import type { CommandSpec } from './types.js';

const VAR_RE = /\$\{([A-Z_][A-Z0-9_]*)\}/g;

/** Substitute ${NAME} from vars (the caller merges env over lab defaults). Unknown names stay as written. */
export function substitute(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(VAR_RE, (m, name: string) => vars[name] ?? m);
}

export function resolveCommand(cmd: CommandSpec, vars: Readonly<Record<string, string>>): CommandSpec {
  return {
    ...cmd,
    argv: cmd.argv.map((a) => substitute(a, vars)),
    env: cmd.env ? Object.fromEntries(Object.entries(cmd.env).map(([k, v]) => [k, substitute(v, vars)])) : undefined,
  };
}

export const MASK = '****';

/** Values that must never be shown: secret env values and known token variables. */
export function secretValues(cmd: CommandSpec, env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const name of cmd.secretEnv ?? []) {
    const v = cmd.env?.[name] ?? env[name];
    if (v) out.push(v);
  }
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) if (env[name]) out.push(env[name]!);
  return out.filter((v) => v.length >= 4);
}

export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join(MASK);
  return out;
}

/** One copy-pasteable line: `NAME=value cmd args…`, secrets masked. */
export function displayCommand(cmd: CommandSpec, env: NodeJS.ProcessEnv = process.env): string {
  const secrets = secretValues(cmd, env);
  const envPart = Object.entries(cmd.env ?? {}).map(([k, v]) => `${k}=${(cmd.secretEnv ?? []).includes(k) ? MASK : quoteArg(v)}`);
  return maskSecrets([...envPart, ...cmd.argv.map(quoteArg)].join(' '), secrets);
}
