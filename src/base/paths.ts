/**
 * Where things live: the package root (for labs/, manifests/, package.json) and the XDG
 * state directory for progress files and logs.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** file: URL of the package root, ending in '/'. Works from src/ (tsx) and dist/src/ (built). */
export function packageRoot(): URL {
  const here = new URL('.', import.meta.url);
  // here = <root>/src/base/ or <root>/dist/src/base/
  const up = here.pathname.includes('/dist/src/') ? '../../../' : '../../';
  return new URL(up, here);
}

export function packagePath(...parts: string[]): string {
  return join(fileURLToPath(packageRoot()), ...parts);
}

/** $DYNAMO_LAB_STATE_DIR, else $XDG_STATE_HOME/dynamo-lab, else ~/.local/state/dynamo-lab. */
export function stateDir(): string {
  if (process.env.DYNAMO_LAB_STATE_DIR) return process.env.DYNAMO_LAB_STATE_DIR;
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'dynamo-lab');
}
