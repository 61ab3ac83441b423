/**
 * GPU accounting, the way the scheduler sees it: per node allocatable `nvidia.com/gpu` minus
 * the GPUs of the non-terminated pods bound to it (effective pod amount =
 * max(sum over containers, max over init containers); limits, else requests).
 * Also finds who holds GPUs: pods grouped by namespace and by DynamoGraphDeployment, so a
 * person can see e.g. that lab 1's vllm-disagg-router still holds the GPUs this lab needs.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Cluster } from './kube.js';
import { DGD_GROUP, DGD_PLURAL, DEFAULT_DGD_NAME, LABEL_DGD } from './manifests.js';
import { parseStatus } from './errors.js';

const GPU = 'nvidia.com/gpu';

export interface NodeGpu {
  name: string;
  capacity: number;
  allocatable: number;
  used: number;
  free: number;
  ready: boolean;
  unschedulable: boolean;
}

export interface PodGpu {
  namespace: string;
  name: string;
  gpus: number;
  node?: string;
  phase?: string;
  dgd?: string;
}

export interface GpuHolder {
  kind: 'DynamoGraphDeployment';
  namespace: string;
  name: string;
  gpus: number;
  pods: number;
  /** Our own lab's deployment (cleanup removes it). */
  ours: boolean;
  cleanup: string[];
}

export interface GpuReport {
  nodes: NodeGpu[];
  pods: PodGpu[];
  namespaces: Record<string, number>;
  total: { capacity: number; allocatable: number; used: number; free: number };
  pendingGpus: number;
  need: number;
  enough: boolean;
  holders: GpuHolder[];
  /** Things we could not look at (RBAC), said plainly. */
  notes: string[];
}

/** "2", "1k"? GPUs are plain integers in practice; tolerate decimal strings. */
function quantity(q: string | undefined): number {
  if (q === undefined || q === null) return 0;
  const n = Number(q);
  return Number.isFinite(n) ? n : 0;
}

function containerGpus(c: k8s.V1Container): number {
  return quantity(c.resources?.limits?.[GPU] ?? c.resources?.requests?.[GPU]);
}

export function podGpus(p: k8s.V1Pod): number {
  const sum = (p.spec?.containers ?? []).reduce((t, c) => t + containerGpus(c), 0);
  const init = Math.max(0, ...(p.spec?.initContainers ?? []).map(containerGpus));
  return Math.max(sum, init);
}

function isTerminated(p: k8s.V1Pod): boolean {
  return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
}

