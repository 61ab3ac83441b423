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
