/**
 * The real `helm` binary through execa (argv arrays only; HELM_BIN overrides the path). Charts
 * and settings come from the lab notebooks; values live in manifests/helm/.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { packagePath } from '../base/paths.js';
import { shellQuote } from '../base/shell.js';
import { ClusterError } from './errors.js';
import { TOOLING, helmMinimum, helmVersionOk } from './releases.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface ChartSpec {
  readonly id: 'nats' | 'etcd';
  readonly release: string;
  readonly namespace: string;
  readonly repoName: string;
  readonly repoUrl: string;
  readonly chart: string;
  /** Pinned chart version (releases.ts TOOLING.charts): the one the values were checked against. */
  readonly version: string;
  /** Packaged chart file name, looked up in DYNAMO_LAB_CHARTS_DIR for offline installs. */
  readonly file: string;
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
    repoName: TOOLING.charts.nats.repoName,
    repoUrl: TOOLING.charts.nats.repoUrl,
    chart: 'nats/nats',
    version: TOOLING.charts.nats.version,
    file: TOOLING.charts.nats.file,
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
    repoName: TOOLING.charts.etcd.repoName,
    repoUrl: TOOLING.charts.etcd.repoUrl,
    chart: 'bitnami/etcd',
    version: TOOLING.charts.etcd.version,
    file: TOOLING.charts.etcd.file,
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

/**
 * A packaged chart to install from instead of the repository (air-gapped clusters, tests):
 * DYNAMO_LAB_CHARTS_DIR/<name>-<version>.tgz, when that directory is set and holds it.
 */
function localChart(c: ChartSpec): string | undefined {
  const dir = process.env.DYNAMO_LAB_CHARTS_DIR;
  if (!dir) return undefined;
  const f = join(dir, c.file);
  return existsSync(f) ? f : undefined;
}

export interface InstallOptions {
  /** helm's own --wait (the CLI verifies pods itself afterwards as well). Default true. */
  readonly wait?: boolean;
}

/** The exact helm invocations `install <chart>` runs, in order. The chart version is pinned. */
export function installPlan(c: ChartSpec, g: HelmGlobals, o: InstallOptions = {}): string[][] {
  const local = localChart(c);
  const wait = o.wait === false ? [] : ['--wait', '--timeout', c.timeout];
  const upgrade = [
    'upgrade',
    '--install',
    c.release,
    local ?? c.chart,
    ...(local ? [] : ['--version', c.version]),
    '--namespace',
    c.namespace,
    '--create-namespace',
    '--values',
    valuesPath(c),
    ...wait,
    ...kubeArgs(g),
  ];
  if (local) return [upgrade];
  return [['repo', 'add', c.repoName, c.repoUrl, '--force-update'], ['repo', 'update', c.repoName], upgrade];
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
export async function runHelm(
  args: string[],
  opts: { signal?: AbortSignal; allowFailure?: boolean; onLine?: (line: string) => void } = {},
): Promise<HelmResult> {
  const bin = helmBin();
  let res: Awaited<ReturnType<typeof execa>>;
  try {
    const sub = execa(bin, args, { reject: false, cancelSignal: opts.signal, stdin: 'ignore' });
    // execa splits each stream into whole lines (a line cut across two chunks stays one line).
    const each = async (from: 'stdout' | 'stderr', onLine: (line: string) => void) => {
      for await (const line of sub.iterable({ from })) if (line) onLine(line);
    };
    [res] = await Promise.all([sub, ...(opts.onLine ? [each('stdout', opts.onLine), each('stderr', opts.onLine)] : [])]);
  } catch (err) {
    throw new ClusterError(
      `Could not run helm (${bin}): ${(err as Error).message}`,
      `Install Helm ${TOOLING.helm.min} or newer (https://helm.sh/docs/intro/install/) or set HELM_BIN to its path.`,
    );
  }
  if (res.isCanceled) throw opts.signal?.reason ?? new Error('aborted');
  const code = (res as { code?: string }).code;
  if (res.failed && (code === 'ENOENT' || /ENOENT/.test(String(res.message)))) {
    throw new ClusterError(
      `helm was not found (${bin === 'helm' ? 'not on PATH' : `HELM_BIN=${bin}`}).`,
      `Install Helm ${TOOLING.helm.min} or newer (https://helm.sh/docs/intro/install/) or set HELM_BIN to the helm binary.`,
    );
  }
  const out: HelmResult = {
    argv: [bin, ...args],
    exitCode: res.exitCode ?? 1,
    stdout: String(res.stdout ?? ''),
    stderr: String(res.stderr ?? ''),
  };
  if (out.exitCode !== 0 && !opts.allowFailure) {
    const tail = out.stderr.trim().split('\n').slice(-6).join('\n  ');
    throw new ClusterError(
      `helm failed (exit ${out.exitCode}): ${shellQuote(out.argv)}\n  ${tail || out.stdout.trim().split('\n').slice(-3).join('\n  ')}`,
      helmAdvice(out.stderr),
    );
  }
  return out;
}

function helmAdvice(stderr: string): string | undefined {
  if (/forbidden/i.test(stderr))
    return 'Your Kubernetes user lacks the rights this chart needs (see the "forbidden" line); ask a cluster admin, or use a namespace you own.';
  if (/timed out waiting|context deadline exceeded/i.test(stderr))
    return 'The release did not become ready in time: check its pods (`kubectl get pods -n <namespace>`) — often a PersistentVolumeClaim without a default StorageClass, or an image pull problem.';
  if (/no such host|dial tcp|connection refused|i\/o timeout/i.test(stderr))
    return 'Helm could not reach the chart repository or the cluster: check network access and your kubeconfig.';
  if (/another operation .* is in progress/i.test(stderr))
    return 'A previous helm operation did not finish: `helm history <release> -n <namespace>` and `helm rollback` it, then retry.';
  return undefined;
}

/** helm's version and whether it meets the release table's minimum (the release's row, else the strictest row). */
export async function helmVersionCheck(
  signal?: AbortSignal,
  release?: string,
): Promise<{ found: boolean; raw?: string; version?: string; ok: boolean; min: string; why: string }> {
  const raw = await helmVersion(signal);
  const base = { min: helmMinimum(release), why: TOOLING.helm.why };
  if (!raw) return { found: false, ok: false, ...base };
  return { found: true, raw, ...helmVersionOk(raw, base.min), ...base };
}

async function helmVersion(signal?: AbortSignal): Promise<string | undefined> {
  try {
    const r = await runHelm(['version', '--short'], { signal, allowFailure: true });
    return r.exitCode === 0 ? r.stdout.trim() : undefined;
  } catch {
    return undefined;
  }
}
