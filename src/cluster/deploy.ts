/**
 * `deploy`: the lab DGD in the version the cluster serves, the NodePort Service, the HF token
 * Secret (from $HF_TOKEN, never printed), then wait for Ready with live progress.
 * The plan (what would be sent) is built first; dry-run prints it, the real run applies it.
 */
import type { Cluster } from './kube.js';
import { ClusterError } from './errors.js';
import { ensureNamespace, serverSideApply } from './apply.js';
import {
  DGD_GROUP,
  DGD_PLURAL,
  HF_SECRET_NAME,
  LABEL_COMPONENT,
  LABEL_DGD,
  WORKERS_SELECTOR,
  maskSecrets,
  objectPath,
  renderDgd,
  renderPolicyConfigMap,
  renderHfSecret,
  renderNodePortService,
  renderWorkersDeployment,
  type DeploySpec,
  type DgdVersion,
  type KubeObject,
  type WorkersSpec,
  WORKERS_DEPLOYMENT_NAME,
} from './manifests.js';
import { explainNotReady, waitFor, type WaitResult, type WaitTarget } from './wait.js';
import { FIELD_MANAGER } from './kube.js';

export interface PlannedRequest {
  method: 'PATCH';
  path: string;
  query: string;
  contentType: 'application/apply-patch+yaml';
  /** The object as sent (Secrets masked in anything printed). */
  body: KubeObject;
  plural: string;
}

function applyRequest(obj: KubeObject, plural: string): PlannedRequest {
  return {
    method: 'PATCH',
    path: objectPath(obj, plural),
    query: `fieldManager=${FIELD_MANAGER}&force=true`,
    contentType: 'application/apply-patch+yaml',
    body: obj,
    plural,
  };
}

/** What the dry-run prints: requests with Secret values masked. */
export function printablePlan(plan: readonly PlannedRequest[]): PlannedRequest[] {
  return plan.map((r) => ({ ...r, body: maskSecrets(r.body) }));
}

export function buildDgdPlan(spec: DeploySpec, hfToken: string | undefined): PlannedRequest[] {
  const plan: PlannedRequest[] = [];
  if (hfToken) plan.push(applyRequest(renderHfSecret(spec.namespace, hfToken), 'secrets'));
  const policy = renderPolicyConfigMap(spec);
  if (policy) plan.push(applyRequest(policy, 'configmaps'));
  plan.push(applyRequest(renderDgd(spec), DGD_PLURAL));
  plan.push(applyRequest(renderNodePortService(spec), 'services'));
  return plan;
}

export function buildWorkersPlan(spec: WorkersSpec, hfToken: string | undefined): PlannedRequest[] {
  const plan: PlannedRequest[] = [];
  if (hfToken) plan.push(applyRequest(renderHfSecret(spec.namespace, hfToken), 'secrets'));
  plan.push(applyRequest(renderWorkersDeployment(spec), 'deployments'));
  return plan;
}

/** Does the HF secret already exist (so the workers may reference it without $HF_TOKEN)? */
export async function hfSecretExists(cluster: Cluster, namespace: string): Promise<boolean> {
  const s = await cluster.getOrUndefined({ verb: 'get', resource: 'secrets', name: HF_SECRET_NAME, namespace }, () =>
    cluster.core.readNamespacedSecret({ name: HF_SECRET_NAME, namespace }),
  );
  return Boolean(s);
}

/** Which other Service holds this NodePort? (for a clear 422 message) */
async function nodePortOwner(cluster: Cluster, port: number): Promise<string | undefined> {
  try {
    const all = await cluster.core.listServiceForAllNamespaces();
    const s = all.items.find((svc) => svc.spec?.ports?.some((p) => p.nodePort === port));
    return s ? `${s.metadata?.namespace}/${s.metadata?.name}` : undefined;
  } catch {
    return undefined;
  }
}

export interface ApplyOutcome {
  applied: Array<{ kind: string; name: string; namespace?: string; apiVersion: string }>;
  namespace: 'created' | 'exists';
}

