/**
 * The test control plane does not outlive its host process. A test runner that cancels a file
 * sends SIGTERM, a person presses Ctrl+C: Node's default action for those signals skips 'exit'
 * handlers, so without its own listener the plane would leave etcd, kube-apiserver and kwok
 * running and its files in /tmp.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { skipReason } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const compiled = here.includes('/dist/test/');
const planeModule = fileURLToPath(new URL(`../../scripts/cluster-env/control-plane.${compiled ? 'js' : 'ts'}`, import.meta.url));
const loader = compiled ? [] : ['--import', 'tsx'];

/** Alive = exists and is not a zombie (an orphan's zombie may wait for a reaper that never comes). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

interface Host {
  planeDir: string;
  pids: number[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  kill(sig: NodeJS.Signals): void;
}

/** A Node process holding a running control plane; `code` prints `{dir, pids}` once it is up. */
async function startHost(args: string[], parse: (out: string) => { dir: string; pids: number[] } | undefined): Promise<Host> {
  const child = spawn(process.execPath, [...loader, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (err += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr: err })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  const up = await waitFor(
    () => {
      if (gone) throw new Error(`host exited before the control plane was up:\n${err}`);
      return parse(out);
    },
    'the control plane in the host process',
    240_000,
    100,
  );
  return { planeDir: up.dir, pids: up.pids, exited, kill: (sig) => child.kill(sig) };
}

/** After a failed assertion: what the code under test should have removed is not left behind. */
function cleanUp(host: Host): void {
  for (const pid of host.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  rmSync(host.planeDir, { recursive: true, force: true });
}

describe('test control plane: host signals', { skip: skipReason() }, () => {
  it('SIGTERM to a host with no signal listener of its own: children killed, files removed, host dies of SIGTERM', async () => {
    const code = `
      const { startControlPlane } = await import(${JSON.stringify(`file://${planeModule}`)});
      const cp = await startControlPlane({ verbose: false });
      process.stdout.write(JSON.stringify({ dir: cp.dir, pids: Object.values(cp.pids) }) + '\\n');
      setInterval(() => {}, 60_000);`;
    const host = await startHost(['--input-type=module', '-e', code], (out) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      return line ? JSON.parse(line) : undefined;
    });
    assert.equal(host.pids.length, 3);
    assert.ok(host.pids.every(alive), 'etcd, kube-apiserver and kwok run');
    assert.ok(existsSync(host.planeDir));

    try {
      host.kill('SIGTERM');
      const end = await host.exited;
      assert.equal(end.signal, 'SIGTERM', `the host keeps the signal as its cause of death (stderr: ${end.stderr})`);
      await waitFor(() => !host.pids.some(alive), `control-plane processes ${host.pids.join(', ')} to be gone`, 30_000, 50);
      assert.equal(existsSync(host.planeDir), false, `${host.planeDir} removed`);
    } finally {
      cleanUp(host);
    }
  });

  it('SIGINT to a host that listens itself (the by-hand entry point): its own shutdown runs, exit 0, nothing left', async () => {
    const host = await startHost([planeModule], (out) => {
      const kubeconfig = /^export KUBECONFIG=(.+)\/kubeconfig$/m.exec(out)?.[1];
      const pids = /^# pids: (.+)$/m.exec(out)?.[1];
      return kubeconfig && pids ? { dir: kubeconfig, pids: Object.values(JSON.parse(pids) as Record<string, number>) } : undefined;
    });
    assert.ok(host.pids.every(alive));

    try {
      host.kill('SIGINT');
      const end = await host.exited;
      assert.deepEqual([end.code, end.signal], [0, null], `stop() ran to completion (stderr: ${end.stderr})`);
      assert.equal(host.pids.some(alive), false, 'stop() waits for its children');
      assert.equal(existsSync(host.planeDir), false);
    } finally {
      cleanUp(host);
    }
  });
});
