/**
 * A real Kubernetes control plane on loopback for the cluster test tier: etcd ->
 * kube-apiserver -> kwok (fake nodes with nvidia.com/gpu, Ready pods, logs, port-forward),
 * built by scripts/cluster-env/build.sh from Go modules. Everything listens on 127.0.0.1 on
 * random free ports, lives in a temp dir, and is stopped by PID.
 *
 *   import { startControlPlane } from '../../scripts/cluster-env/control-plane.js';
 *   const cp = await startControlPlane();     // throws ControlPlaneNotBuilt if not built
 *   ... KUBECONFIG=cp.kubeconfig ...
 *   await cp.stop();
 *
 * Or by hand: `node --import tsx scripts/cluster-env/control-plane.ts` (prints KUBECONFIG,
 * runs until Ctrl+C).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync, mkdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as net from 'node:net';
import * as https from 'node:https';
import * as http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { $ } from 'zx';
import * as k8s from '@kubernetes/client-node';

export const K8S_VERSION = process.env.K8S_VERSION ?? '1.36.3';
export const BUILD_SCRIPT = 'scripts/cluster-env/build.sh';

export function binDir(): string {
  return process.env.DYNAMO_LAB_K8S_BIN ?? join(homedir(), '.cache', 'dynamo-lab', 'k8s', K8S_VERSION);
}

const BINARIES = ['etcd', 'kube-apiserver', 'kwok'] as const;

/** Missing binaries (empty when the control plane can start). */
export function missingBinaries(dir = binDir()): string[] {
  const missing: string[] = BINARIES.filter((b) => !existsSync(join(dir, b)));
  if (!existsSync(join(dir, 'kwok-stages.yaml'))) missing.push('kwok-stages.yaml');
  return missing;
}

export class ControlPlaneNotBuilt extends Error {
  constructor(
    readonly dir: string,
    readonly missing: string[],
  ) {
    super(`control-plane binaries not built (${missing.join(', ')} missing in ${dir}); run ${BUILD_SCRIPT} (15-30 min the first time)`);
    this.name = 'ControlPlaneNotBuilt';
  }
}

export interface FakeNode {
  name: string;
  gpus: number;
}

export interface ControlPlaneOptions {
  /** Fake GPU nodes (default: two nodes with 1 GPU each = the lab's need of 2). */
  nodes?: FakeNode[];
  /** Apply the project's minimal DGD CRD (default true). */
  crd?: boolean;
  /** Remote ports kwok forwards for every pod (default [8000, 5557]) -> local targets you choose. */
  forwards?: Array<{ port: number; target: number }>;
  /** Print process logs on failure (default true). */
  verbose?: boolean;
}

