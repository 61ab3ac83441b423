/**
 * Helpers for the cluster test tier: start the real control plane (or skip/fail when it is not
 * built), run the CLI as a child process, a recording `helm` stub, and "operator" helpers that
 * create the pods and status a Dynamo operator would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import {
  BUILD_SCRIPT,
  binDir,
  missingBinaries,
  startControlPlane,
  type ControlPlane,
  type ControlPlaneOptions,
} from '../../scripts/cluster-env/control-plane.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const compiled = here.includes('/dist/test/');
export const ROOT = compiled ? join(here, '..', '..', '..') : join(here, '..', '..');

/**
 * `undefined` when the control plane can run; otherwise the reason to skip. With
 * DYNAMO_LAB_REQUIRE_CLUSTER=1 (CI) a missing build is an error, not a skip.
 */
export function skipReason(): string | undefined {
  const missing = missingBinaries();
  if (!missing.length) return undefined;
  const msg = `cluster tier skipped: control-plane binaries not built (${missing.join(', ')} missing in ${binDir()}); run ${BUILD_SCRIPT}`;
  if (process.env.DYNAMO_LAB_REQUIRE_CLUSTER === '1')
    throw new Error(`DYNAMO_LAB_REQUIRE_CLUSTER=1 but ${msg.replace('cluster tier skipped: ', '')}`);
  process.stderr.write(`# ${msg}\n`);
  return msg;
}

export async function start(
  opts?: ControlPlaneOptions,
): Promise<{ cp: ControlPlane; kc: k8s.KubeConfig; core: k8s.CoreV1Api; custom: k8s.CustomObjectsApi; ext: k8s.ApiextensionsV1Api }> {
  const cp = await startControlPlane(opts);
  process.stderr.write(`# control plane started in ${cp.startedInMs} ms (${cp.server})\n`);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  return {
    cp,
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    ext: kc.makeApiClient(k8s.ApiextensionsV1Api),
  };
}

// ---- the CLI as a child process ------------------------------------------------------------

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function cliArgv(args: string[]): string[] {
  return compiled
    ? [join(ROOT, 'dist', 'src', 'cli', 'main.js'), ...args]
    : ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args];
}

export interface RunningCli {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  done: Promise<CliResult>;
  /** Resolves when stdout+stderr match. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
}

export function spawnCli(args: string[], env: Record<string, string | undefined> = {}): RunningCli {
  const t0 = performance.now();
  const child = spawn(process.execPath, cliArgv(args), {
    cwd: ROOT,
    env: { ...process.env, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (b: Buffer) => (out.stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out.stderr += b.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code, ...out, ms: performance.now() - t0 })));
  return {
    child,
    out,
    done,
    async waitFor(re, timeoutMs = 30_000) {
      const end = performance.now() + timeoutMs;
      while (!re.test(out.stdout + out.stderr)) {
        if (child.exitCode !== null) throw new Error(`CLI exited (${child.exitCode}) before ${re}:\n${out.stdout}\n${out.stderr}`);
        if (performance.now() > end) throw new Error(`timed out waiting for ${re}:\n${out.stdout}\n${out.stderr}`);
        await sleep(100);
      }
    },
  };
}

export async function runCli(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 120_000): Promise<CliResult> {
  const r = spawnCli(args, env);
  const timer = setTimeout(() => r.child.kill('SIGKILL'), timeoutMs);
  const res = await r.done;
  clearTimeout(timer);
  return res;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- recording helm stub -------------------------------------------------------------------

const STUB = `#!/usr/bin/env node
// Recording helm stub for tests: logs argv as one JSON line, answers like helm 3.
const fs = require('node:fs');
const argv = process.argv.slice(2);
const scenario = process.env.HELM_STUB_SCENARIO || 'ok';
fs.appendFileSync(process.env.HELM_STUB_LOG, JSON.stringify({ argv, kubeconfig: process.env.KUBECONFIG || null }) + '\\n');
const cmd = argv[0];
if (cmd === 'version') { process.stdout.write((process.env.HELM_STUB_VERSION || 'v3.17.2+gstub') + '\\n'); process.exit(0); }
if (cmd === 'repo') { process.stdout.write(argv[1] === 'add' ? '"' + argv[2] + '" has been added to your repositories\\n' : 'Update Complete. Happy Helming!\\n'); process.exit(0); }
if (cmd === 'upgrade') {
  if (scenario === 'fail-upgrade') { process.stderr.write('Error: UPGRADE FAILED: context deadline exceeded: timed out waiting for the condition\\n'); process.exit(1); }
  process.stdout.write('Release "' + argv[2] + '" has been upgraded. Happy Helming!\\nSTATUS: deployed\\n'); process.exit(0);
}
if (cmd === 'uninstall') {
  if (scenario === 'not-installed') { process.stderr.write('Error: uninstall: Release not loaded: ' + argv[1] + ': release: not found\\n'); process.exit(1); }
  process.stdout.write('release "' + argv[1] + '" uninstalled\\n'); process.exit(0);
}
if (cmd === 'status') { process.stderr.write('Error: release: not found\\n'); process.exit(1); }
process.stderr.write('helm stub: unsupported ' + argv.join(' ') + '\\n'); process.exit(64);
`;

export interface HelmStub {
  bin: string;
  /** The directory holding `helm`, to put on PATH. */
  dir: string;
  log: string;
  calls(): Array<{ argv: string[]; kubeconfig: string | null }>;
  reset(): void;
  remove(): void;
}

