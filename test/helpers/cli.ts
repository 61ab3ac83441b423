/**
 * Run the dynamo-lab CLI as a user would: a separate process, stdin closed. From compiled
 * tests (dist/test) this is the built binary dist/src/cli/main.js; from tsx, src/cli/main.ts.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createConnection } from 'node:net';
import { tempDir } from './temp.js';

const compiled = import.meta.url.includes('/dist/test/');
export const CLI_PATH = fileURLToPath(new URL(compiled ? '../../src/cli/main.js' : '../../src/cli/main.ts', import.meta.url));
export const CLI_ARGV: readonly string[] = compiled ? [CLI_PATH] : ['--import', 'tsx', CLI_PATH];

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A fresh DYNAMO_LAB_STATE_DIR, removed when the test process exits. */
export function tempStateDir(): string {
  return tempDir('dl-state-');
}

export function runCli(args: readonly string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI_ARGV, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CI: 'true', FORCE_COLOR: '0', ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dynamo-lab ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 60_000} ms\nstderr:\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(true));
  });
}
