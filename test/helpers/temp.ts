/**
 * Temporary directories for tests that are removed when the test file's process exits (each test
 * file runs in a process of its own), whether its tests passed or failed: a full run made some 40
 * directories in /tmp and left them there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

function removeAll(): void {
  for (const dir of made.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a directory something else still holds: leave it
    }
  }
}

/** A new empty directory `<tmp>/<prefix>XXXXXX`, removed (with its contents) at process exit. */
export function tempDir(prefix: string): string {
  if (made.length === 0) process.once('exit', removeAll);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Run `fn` with TMPDIR set to `dir` (so child processes started meanwhile inherit it); restored after. */
export async function withTmpdir<T>(dir: string, fn: () => T | Promise<T>): Promise<T> {
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
}