export function helmStub(): HelmStub {
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-helm-'));
  const bin = join(dir, 'helm');
  // CommonJS stub next to no package.json: force CJS by extension-less file + explicit require.
  writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}');
  writeFileSync(bin, STUB);
  chmodSync(bin, 0o755);
  const log = join(dir, 'calls.jsonl');
  writeFileSync(log, '');
  return {
    bin,
    dir,
    log,
    calls: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { argv: string[]; kubeconfig: string | null })
        : [],
    reset: () => writeFileSync(log, ''),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// ---- acting as the operator / charts ---------------------------------------------------------

export async function ensureNs(core: k8s.CoreV1Api, name: string): Promise<void> {
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (e) {
    if ((e as { code?: number }).code !== 409) throw e;
  }
}

export interface PodSpec {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  gpus?: number;
  nodeName?: string;
  containerName?: string;
}

export async function createPod(core: k8s.CoreV1Api, p: PodSpec): Promise<k8s.V1Pod> {
  return core.createNamespacedPod({
    namespace: p.namespace,
    body: {
      metadata: { name: p.name, labels: p.labels },
      spec: {
        nodeName: p.nodeName,
        containers: [
          {
            name: p.containerName ?? 'main',
            image: 'example.invalid/fake:1',
            ...(p.gpus ? { resources: { limits: { 'nvidia.com/gpu': String(p.gpus) } } } : {}),
          },
        ],
      },
    },
  });
}

export async function waitPodReady(core: k8s.CoreV1Api, namespace: string, name: string, timeoutMs = 30_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const p = await core.readNamespacedPod({ namespace, name });
    if (p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) return;
    await sleep(200);
  }
  throw new Error(`pod ${namespace}/${name} not Ready`);
}

export const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
export const jsonPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch);

export async function setDgdReady(
  custom: k8s.CustomObjectsApi,
  namespace: string,
  name: string,
  version: string,
  status: 'True' | 'False',
  reason: string,
): Promise<void> {
  await custom.patchNamespacedCustomObjectStatus(
    {
      group: 'nvidia.com',
      version,
      namespace,
      plural: 'dynamographdeployments',
      name,
      body: {
        status: {
          state: status === 'True' ? 'successful' : 'pending',
          conditions: [{ type: 'Ready', status, reason, message: reason, lastTransitionTime: new Date().toISOString() }],
        },
      },
    },
    mergePatch,
  );
}

export async function waitForObject<T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < end) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      await sleep(200);
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}

export function envFor(
  cp: ControlPlane,
  stub?: Pick<HelmStub, 'bin'> & { log?: string },
  extra: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return { KUBECONFIG: cp.kubeconfig, HELM_BIN: stub?.bin ?? '/nonexistent/helm', HELM_STUB_LOG: stub?.log, HF_TOKEN: undefined, ...extra };
}
