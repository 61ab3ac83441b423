/**
 * `doctor`: what is installed and what is wrong, with the fix for each finding. The checks
 * follow the labs' troubleshooting sections: tools, context, API reachability, RBAC for what
 * the lab does, DGD CRD and served versions, the Dynamo operator, GPU capacity, NATS/etcd,
 * the lab deployment's pods (Pending/insufficient GPU, image pulls, crash loops, probes),
 * the NodePort Service and endpoints.
 *
 * About 400 lines on purpose: one flat list of checks in the order the troubleshooting
 * sections read them, each with its own wording and fix; helpers would only hide the order.
 */
import { execa } from 'execa';
import type { Cluster, KubeOptions } from './kube.js';
import { loadKubeContext, probeCluster, Cluster as ClusterClass } from './kube.js';
import { helmVersionCheck } from './helm.js';
import { CHARTS } from './helm.js';
import { discoverDgdApi } from './apply.js';
import { gpuReport } from './gpu.js';
import { adviceFor, isSeriousProblem, podState, type PodState } from './wait.js';
import { DEFAULT_DGD_NAME, LABEL_COMPONENT, LABEL_DGD, nodePortServiceName } from './manifests.js';
import { parseVersion } from './releases.js';
import { UserError } from '../base/errors.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface Check {
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  context?: string;
  server?: string;
  namespace: string;
  checks: Check[];
  summary: Record<CheckStatus, number>;
}

export interface OperatorInfo {
  namespace: string;
  name: string;
  ready: boolean;
  image?: string;
  release?: string;
}

/** Find the Dynamo operator Deployment (any namespace we may list). */
export async function findOperator(cluster: Cluster): Promise<OperatorInfo[] | 'forbidden'> {
  try {
    const deps = await cluster.apps.listDeploymentForAllNamespaces();
    return deps.items
      .filter(
        (d) =>
          /dynamo-operator|dynamo-platform.*controller/.test(d.metadata?.name ?? '') ||
          d.metadata?.labels?.['app.kubernetes.io/name'] === 'dynamo-operator',
      )
      .map((d) => {
        const image =
          d.spec?.template.spec?.containers.find((c) => /operator|manager/.test(c.name))?.image ??
          d.spec?.template.spec?.containers[0]?.image;
        const tag = image?.includes(':') ? image.slice(image.lastIndexOf(':') + 1) : undefined;
        return {
          namespace: d.metadata?.namespace ?? '',
          name: d.metadata?.name ?? '',
          ready: (d.status?.readyReplicas ?? 0) >= 1,
          image,
          release: tag && parseVersion(tag) ? tag.replace(/^v/, '') : undefined,
        };
      });
  } catch (err) {
    if ((err as { code?: number }).code === 403) return 'forbidden';
    throw err;
  }
}

async function toolVersion(bin: string, args: string[]): Promise<string | undefined> {
  try {
    const r = await execa(bin, args, { reject: false, timeout: 5000, stdin: 'ignore' });
    return r.exitCode === 0 ? String(r.stdout).split('\n')[0]?.trim() : undefined;
  } catch {
    return undefined;
  }
}

async function canI(cluster: Cluster, verb: string, resource: string, group: string, namespace?: string): Promise<boolean | undefined> {
  try {
    const r = await cluster.authz.createSelfSubjectAccessReview({
      body: { spec: { resourceAttributes: { verb, resource, group, namespace } } },
    });
    return r.status?.allowed ?? false;
  } catch {
    return undefined;
  }
}

