/**
 * `cleanup`: the lab's objects (DGDs, NodePort Services, worker Deployments and the HF Secret
 * this CLI created, plus the lab's known DGD/Service names from the notebooks); with --all
 * also the NATS and etcd Helm releases and namespaces the lab created. Idempotent: anything
 * already gone counts as done. The plan is computed first so dry-run prints exactly it.
 */
import type { Cluster } from './kube.js';
import { MANAGED_BY_LABEL } from './kube.js';
import { isNotFound } from './errors.js';
import { shellQuote } from '../base/shell.js';
import { CHARTS, runHelm, helmBin, uninstallArgs, type HelmGlobals } from './helm.js';
import { DEFAULT_DGD_NAME, DGD_GROUP, DGD_PLURAL, HF_SECRET_NAME, nodePortServiceName, type DgdVersion } from './manifests.js';

export type CleanupAction =
  | { kind: 'delete'; resource: string; name: string; namespace?: string; apiVersion: string; why: string }
  | { kind: 'helm'; argv: string[]; release: string; namespace: string };

const LAB_SELECTOR = `${MANAGED_BY_LABEL}=dynamo-lab`;

export interface CleanupOptions {
  readonly namespace: string;
  readonly all: boolean;
  readonly dgdName?: string;
  readonly dgdVersion?: DgdVersion;
  readonly helm: HelmGlobals;
}

export async function planCleanup(cluster: Cluster, o: CleanupOptions): Promise<CleanupAction[]> {
  const ns = o.namespace;
  const actions: CleanupAction[] = [];
  const seen = new Set<string>();
  const add = (a: CleanupAction) => {
    const key = a.kind === 'delete' ? `${a.resource}/${a.namespace}/${a.name}` : `helm/${a.namespace}/${a.release}`;
    if (!seen.has(key)) {
      seen.add(key);
      actions.push(a);
    }
  };
  const nsExists = await cluster.getOrUndefined({ verb: 'get', resource: 'namespaces', name: ns }, () =>
    cluster.core.readNamespace({ name: ns }),
  );
  if (nsExists) {
    // DGDs: ours by label, plus the lab's default name (the notebooks created it with kubectl).
    if (o.dgdVersion) {
      const list = (await cluster.call({ verb: 'list', resource: `${DGD_PLURAL}.${DGD_GROUP}`, namespace: ns }, () =>
        cluster.custom.listNamespacedCustomObject({ group: DGD_GROUP, version: o.dgdVersion!, namespace: ns, plural: DGD_PLURAL }),
      )) as { items?: Array<{ metadata?: { name?: string; labels?: Record<string, string> } }> };
      const wanted = o.dgdName ?? DEFAULT_DGD_NAME;
      for (const d of list.items ?? []) {
        const name = d.metadata?.name ?? '';
        const ours = d.metadata?.labels?.[MANAGED_BY_LABEL] === 'dynamo-lab';
        if (ours || name === wanted)
          add({
            kind: 'delete',
            resource: DGD_PLURAL,
            name,
            namespace: ns,
            apiVersion: `${DGD_GROUP}/${o.dgdVersion}`,
            why: ours ? 'created by dynamo-lab' : "the lab's deployment",
          });
      }
    }
    const svcs = await cluster.call({ verb: 'list', resource: 'services', namespace: ns }, () =>
      cluster.core.listNamespacedService({ namespace: ns }),
    );
    const npName = nodePortServiceName(o.dgdName ?? DEFAULT_DGD_NAME);
    for (const s of svcs.items) {
      const name = s.metadata?.name ?? '';
      if (s.metadata?.labels?.[MANAGED_BY_LABEL] === 'dynamo-lab' || name === npName)
        add({ kind: 'delete', resource: 'services', name, namespace: ns, apiVersion: 'v1', why: 'lab NodePort Service' });
    }
    const deps = await cluster.call({ verb: 'list', resource: 'deployments', namespace: ns }, () =>
      cluster.apps.listNamespacedDeployment({ namespace: ns, labelSelector: LAB_SELECTOR }),
    );
    for (const d of deps.items)
      add({
        kind: 'delete',
        resource: 'deployments',
        name: d.metadata!.name!,
        namespace: ns,
        apiVersion: 'apps/v1',
        why: 'lab worker Deployment',
      });
    const secret = await cluster.getOrUndefined({ verb: 'get', resource: 'secrets', name: HF_SECRET_NAME, namespace: ns }, () =>
      cluster.core.readNamespacedSecret({ name: HF_SECRET_NAME, namespace: ns }),
    );
    if (secret?.metadata?.labels?.[MANAGED_BY_LABEL] === 'dynamo-lab')
      add({
        kind: 'delete',
        resource: 'secrets',
        name: HF_SECRET_NAME,
        namespace: ns,
        apiVersion: 'v1',
        why: 'HF token Secret created by dynamo-lab',
      });
  }
  if (o.all) {
    for (const c of [CHARTS.nats, CHARTS.etcd]) {
      const exists = await cluster.getOrUndefined({ verb: 'get', resource: 'namespaces', name: c.namespace }, () =>
        cluster.core.readNamespace({ name: c.namespace }),
      );
      if (!exists) continue;
      add({ kind: 'helm', argv: uninstallArgs(c, o.helm), release: c.release, namespace: c.namespace });
      if (!exists.metadata?.deletionTimestamp)
        add({ kind: 'delete', resource: 'namespaces', name: c.namespace, apiVersion: 'v1', why: `namespace of the ${c.release} release` });
    }
    if (nsExists && nsExists.metadata?.labels?.[MANAGED_BY_LABEL] === 'dynamo-lab' && !nsExists.metadata?.deletionTimestamp) {
      add({ kind: 'delete', resource: 'namespaces', name: ns, apiVersion: 'v1', why: 'lab namespace created by dynamo-lab' });
    }
  }
  return actions;
}