export interface ControlPlane {
  dir: string;
  server: string;
  /** kubeconfig with contexts "admin" (current, system:masters) and "nobody" (no RBAC rights). */
  kubeconfig: string;
  /** Same cluster, current context "nobody". */
  kubeconfigNobody: string;
  /** kubeconfig pointing at a closed port (unreachable cluster). */
  kubeconfigUnreachable: string;
  adminToken: string;
  /** The file every pod's container logs are served from (kwok ClusterLogs); append to it. */
  logsFile: string;
  pids: Record<string, number>;
  startedInMs: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function request(server: string, token: string, method: string, path: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = https.request(
      `${server}${path}`,
      {
        method,
        rejectUnauthorized: false,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
      },
      (res) => {
        let out = '';
        res.on('data', (c: Buffer) => (out += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: out }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const mod = url.startsWith('https') ? https : http;
    const req = mod.get(url, { headers, rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number, proc?: ChildProcess, logFile?: string): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (proc && proc.exitCode !== null)
      throw new Error(`${what}: process exited with ${proc.exitCode}${logFile ? `\n${tail(logFile)}` : ''}`);
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms${logFile ? `\n${tail(logFile)}` : ''}`);
}

function tail(file: string, n = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

function startProc(
  name: string,
  bin: string,
  args: string[],
  dir: string,
  procs: Map<string, ChildProcess>,
): { proc: ChildProcess; log: string } {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const proc = spawn(bin, args, { stdio: ['ignore', fd, fd], detached: false });
  closeSync(fd);
  procs.set(name, proc);
  return { proc, log };
}

async function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || !proc.pid) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  try {
    process.kill(proc.pid, 'SIGTERM');
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      if (proc.pid) process.kill(proc.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, 5000);
  await exited;
  clearTimeout(t);
}

function repoRoot(): string {
  // scripts/cluster-env/ (tsx) or dist/scripts/cluster-env/ (compiled)
  const here = fileURLToPath(new URL('.', import.meta.url));
  return here.includes('/dist/scripts/') ? join(here, '..', '..', '..') : join(here, '..', '..');
}

function kubeconfigYaml(server: string, caFile: string, users: Array<{ name: string; token: string }>, current: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'dynamo-lab-test', cluster: { server, 'certificate-authority': caFile } }],
    users: users.map((u) => ({ name: u.name, user: { token: u.token } })),
    contexts: users.map((u) => ({ name: u.name, context: { cluster: 'dynamo-lab-test', user: u.name } })),
    'current-context': current,
  });
}

// Control planes whose host process goes away without calling stop(): a crash, process.exit(), a
// test runner that cancels the file with SIGTERM, Ctrl+C. While any is running, one 'exit' listener
// and one SIGINT/SIGTERM/SIGHUP listener (a signal with no listener ends the process without
// 'exit' handlers) abandon them all; after a signal the process then dies of it (the default
// action, once the listener is gone). When the host has its own listener for the signal, that one
// owns the shutdown (it calls stop() or exits, and 'exit' is covered).
const CLEANUP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const running = new Set<() => void>();
let watching = false;

function abandonAll(): void {
  for (const abandon of running) abandon();
  running.clear();
  watchHost();
}

function onCleanupSignal(sig: NodeJS.Signals): void {
  if (process.listenerCount(sig) > 1) return;
  abandonAll();
  process.kill(process.pid, sig);
}

/** Listen to the host process exactly while some control plane is running. */
function watchHost(): void {
  const want = running.size > 0;
  if (want === watching) return;
  watching = want;
  if (want) process.on('exit', abandonAll);
  else process.off('exit', abandonAll);
  for (const sig of CLEANUP_SIGNALS) {
    if (want) process.on(sig, onCleanupSignal);
    else process.off(sig, onCleanupSignal);
  }
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now();
  const bins = binDir();
  const missing = missingBinaries(bins);
  if (missing.length) throw new ControlPlaneNotBuilt(bins, missing);
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-cp-'));
  const procs = new Map<string, ChildProcess>();
  // Without stop(): kill the children synchronously, by PID, and remove the dir (see `running`).
  const abandon = () => {
    for (const p of procs.values()) {
      if (p.pid && p.exitCode === null && p.signalCode === null) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    removeDir();
  };
  const removeDir = () => {
    // DYNAMO_LAB_KEEP_CP_DIR=1 keeps the logs (etcd.log, kube-apiserver.log, kwok.log) for debugging.
    if (process.env.DYNAMO_LAB_KEEP_CP_DIR) process.stderr.write(`# control-plane files kept in ${dir}\n`);
    // Retries: a child killed a moment ago may still be closing a file in the dir.
    else rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  running.add(abandon);
  watchHost();
  const stop = async () => {
    running.delete(abandon);
    watchHost();
    for (const name of ['kwok', 'kube-apiserver', 'etcd']) {
      const p = procs.get(name);
      if (p) await stopProc(p);
    }
    removeDir();
  };
  try {
    const [pEtcd, pPeer, pApi, pKwok] = [await freePort(), await freePort(), await freePort(), await freePort()];
    // Certificates: one self-signed serving cert for 127.0.0.1/localhost (the API server and
    // kwok's kubelet-like server), and the service-account key pair.
    // zx: fixed command lines, no input interpolated; a failure throws with openssl's stderr.
    const openssl = $({ cwd: dir, quiet: true });
    await openssl`openssl genrsa -out sa.key 2048`;
    await openssl`openssl rsa -in sa.key -pubout -out sa.pub`;
    await openssl`openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kube-apiserver -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout apiserver.key -out apiserver.crt`;
    const adminToken = `admin-${Math.random().toString(36).slice(2)}`;
    const nobodyToken = `nobody-${Math.random().toString(36).slice(2)}`;
    writeFileSync(join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,"system:masters"\n${nobodyToken},nobody,nobody-uid\n`);

    // etcd
    const etcd = startProc(
      'etcd',
      join(bins, 'etcd'),
      [
        '--name=t',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${pEtcd}`,
        `--advertise-client-urls=http://127.0.0.1:${pEtcd}`,
        `--listen-peer-urls=http://127.0.0.1:${pPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${pPeer}`,
        `--initial-cluster=t=http://127.0.0.1:${pPeer}`,
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      dir,
      procs,
    );
    await until('etcd', async () => (await get(`http://127.0.0.1:${pEtcd}/health`)) === 200, 30_000, etcd.proc, etcd.log);

    // kube-apiserver (RBAC on, static tokens)
    const api = startProc(
      'kube-apiserver',
      join(bins, 'kube-apiserver'),
      [
        `--etcd-servers=http://127.0.0.1:${pEtcd}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${pApi}`,
        `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
        `--cert-dir=${join(dir, 'certs')}`,
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        '--anonymous-auth=false',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--allow-privileged=true',
        '--disable-admission-plugins=ServiceAccount',
        '--endpoint-reconciler-type=none',
        '--kubelet-preferred-address-types=InternalIP,Hostname',
      ],
      dir,
      procs,
    );
    const server = `https://127.0.0.1:${pApi}`;
    const auth = { Authorization: `Bearer ${adminToken}` };
    await until('kube-apiserver', async () => (await get(`${server}/readyz`, auth)) === 200, 120_000, api.proc, api.log);

    const ca = join(dir, 'apiserver.crt');
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      kubeconfigYaml(
        server,
        ca,
        [
          { name: 'admin', token: adminToken },
          { name: 'nobody', token: nobodyToken },
        ],
        'admin',
      ),
    );
    const kubeconfigNobody = join(dir, 'kubeconfig-nobody');
    writeFileSync(
      kubeconfigNobody,
      kubeconfigYaml(
        server,
        ca,
        [
          { name: 'admin', token: adminToken },
          { name: 'nobody', token: nobodyToken },
        ],
        'nobody',
      ),
    );
    const kubeconfigUnreachable = join(dir, 'kubeconfig-unreachable');
    writeFileSync(
      kubeconfigUnreachable,
      kubeconfigYaml(`https://127.0.0.1:${await freePort()}`, ca, [{ name: 'admin', token: adminToken }], 'admin'),
    );
    // kwok talks to the API server with the admin token, skipping CA checks.
    const kwokKubeconfig = join(dir, 'kubeconfig-kwok');
    writeFileSync(
      kwokKubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: adminToken } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'c',
      }),
    );

    // kwok: stages from the kwok module (assembled by build.sh), plus logs and port-forward for every pod.
    const logsFile = join(dir, 'pod.log');
    writeFileSync(logsFile, '');
    const forwards = (opts.forwards ?? []).map((f) => ({ ports: [f.port], target: { port: f.target, address: '127.0.0.1' } }));
    const extra = [
      {
        apiVersion: 'kwok.x-k8s.io/v1alpha1',
        kind: 'ClusterLogs',
        metadata: { name: 'all-pods' },
        spec: { logs: [{ logsFile, follow: true }] },
      },
      ...(forwards.length
        ? [{ apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'ClusterPortForward', metadata: { name: 'all-pods' }, spec: { forwards } }]
        : []),
    ];
    const kwokConfig = join(dir, 'kwok.yaml');
    writeFileSync(
      kwokConfig,
      `${readFileSync(join(bins, 'kwok-stages.yaml'), 'utf8')}\n---\n${extra.map((e) => stringify(e)).join('---\n')}`,
    );
    mkdirSync(join(dir, 'kwok-home'), { recursive: true });
    const kwok = startProc(
      'kwok',
      join(bins, 'kwok'),
      [
        `--kubeconfig=${kwokKubeconfig}`,
        `--config=${kwokConfig}`,
        '--manage-all-nodes=true',
        '--node-name=localhost',
        '--node-ip=127.0.0.1',
        `--node-port=${pKwok}`,
        `--server-address=127.0.0.1:${pKwok}`,
        `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
        '--cidr=10.244.0.0/16',
        '--node-lease-duration-seconds=40',
      ],
      dir,
      procs,
    );

    // Objects: the DGD CRD and the fake GPU nodes, through the API (same as a user would).
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    if (opts.crd !== false) {
      const crd = parse(
        readFileSync(join(repoRoot(), 'manifests', 'crd', 'dynamographdeployments.nvidia.com.yaml'), 'utf8'),
      ) as k8s.V1CustomResourceDefinition;
      // Sent as raw JSON: client-node's typed serializer drops `x-kubernetes-preserve-unknown-fields`
      // from plain objects (its model calls it xKubernetesPreserveUnknownFields).
      const res = await request(server, adminToken, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      if (res.status !== 201) throw new Error(`creating the DGD CRD: HTTP ${res.status} ${res.body}`);
      await until(
        'DGD CRD Established',
        async () => {
          const c = await ext.readCustomResourceDefinition({ name: crd.metadata!.name! });
          return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') ?? false;
        },
        30_000,
      );
    }
    const nodes = opts.nodes ?? [
      { name: 'gpu-node-1', gpus: 1 },
      { name: 'gpu-node-2', gpus: 1 },
    ];
    for (const n of nodes) {
      const res = { cpu: '32', memory: '256Gi', pods: '110', 'nvidia.com/gpu': String(n.gpus) };
      await core.createNode({
        body: {
          metadata: {
            name: n.name,
            labels: { type: 'kwok', 'kubernetes.io/hostname': n.name },
            annotations: { 'kwok.x-k8s.io/node': 'fake' },
          },
          status: { capacity: res, allocatable: res },
        },
      });
    }
    await until(
      'kwok nodes Ready',
      async () => {
        const list = await core.listNode();
        return (
          list.items.length === nodes.length &&
          list.items.every((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
        );
      },
      60_000,
      kwok.proc,
      kwok.log,
    );

    const pids: Record<string, number> = {};
    for (const [k, p] of procs) pids[k] = p.pid ?? 0;
    return {
      dir,
      server,
      kubeconfig,
      kubeconfigNobody,
      kubeconfigUnreachable,
      adminToken,
      logsFile,
      pids,
      startedInMs: Math.round(performance.now() - t0),
      stop,
    };
  } catch (err) {
    if (opts.verbose !== false) {
      for (const name of procs.keys()) process.stderr.write(`--- ${name}.log (tail) ---\n${tail(join(dir, `${name}.log`))}\n`);
    }
    await stop();
    throw err;
  }
}

// `node --import tsx scripts/cluster-env/control-plane.ts`: start, print, wait for Ctrl+C.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const cp = await startControlPlane();
  process.stdout.write(
    `control plane up in ${cp.startedInMs} ms\nexport KUBECONFIG=${cp.kubeconfig}\n# nobody (no rights): ${cp.kubeconfigNobody}\n# pod logs file: ${cp.logsFile}\n# pids: ${JSON.stringify(cp.pids)}\n`,
  );
  const done = async () => {
    await cp.stop();
    process.exit(0);
  };
  process.on('SIGINT', done);
  process.on('SIGTERM', done);
  if (process.env.CONTROL_PLANE_EXIT_AFTER_START) await done();
}