export interface DoctorOptions extends KubeOptions {
  readonly need: number;
  readonly name?: string;
  readonly signal?: AbortSignal;
}

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const ns = o.namespace || 'dynamo';
  const name = o.name ?? DEFAULT_DGD_NAME;

  // Tools
  // The minimum comes from the release table (releases.ts TOOLING.helm): the labs' cleanup uses
  // `helm uninstall --ignore-not-found`, which older Helm 3 releases reject.
  const helm = await helmVersionCheck(o.signal);
  if (!helm.found)
    add({
      id: 'helm',
      title: 'helm binary',
      status: 'warn',
      detail: `helm not found (${process.env.HELM_BIN ? `HELM_BIN=${process.env.HELM_BIN}` : 'not on PATH'})`,
      fix: `Install Helm ${helm.min} or newer (https://helm.sh/docs/intro/install/) or set HELM_BIN; needed by \`dynamo-lab install nats|etcd\` and the labs' helm steps.`,
    });
  else if (!helm.ok)
    add({
      id: 'helm',
      title: 'helm binary',
      status: 'fail',
      detail: `${helm.raw}: older than ${helm.min}; ${helm.why}`,
      fix: `Upgrade Helm to ${helm.min} or newer (https://helm.sh/docs/intro/install/), or point HELM_BIN at a newer helm.`,
    });
  else add({ id: 'helm', title: 'helm binary', status: 'ok', detail: `${helm.raw} (>= ${helm.min})` });
  const kubectl = await toolVersion('kubectl', ['version', '--client=true', '-o', 'yaml']).then((v) => (v ? 'kubectl present' : undefined));
  add(
    kubectl
      ? { id: 'kubectl', title: 'kubectl (optional)', status: 'ok', detail: kubectl }
      : {
          id: 'kubectl',
          title: 'kubectl (optional)',
          status: 'warn',
          detail: 'kubectl not found',
          fix: 'Not needed by dynamo-lab, but the labs show kubectl commands to inspect things.',
        },
  );

  // Context
  let cluster: Cluster | undefined;
  let ctxName: string | undefined;
  let server: string | undefined;
  try {
    const ctx = loadKubeContext(o);
    ctxName = ctx.contextName;
    server = ctx.server;
    add({
      id: 'context',
      title: 'Kubernetes context',
      status: 'ok',
      detail: `context "${ctx.contextName}" (${ctx.server}) from ${ctx.source}; namespace "${ns}"`,
    });
    const probe = await probeCluster(o, o.signal);
    if (probe.reachable) {
      add({
        id: 'api',
        title: 'API server reachable',
        status: 'ok',
        detail: `${ctx.server}${probe.version ? ` (Kubernetes ${probe.version})` : ''}`,
      });
      cluster = new ClusterClass(ctx);
    } else {
      add({
        id: 'api',
        title: 'API server reachable',
        status: 'fail',
        detail: probe.reason ?? 'unreachable',
        fix: 'Check the kubeconfig/VPN, pick another --context, or use the local target: `dynamo-lab start --target local`.',
      });
    }
  } catch (err) {
    add(failed('context', 'Kubernetes context', err));
  }

  if (!cluster) {
    for (const id of ['rbac', 'crd', 'operator', 'gpu', 'nats', 'etcd', 'deployment'])
      add({ id, title: id, status: 'skip', detail: 'no reachable cluster' });
    return finish(ctxName, server, ns, checks);
  }

  // RBAC for what the lab does
  const needs: Array<[string, string, string, string | undefined]> = [
    ['list', 'nodes', '', undefined],
    ['list', 'pods', '', ns],
    ['create', 'dynamographdeployments', 'nvidia.com', ns],
    ['patch', 'services', '', ns],
    ['get', 'pods/log', '', ns],
    ['create', 'pods/portforward', '', ns],
  ];
  const denied: string[] = [];
  let unknown = false;
  for (const [verb, res, group, nsp] of needs) {
    const ok = await canI(cluster, verb, res, group, nsp);
    if (ok === undefined) unknown = true;
    else if (!ok) denied.push(`${verb} ${group ? `${res}.${group}` : res}${nsp ? ` in ${nsp}` : ' (cluster-wide)'}`);
  }
  add(
    denied.length
      ? {
          id: 'rbac',
          title: 'permissions for the lab',
          status: 'fail',
          detail: `not allowed: ${denied.join('; ')}`,
          fix: 'Ask a cluster admin for a Role/ClusterRole granting these verbs (check with `kubectl auth can-i <verb> <resource> -n <ns>`).',
        }
      : unknown
        ? { id: 'rbac', title: 'permissions for the lab', status: 'warn', detail: 'could not run SelfSubjectAccessReviews' }
        : {
            id: 'rbac',
            title: 'permissions for the lab',
            status: 'ok',
            detail: 'list nodes/pods, create DGDs, apply Services, read logs, port-forward',
          },
  );

  // CRD
  let crdOk = false;
  try {
    const api = await discoverDgdApi(cluster);
    crdOk = true;
    add({
      id: 'crd',
      title: 'DynamoGraphDeployment CRD',
      status: 'ok',
      detail: `served versions: ${api.served.join(', ')}; deploy will use ${api.version}`,
    });
  } catch (err) {
    add(failed('crd', 'DynamoGraphDeployment CRD', err));
  }

  // Operator
  try {
    const ops = await findOperator(cluster);
    if (ops === 'forbidden')
      add({
        id: 'operator',
        title: 'Dynamo operator',
        status: 'warn',
        detail: 'not allowed to list Deployments cluster-wide; cannot tell',
        fix: 'Ask your admin whether the Dynamo platform is installed (namespace-restricted operators run in your namespace).',
      });
    else if (!ops.length)
      add({
        id: 'operator',
        title: 'Dynamo operator',
        status: crdOk ? 'fail' : 'warn',
        detail: 'no dynamo-operator Deployment found',
        fix: 'Install the Dynamo platform Helm chart (dynamo-platform); without the operator a DGD never gets pods.',
      });
    else {
      const notReady = ops.filter((x) => !x.ready);
      add({
        id: 'operator',
        title: 'Dynamo operator',
        status: notReady.length ? 'fail' : 'ok',
        detail: ops
          .map((x) => `${x.namespace}/${x.name} ${x.ready ? 'ready' : 'NOT ready'}${x.release ? ` (release ${x.release})` : ''}`)
          .join('; '),
        fix: notReady.length ? `Check the operator: kubectl logs -n ${notReady[0]!.namespace} deployment/${notReady[0]!.name}` : undefined,
      });
    }
  } catch (err) {
    add({ id: 'operator', title: 'Dynamo operator', status: 'warn', detail: (err as Error).message });
  }

  // GPUs
  try {
    const g = await gpuReport(cluster, o.need, name);
    const holders = g.holders.filter((h) => !h.ours && h.gpus > 0);
    add({
      id: 'gpu',
      title: 'GPU capacity',
      status: g.total.allocatable === 0 ? 'fail' : g.enough ? 'ok' : 'fail',
      detail: `${g.total.free} free of ${g.total.allocatable} allocatable nvidia.com/gpu on ${g.nodes.filter((n) => n.allocatable > 0).length} node(s); the lab needs ${o.need}${holders.length ? `; held by ${holders.map((h) => `${h.namespace}/${h.name} (${h.gpus})`).join(', ')}` : ''}`,
      fix:
        g.total.allocatable === 0
          ? 'No node advertises nvidia.com/gpu: install the NVIDIA GPU Operator / device plugin, or use `dynamo-lab start --target local`.'
          : g.enough
            ? undefined
            : holders.length
              ? `Free GPUs: ${holders.flatMap((h) => h.cleanup).join(' && ')}`
              : 'Wait for terminating pods, or deploy fewer workers (--workers).',
    });
  } catch (err) {
    add(failed('gpu', 'GPU capacity', err));
  }

  // NATS / etcd (optional in K8s-native discovery mode)
  for (const c of [CHARTS.nats, CHARTS.etcd]) {
    try {
      const svc = await cluster.getOrUndefined({ verb: 'get', resource: 'services', name: c.service, namespace: c.namespace }, () =>
        cluster!.core.readNamespacedService({ name: c.service, namespace: c.namespace }),
      );
      if (!svc) {
        add({
          id: c.id,
          title: `${c.id.toUpperCase()} (${c.url})`,
          status: 'warn',
          detail: `Service ${c.namespace}/${c.service} not found`,
          fix: `${c.id === 'nats' ? "Needed when KV events go over NATS (the lab's deploy sets NATS_SERVER)" : 'Needed for etcd discovery (NATS/etcd mode)'}: \`dynamo-lab install ${c.id}\`.`,
        });
        continue;
      }
      const pods = await cluster.core.listNamespacedPod({
        namespace: c.namespace,
        labelSelector: `app.kubernetes.io/instance=${c.release}`,
      });
      const states = pods.items.map((p) => podState(p));
      const bad = states.filter((s) => !s.ready);
      add({
        id: c.id,
        title: `${c.id.toUpperCase()} (${c.url})`,
        status: bad.length || !states.length ? 'fail' : 'ok',
        detail: states.length ? podsReady(states) : 'Service exists but no pods',
        fix:
          bad.length || !states.length
            ? `kubectl get pods -n ${c.namespace}; kubectl logs -n ${c.namespace} ${c.release}-0 (common: not enough memory, PersistentVolume problems)`
            : undefined,
      });
    } catch (err) {
      add({ id: c.id, title: c.id.toUpperCase(), status: 'warn', detail: (err as Error).message });
    }
  }

  // The lab deployment
  try {
    const pods = await cluster.core.listNamespacedPod({ namespace: ns, labelSelector: `${LABEL_DGD}=${name}` });
    if (!pods.items.length)
      add({
        id: 'deployment',
        title: `lab deployment ${ns}/${name}`,
        status: 'skip',
        detail: 'not deployed (no pods)',
        fix: 'Deploy it with `dynamo-lab deploy`.',
      });
    else {
      const states = pods.items.map((p) => podState(p, LABEL_COMPONENT));
      const serious = states.filter(isSeriousProblem);
      const notReady = states.filter((s) => !s.ready);
      add({
        id: 'deployment',
        title: `lab deployment ${ns}/${name}`,
        status: serious.length ? 'fail' : notReady.length ? 'warn' : 'ok',
        detail: podsReady(states),
        fix: serious.length
          ? serious
              .map((s) => adviceFor(s.problem!))
              .filter(Boolean)
              .join(' ')
          : notReady.length
            ? 'Pods are starting (model download can take minutes); watch with `dynamo-lab deploy` (it waits) or `kubectl get pods -w`.'
            : undefined,
      });
    }
    const svcName = nodePortServiceName(name);
    const svc = await cluster.getOrUndefined({ verb: 'get', resource: 'services', name: svcName, namespace: ns }, () =>
      cluster!.core.readNamespacedService({ name: svcName, namespace: ns }),
    );
    if (pods.items.length) {
      if (!svc)
        add({
          id: 'nodeport',
          title: `NodePort Service ${svcName}`,
          status: 'fail',
          detail: 'missing',
          fix: 'Re-run `dynamo-lab deploy` (it applies the Service).',
        });
      else {
        const frontends = pods.items.filter(
          (p) =>
            p.metadata?.labels?.[LABEL_COMPONENT] === 'Frontend' &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        add({
          id: 'nodeport',
          title: `NodePort Service ${svcName}`,
          status: frontends.length ? 'ok' : 'warn',
          detail: `nodePort ${svc.spec?.ports?.[0]?.nodePort ?? '?'}; ${frontends.length} ready frontend pod(s) behind it`,
          fix: frontends.length
            ? undefined
            : 'No ready frontend pod matches the Service selector: check `dynamo-lab logs --component frontend`.',
        });
      }
    }
  } catch (err) {
    add({ id: 'deployment', title: `lab deployment ${ns}/${name}`, status: 'warn', detail: (err as Error).message });
  }
  return finish(ctxName, server, ns, checks);
}

/** "2/3 pods ready: name phase — problem; …" */
function podsReady(states: readonly PodState[]): string {
  const notReady = states.filter((s) => !s.ready);
  const list = notReady.map((s) => `${s.name} ${s.phase}${s.problem ? ` — ${s.problem}` : ''}`).join('; ');
  return `${states.length - notReady.length}/${states.length} pods ready${list ? `: ${list}` : ''}`;
}

/** A failed check from the error that ended it (a UserError's "Try" becomes the fix). */
function failed(id: string, title: string, err: unknown): Check {
  return { id, title, status: 'fail', detail: (err as Error).message, fix: err instanceof UserError ? err.tryMessage : undefined };
}

function finish(context: string | undefined, server: string | undefined, namespace: string, checks: Check[]): DoctorReport {
  const summary: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) summary[c.status] += 1;
  return { context, server, namespace, checks, summary };
}