export async function applyPlan(
  cluster: Cluster,
  namespace: string,
  plan: readonly PlannedRequest[],
  onStep?: (msg: string) => void,
): Promise<ApplyOutcome> {
  const ns = await ensureNamespace(cluster, namespace);
  if (ns === 'created') onStep?.(`created namespace ${namespace}`);
  const applied: ApplyOutcome['applied'] = [];
  for (const r of plan) {
    const o = r.body;
    try {
      await serverSideApply(cluster, o, o.apiVersion.startsWith(DGD_GROUP) ? `${r.plural}.${DGD_GROUP}` : r.plural);
    } catch (err) {
      const e = err as ClusterError;
      if (o.kind === 'Service' && e.code === 422 && /already allocated|provided port/i.test(e.message)) {
        const port = (o as { spec?: { ports?: Array<{ nodePort?: number }> } }).spec?.ports?.[0]?.nodePort ?? 0;
        const owner = await nodePortOwner(cluster, port);
        throw new ClusterError(
          `NodePort ${port} is already used${owner ? ` by Service ${owner}` : ' by another Service'}.`,
          `Pick another port with --node-port <30000-32767>, or remove the other Service${owner ? ` (kubectl delete svc ${owner.split('/')[1]} -n ${owner.split('/')[0]})` : ''}.`,
          422,
        );
      }
      throw err;
    }
    applied.push({ kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace, apiVersion: o.apiVersion });
    onStep?.(
      `applied ${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name} (${o.apiVersion}, server-side, field manager ${FIELD_MANAGER})`,
    );
  }
  return { applied, namespace: ns };
}

/** The frontend's container settings in either DGD shape (args, env, volumes), for change detection. */
function frontendSettings(dgd: unknown): string | undefined {
  const spec = (dgd as { spec?: Record<string, unknown> } | undefined)?.spec;
  if (!spec) return undefined;
  const services = spec.services as
    | Record<string, { envs?: unknown; extraPodSpec?: { volumes?: unknown; mainContainer?: { args?: unknown; volumeMounts?: unknown } } }>
    | undefined;
  if (services?.Frontend) {
    const f = services.Frontend;
    return JSON.stringify([
      f.envs ?? null,
      f.extraPodSpec?.mainContainer?.args ?? null,
      f.extraPodSpec?.volumes ?? null,
      f.extraPodSpec?.mainContainer?.volumeMounts ?? null,
    ]);
  }
  const comps = spec.components as
    | Array<{
        name?: string;
        podTemplate?: { spec?: { volumes?: unknown; containers?: Array<{ args?: unknown; env?: unknown; volumeMounts?: unknown }> } };
      }>
    | undefined;
  const f = comps?.find((c) => c.name === 'Frontend');
  if (!f) return undefined;
  const c = f.podTemplate?.spec?.containers?.[0];
  return JSON.stringify([c?.env ?? null, c?.args ?? null, f.podTemplate?.spec?.volumes ?? null, c?.volumeMounts ?? null]);
}

/**
 * Will applying `next` change an existing DGD's frontend (so the operator replaces its pod)?
 * Then the wait must not return on the old, still-Ready frontend pod.
 */
export async function frontendWillChange(cluster: Cluster, next: KubeObject, version: DgdVersion): Promise<boolean> {
  const ns = next.metadata.namespace!;
  const cur = await cluster.getOrUndefined(
    { verb: 'get', resource: `${DGD_PLURAL}.${DGD_GROUP}`, name: next.metadata.name, namespace: ns },
    () =>
      cluster.custom.getNamespacedCustomObject({ group: DGD_GROUP, version, namespace: ns, plural: DGD_PLURAL, name: next.metadata.name }),
  );
  if (!cur) return false;
  return frontendSettings(cur) !== frontendSettings(next);
}

export interface WaitOptions {
  /** See WaitTarget.replaced. */
  replaced?: WaitTarget['replaced'];
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (line: string) => void;
  watchSeconds?: number;
}

export function dgdWaitTarget(spec: Pick<DeploySpec, 'name' | 'namespace' | 'version' | 'workers'>, o: WaitOptions): WaitTarget {
  return {
    object: { group: DGD_GROUP, version: spec.version, plural: DGD_PLURAL, name: spec.name },
    namespace: spec.namespace,
    labelSelector: `${LABEL_DGD}=${spec.name}`,
    expectedPods: spec.workers + 1,
    timeoutMs: o.timeoutMs,
    signal: o.signal,
    onProgress: o.onProgress,
    watchSeconds: o.watchSeconds,
    componentLabel: LABEL_COMPONENT,
    replaced: o.replaced,
  };
}

export function workersWaitTarget(spec: Pick<WorkersSpec, 'namespace' | 'workers' | 'name'>, o: WaitOptions): WaitTarget {
  return {
    namespace: spec.namespace,
    labelSelector: `${WORKERS_SELECTOR},app.kubernetes.io/instance=${spec.name ?? WORKERS_DEPLOYMENT_NAME}`,
    expectedPods: spec.workers,
    timeoutMs: o.timeoutMs,
    signal: o.signal,
    onProgress: o.onProgress,
    watchSeconds: o.watchSeconds,
  };
}

/** Wait, and turn a timeout into a ClusterError that explains why. */
export async function waitReady(cluster: Cluster, target: WaitTarget): Promise<WaitResult> {
  const r = await waitFor(cluster, target);
  if (target.signal?.aborted) throw target.signal.reason ?? new Error('aborted');
  if (!r.ready) throw await explainNotReady(cluster, target, r);
  return r;
}
