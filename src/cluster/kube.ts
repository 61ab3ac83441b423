/**
 * Kubernetes context handling, like kubectl: KUBECONFIG (a path list, merged) or
 * ~/.kube/config or the in-cluster service account; --context picks a context; the namespace
 * defaults to "dynamo" (the labs' namespace) unless --namespace is given.
 */
import * as k8s from '@kubernetes/client-node';
import * as http from 'node:http';
import * as https from 'node:https';
import { kubeconfigFiles, kubeconfigSource } from './kubeconfig.js';
import { ClusterError, explainApiError, networkCode, LOCAL_HINT, type CallDesc } from './errors.js';

export const DEFAULT_NAMESPACE = 'dynamo';
export const FIELD_MANAGER = 'dynamo-lab';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

export interface KubeOptions {
  /** --context */
  readonly context?: string;
  /** --namespace (default "dynamo") */
  readonly namespace?: string;
  /** A kubeconfig path, instead of KUBECONFIG / ~/.kube/config (tests, tools). */
  readonly kubeconfig?: string;
}

export interface KubeContext {
  readonly kc: k8s.KubeConfig;
  readonly contextName: string;
  readonly namespace: string;
  readonly server: string;
  readonly user: string;
  /** Where the configuration came from, for messages. */
  readonly source: string;
}

/**
 * Load the kubeconfig like kubectl does, apply --context, and resolve the namespace.
 * Throws a ClusterError (exit 1) that says how to fix a missing or broken configuration.
 */
export function loadKubeContext(opts: KubeOptions = {}): KubeContext {
  const source = kubeconfigSource(opts);
  const kc = new k8s.KubeConfig();
  if (!source) {
    throw new ClusterError(
      'No Kubernetes configuration found (no KUBECONFIG, no ~/.kube/config, not running in a pod).',
      "Point KUBECONFIG at your cluster's kubeconfig, or run the lab without a cluster: `dynamo-lab start --target local`.",
    );
  }
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else if (process.env.KUBECONFIG) {
      if (kubeconfigFiles().length === 0) throw new Error(`none of the files in KUBECONFIG exist`);
      kc.loadFromDefault();
    } else kc.loadFromDefault();
  } catch (err) {
    throw new ClusterError(
      `Could not read the Kubernetes configuration (${source}): ${(err as Error).message}`,
      'Fix the kubeconfig (try `kubectl config view`), or run the lab without a cluster: `dynamo-lab start --target local`.',
    );
  }
  if (opts.context) {
    const names = kc.getContexts().map((c) => c.name);
    if (!names.includes(opts.context)) {
      throw new ClusterError(
        `Context "${opts.context}" is not in your kubeconfig (${source}).`,
        names.length ? `Use one of: ${names.join(', ')}.` : 'Your kubeconfig has no contexts.',
      );
    }
    kc.setCurrentContext(opts.context);
  }
  const contextName = kc.getCurrentContext();
  const cluster = kc.getCurrentCluster();
  if (!contextName || !cluster) {
    throw new ClusterError(
      `The kubeconfig (${source}) has no current context or cluster.`,
      'Choose one with --context <name> or `kubectl config use-context <name>`.',
    );
  }
  const namespace = opts.namespace || DEFAULT_NAMESPACE;
  return { kc, contextName, namespace, server: cluster.server, user: kc.getCurrentUser()?.name ?? '', source };
}

export interface ProbeResult {
  readonly reachable: boolean;
  /** Why not, in one line (no kubeconfig, connection refused, 401, timeout...). */
  readonly reason?: string;
  /** The HTTP status of GET /version when the server answered but the probe failed (401, 500...). */
  readonly status?: number;
  readonly server?: string;
  readonly context?: string;
  /** gitVersion of the API server, when reachable. */
  readonly version?: string;
}

/**
 * A raw GET through the kubeconfig's TLS and auth settings, with a hard deadline. Used for the
 * fast reachability probe and for discovery, where client-node's generated calls have no
 * timeout of their own.
 */
async function rawGet(ctx: KubeContext, path: string, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number; body: string }> {
  const url = new URL(path, ctx.server.endsWith('/') ? ctx.server : ctx.server + '/');
  const opts: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  await ctx.kc.applyToHTTPSOptions(opts);
  const mod = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { ...opts, signal, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.on('close', () => clearTimeout(timer));
    req.end();
  });
}