export async function gpuReport(cluster: Cluster, need: number, labName = DEFAULT_DGD_NAME): Promise<GpuReport> {
  const nodes = await cluster.call({ verb: 'list', resource: 'nodes' }, () => cluster.core.listNode());
  const pods = await cluster.call({ verb: 'list', resource: 'pods', namespace: undefined }, () => cluster.core.listPodForAllNamespaces());
  const notes: string[] = [];

  const podRows: PodGpu[] = [];
  const usedByNode = new Map<string, number>();
  const namespaces: Record<string, number> = {};
  let pendingGpus = 0;
  for (const p of pods.items) {
    if (isTerminated(p)) continue;
    const gpus = podGpus(p);
    if (gpus <= 0) continue;
    const row: PodGpu = {
      namespace: p.metadata?.namespace ?? '',
      name: p.metadata?.name ?? '',
      gpus,
      node: p.spec?.nodeName,
      phase: p.status?.phase,
      dgd: p.metadata?.labels?.[LABEL_DGD],
    };
    podRows.push(row);
    namespaces[row.namespace] = (namespaces[row.namespace] ?? 0) + gpus;
    if (row.node) usedByNode.set(row.node, (usedByNode.get(row.node) ?? 0) + gpus);
    else pendingGpus += gpus;
  }

  const nodeRows: NodeGpu[] = nodes.items.map((n) => {
    const name = n.metadata?.name ?? '';
    const capacity = quantity(n.status?.capacity?.[GPU]);
    const allocatable = quantity(n.status?.allocatable?.[GPU]);
    const used = usedByNode.get(name) ?? 0;
    const ready = n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    const unschedulable = Boolean(n.spec?.unschedulable);
    const usable = ready && !unschedulable;
    return { name, capacity, allocatable, used, free: usable ? Math.max(0, allocatable - used) : 0, ready, unschedulable };
  });
  const total = nodeRows.reduce(
    (t, n) => ({
      capacity: t.capacity + n.capacity,
      allocatable: t.allocatable + n.allocatable,
      used: t.used + n.used,
      free: t.free + n.free,
    }),
    { capacity: 0, allocatable: 0, used: 0, free: 0 },
  );

  // Who holds GPUs: group GPU pods by their DGD label; confirm DGDs exist when we may list them.
  const byDgd = new Map<string, GpuHolder>();
  for (const r of podRows) {
    if (!r.dgd) continue;
    const key = `${r.namespace}/${r.dgd}`;
    const ours = r.dgd === labName;
    const h = byDgd.get(key) ?? {
      kind: 'DynamoGraphDeployment' as const,
      namespace: r.namespace,
      name: r.dgd,
      gpus: 0,
      pods: 0,
      ours,
      cleanup: [],
    };
    h.gpus += r.gpus;
    h.pods += 1;
    byDgd.set(key, h);
  }
  try {
    const list = (await cluster.custom.listClusterCustomObject({ group: DGD_GROUP, version: 'v1alpha1', plural: DGD_PLURAL })) as {
      items?: Array<{ metadata?: { name?: string; namespace?: string } }>;
    };
    for (const d of list.items ?? []) {
      const key = `${d.metadata?.namespace}/${d.metadata?.name}`;
      if (!byDgd.has(key) && d.metadata?.name) {
        byDgd.set(key, {
          kind: 'DynamoGraphDeployment',
          namespace: d.metadata.namespace ?? '',
          name: d.metadata.name,
          gpus: 0,
          pods: 0,
          ours: d.metadata.name === labName,
          cleanup: [],
        });
      }
    }
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 403)
      notes.push(
        `not allowed to list dynamographdeployments cluster-wide (${parseStatus((err as { body?: unknown }).body)?.message ?? '403'}); GPU holders found from pod labels only`,
      );
    // 404: the CRD (or v1alpha1) is not served: nothing to add.
  }
  for (const h of byDgd.values()) {
    h.cleanup = h.ours
      ? [`dynamo-lab cleanup -n ${h.namespace} --yes`]
      : [
          `kubectl delete dynamographdeployment ${h.name} -n ${h.namespace}`,
          ...(h.name === 'vllm-disagg-router' ? [`kubectl delete svc vllm-frontend-nodeport -n ${h.namespace}`] : []),
        ];
  }
  const holders = [...byDgd.values()].sort((a, b) => b.gpus - a.gpus || a.name.localeCompare(b.name));
  // Our own lab deployment's GPUs count as available to us when redeploying it.
  const ownGpus = holders.filter((h) => h.ours).reduce((t, h) => t + h.gpus, 0);
  return { nodes: nodeRows, pods: podRows, namespaces, total, pendingGpus, need, enough: total.free + ownGpus >= need, holders, notes };
}

export function formatGpuReport(r: GpuReport): string {
  const lines: string[] = [];
  const w = Math.max(4, ...r.nodes.map((n) => n.name.length)) + 2;
  lines.push(`${'NODE'.padEnd(w)}${'CAPACITY'.padEnd(10)}${'ALLOCATABLE'.padEnd(13)}${'IN USE'.padEnd(8)}FREE`);
  for (const n of r.nodes) {
    const flag = !n.ready ? '  (NotReady)' : n.unschedulable ? '  (cordoned)' : '';
    lines.push(
      `${n.name.padEnd(w)}${String(n.capacity).padEnd(10)}${String(n.allocatable).padEnd(13)}${String(n.used).padEnd(8)}${n.free}${flag}`,
    );
  }
  lines.push(
    `${'total'.padEnd(w)}${String(r.total.capacity).padEnd(10)}${String(r.total.allocatable).padEnd(13)}${String(r.total.used).padEnd(8)}${r.total.free}`,
  );
  if (r.pods.length) {
    lines.push('', 'GPU limits per pod:');
    for (const p of r.pods)
      lines.push(
        `  ${p.namespace}/${p.name}: ${p.gpus} GPU(s)${p.node ? ` on ${p.node}` : ' (not scheduled)'}${p.phase ? `, ${p.phase}` : ''}`,
      );
    lines.push('', 'GPU limits per namespace:');
    for (const [ns, g] of Object.entries(r.namespaces).sort()) lines.push(`  ${ns}: ${g} GPU(s)`);
  } else {
    lines.push('', 'No pod holds a GPU.');
  }
  if (r.pendingGpus) lines.push('', `${r.pendingGpus} GPU(s) requested by pods that are not scheduled yet.`);
  return lines.join('\n');
}
