/**
 * The real `helm` binary through execa (argv arrays only; HELM_BIN overrides the path). Charts
 * and settings come from the lab notebooks; values live in manifests/helm/.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { packagePath } from '../base/paths.js';
import { ClusterError } from './errors.js';

export interface ChartSpec {
  readonly id: 'nats' | 'etcd';
  readonly release: string;
  readonly namespace: string;
  readonly repoName: string;
  readonly repoUrl: string;
  readonly chart: string;
  readonly valuesFile: string;
  /** Service the chart creates, and its client port. */
  readonly service: string;
  readonly port: number;
  readonly url: string;
  readonly timeout: string;
}

export const CHARTS: Readonly<Record<'nats' | 'etcd', ChartSpec>> = {
  nats: {
    id: 'nats',
    release: 'nats',
    namespace: 'nats-system',
    repoName: 'nats',
    repoUrl: 'https://nats-io.github.io/k8s/helm/charts/',
    chart: 'nats/nats',
    valuesFile: 'helm/nats-values.yaml',
    service: 'nats',
    port: 4222,
    url: 'nats://nats.nats-system:4222',
    timeout: '5m',
  },
  etcd: {
    id: 'etcd',
    release: 'etcd',
    namespace: 'etcd-system',
    repoName: 'bitnami',
    repoUrl: 'https://charts.bitnami.com/bitnami',
    chart: 'bitnami/etcd',
    valuesFile: 'helm/etcd-values.yaml',
    service: 'etcd',
    port: 2379,
    url: 'http://etcd.etcd-system:2379',
    timeout: '5m',
  },
};

export function helmBin(): string {
  return process.env.HELM_BIN || 'helm';
}

/** POSIX shell quoting for display (never executed). */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (a !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export interface HelmGlobals {
  /** --context: passed as --kube-context. */
  readonly kubeContext?: string;
}

function kubeArgs(g: HelmGlobals): string[] {
  return g.kubeContext ? ['--kube-context', g.kubeContext] : [];
}

export function valuesPath(c: ChartSpec): string {
  return packagePath('manifests', c.valuesFile);
}

export function valuesText(c: ChartSpec): string {
  return readFileSync(valuesPath(c), 'utf8');
}

/** The exact helm invocations `install <chart>` runs, in order. */
export function installPlan(c: ChartSpec, g: HelmGlobals): string[][] {
  return [
    ['repo', 'add', c.repoName, c.repoUrl, '--force-update'],
    ['repo', 'update', c.repoName],
    ['upgrade', '--install', c.release, c.chart, '--namespace', c.namespace, '--create-namespace', '--values', valuesPath(c), '--wait', '--timeout', c.timeout, ...kubeArgs(g)],
  ];
}

export function uninstallArgs(c: ChartSpec, g: HelmGlobals): string[] {
  return ['uninstall', c.release, '--namespace', c.namespace, ...kubeArgs(g)];
}

export interface HelmResult {
  readonly argv: string[];
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run helm; a missing binary or a non-zero exit becomes a ClusterError unless allowFailure. */
export async function runHelm(args: string[], opts: { signal?: AbortSignal; allowFailure?: boolean; onLine?: (line: string) => void } = {}): Promise<HelmResult> {
  const bin = helmBin();
  let res;
  try {
    const sub = execa(bin, args, { reject: false, cancelSignal: opts.signal, stdin: 'ignore'});
    if (opts.onLine) {
      sub.stdout?.on('data', (b: Buffer) => String(b).split('\n').filter(Boolean).forEach((l) => opts.onLine!(l)));
      sub.stderr?.on('data', (b: Buffer) => String(b).split('\n').filter(Boolean).forEach((l) => opts.onLine!(l)));
    }
    res = await sub;
  } catch (err) {
    throw new ClusterError(`Could not run helm (${bin}): ${(err as Error).message}`, 'Install Helm 3 (https://helm.sh/docs/intro/install/) or set HELM_BIN to its path.');
  }
  if (res.isCanceled) throw opts.signal?.reason ?? new Error('aborted');
  const code = (res as { code?: string }).code;
  if (res.failed && (code === 'ENOENT' || /ENOENT/.test(String(res.message)))) {
    throw new ClusterError(`helm was not found (${bin === 'helm' ? 'not on PATH' : `HELM_BIN=${bin}`}).`, 'Install Helm 3 (https://helm.sh/docs/intro/install/) or set HELM_BIN to the helm binary.');
  }
  const out: HelmResult = { argv: [bin, ...args], exitCode: res.exitCode ?? 1, stdout: String(res.stdout ?? ''), stderr: String(res.stderr ?? '') };
  if (out.exitCode !== 0 && !opts.allowFailure) {
    const tail = out.stderr.trim().split('\n').slice(-6).join('\n  ');
    throw new ClusterError(`helm failed (exit ${out.exitCode}): ${shellQuote(out.argv)}\n  ${tail || out.stdout.trim().split('\n').slice(-3).join('\n  ')}`, helmAdvice(out.stderr));
  }
  return out;
}

function helmAdvice(stderr: string): string | undefined {
  if (/forbidden/i.test(stderr)) return 'Your Kubernetes user lacks the rights this chart needs (see the "forbidden" line); ask a cluster admin, or use a namespace you own.';
  if (/timed out waiting|context deadline exceeded/i.test(stderr)) return 'The release did not become ready in time: check its pods (`kubectl get pods -n <namespace>`) — often a PersistentVolumeClaim without a default StorageClass, or an image pull problem.';
  if (/no such host|dial tcp|connection refused|i\/o timeout/i.test(stderr)) return 'Helm could not reach the chart repository or the cluster: check network access and your kubeconfig.';
  if (/another operation .* is in progress/i.test(stderr)) return 'A previous helm operation did not finish: `helm history <release> -n <namespace>` and `helm rollback` it, then retry.';
  return undefined;
}

export async function helmVersion(signal?: AbortSignal): Promise<string | undefined> {
  try {
    const r = await runHelm(['version', '--short'], { signal, allowFailure: true });
    return r.exitCode === 0 ? r.stdout.trim() : undefined;
  } catch {
    return undefined;
  }
}