/**
 * Is a cluster reachable with the current kubeconfig? Fast (<= timeoutMs, default 3 s), never
 * throws: used to choose the default target (cluster vs local).
 */
export async function probeCluster(opts: KubeOptions = {}, signal?: AbortSignal, timeoutMs = 3000): Promise<ProbeResult> {
  let ctx: KubeContext;
  try {
    ctx = loadKubeContext(opts);
  } catch (err) {
    return { reachable: false, reason: (err as Error).message };
  }
  const base = { server: ctx.server, context: ctx.contextName };
  try {
    const res = await rawGet(ctx, '/version', timeoutMs, signal);
    if (res.status === 200) {
      let version: string | undefined;
      try {
        version = (JSON.parse(res.body) as { gitVersion?: string }).gitVersion;
      } catch {
        /* not JSON: still reachable */
      }
      return { reachable: true, ...base, version };
    }
    if (res.status === 401)
      return {
        reachable: false,
        ...base,
        status: 401,
        reason: `the API server at ${ctx.server} rejected the credentials of context "${ctx.contextName}" (401 Unauthorized)`,
      };
    // 403 on /version still proves a working connection and credentials that authenticate.
    if (res.status === 403) return { reachable: true, ...base };
    return {
      reachable: false,
      ...base,
      status: res.status,
      reason: `the API server at ${ctx.server} answered ${res.status} to GET /version`,
    };
  } catch (err) {
    const code = networkCode(err) ?? (err as Error).message;
    return { reachable: false, ...base, reason: `cannot reach the API server at ${ctx.server} (${code})` };
  }
}

/** Typed clients for one context, plus helpers that turn failures into ClusterErrors. */
export class Cluster {
  readonly core: k8s.CoreV1Api;
  readonly apps: k8s.AppsV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly objects: k8s.KubernetesObjectApi;
  readonly authz: k8s.AuthorizationV1Api;
  readonly ext: k8s.ApiextensionsV1Api;
  constructor(readonly ctx: KubeContext) {
    this.core = ctx.kc.makeApiClient(k8s.CoreV1Api);
    this.apps = ctx.kc.makeApiClient(k8s.AppsV1Api);
    this.custom = ctx.kc.makeApiClient(k8s.CustomObjectsApi);
    this.authz = ctx.kc.makeApiClient(k8s.AuthorizationV1Api);
    this.ext = ctx.kc.makeApiClient(k8s.ApiextensionsV1Api);
    this.objects = k8s.KubernetesObjectApi.makeApiClient(ctx.kc);
  }
  get namespace(): string {
    return this.ctx.namespace;
  }
  /** Run one API call; failures become ClusterErrors that name the verb and resource. */
  async call<T>(d: CallDesc, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw explainApiError(err, d, this.ctx.server);
    }
  }
  /** Like call(), but a 404 resolves to undefined. */
  async getOrUndefined<T>(d: CallDesc, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      const e = explainApiError(err, d, this.ctx.server) as { code?: number };
      if (e.code === 404) return undefined;
      throw e;
    }
  }
}

/**
 * Load the context and make sure the API server answers (within 3 s), so that every command
 * fails fast with one clear message when no cluster is reachable.
 */
export async function connect(opts: KubeOptions, signal?: AbortSignal): Promise<Cluster> {
  const ctx = loadKubeContext(opts);
  const probe = await probeCluster(opts, signal);
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
  if (!probe.reachable) {
    // The status, not the reason's text: a reason names the server, and a port such as 40193
    // contains "401".
    if (probe.status === 401) {
      throw new ClusterError(
        `The Kubernetes API server rejected your credentials (401 Unauthorized): context "${ctx.contextName}", server ${ctx.server}.`,
        'Refresh your credentials for this context, or pick another one with --context.',
      );
    }
    throw new ClusterError(
      `No Kubernetes cluster is reachable: ${probe.reason} (context "${ctx.contextName}", from ${ctx.source}).`,
      LOCAL_HINT,
    );
  }
  return new Cluster(ctx);
}

export function kubeOptionsFrom(globals: { context?: string; namespace?: string }): KubeOptions {
  return { context: globals.context, namespace: globals.namespace };
}