export function describeAction(a: CleanupAction): string {
  if (a.kind === 'helm') return shellQuote([helmBin(), ...a.argv]);
  return `DELETE ${a.apiVersion.includes('/') ? `/apis/${a.apiVersion}` : `/api/${a.apiVersion}`}${a.namespace ? `/namespaces/${a.namespace}` : ''}/${a.resource}/${a.name}   # ${a.why}`;
}

export interface ActionResult {
  action: CleanupAction;
  result: 'deleted' | 'already gone' | 'uninstalled' | 'not installed';
}

export async function runCleanup(
  cluster: Cluster,
  actions: readonly CleanupAction[],
  o: { signal?: AbortSignal; onStep?: (msg: string) => void },
): Promise<ActionResult[]> {
  const out: ActionResult[] = [];
  for (const a of actions) {
    if (o.signal?.aborted) throw o.signal.reason;
    if (a.kind === 'helm') {
      const r = await runHelm(a.argv, { signal: o.signal, allowFailure: true });
      if (r.exitCode !== 0 && !/not found/i.test(r.stderr)) {
        await runHelm(a.argv, { signal: o.signal }); // rethrows with the helm message
      }
      const result = r.exitCode === 0 ? 'uninstalled' : 'not installed';
      out.push({ action: a, result });
      o.onStep?.(`helm release ${a.namespace}/${a.release}: ${result}`);
      continue;
    }
    const d = {
      verb: 'delete',
      resource: a.resource === DGD_PLURAL ? `${DGD_PLURAL}.${DGD_GROUP}` : a.resource,
      name: a.name,
      namespace: a.namespace,
    };
    try {
      await cluster.call(d, async () => {
        switch (a.resource) {
          case DGD_PLURAL: {
            const version = a.apiVersion.split('/')[1]!;
            return cluster.custom.deleteNamespacedCustomObject({
              group: DGD_GROUP,
              version,
              namespace: a.namespace!,
              plural: DGD_PLURAL,
              name: a.name,
              propagationPolicy: 'Background',
            });
          }
          case 'services':
            return cluster.core.deleteNamespacedService({ name: a.name, namespace: a.namespace! });
          case 'secrets':
            return cluster.core.deleteNamespacedSecret({ name: a.name, namespace: a.namespace! });
          case 'deployments':
            return cluster.apps.deleteNamespacedDeployment({ name: a.name, namespace: a.namespace!, propagationPolicy: 'Background' });
          case 'namespaces':
            return cluster.core.deleteNamespace({ name: a.name });
          default:
            throw new Error(`unknown resource ${a.resource}`);
        }
      });
      out.push({ action: a, result: 'deleted' });
      o.onStep?.(
        `deleted ${a.resource} ${a.namespace ? `${a.namespace}/` : ''}${a.name}${a.resource === 'namespaces' ? ' (its contents are removed in the background)' : ''}`,
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
      out.push({ action: a, result: 'already gone' });
      o.onStep?.(`${a.resource} ${a.namespace ? `${a.namespace}/` : ''}${a.name}: already gone`);
    }
  }
  return out;
}
