/**
 * Waiting for a deployment: the DGD's Ready condition and its pods (by the operator's labels)
 * becoming Ready, with live progress for people on stderr. Lists first, then watches from the
 * list's resourceVersion; every watch ends after at most `watchSeconds` (or when the server
 * closes it, or on 410 Expired) and is re-established after a fresh list, so a long wait
 * survives API-server timeouts. On timeout the error says why pods are not ready (Pending and
 * unschedulable, image pulls, crash loops, probes) with their recent events.
 */
import * as k8s from '@kubernetes/client-node';
import type { Cluster } from './kube.js';
import { ClusterError } from './errors.js';

export interface PodState {
  name: string;
  phase: string;
  ready: boolean;
  /** Short reason when not ready: "Unschedulable: 0/2 nodes ...", "ImagePullBackOff", ... */
  problem?: string;
  restarts: number;
  component?: string;
  /** creationTimestamp in ms. */
  created?: number;
}

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  /** The condition (or status.observedGeneration) predates the object's current generation. */
  stale?: boolean;
}

export interface WaitTarget {
  /** Watch this custom object's Ready condition (omit for plain pods, e.g. a Deployment). */
  readonly object?: { group: string; version: string; plural: string; name: string };
  readonly namespace: string;
  readonly labelSelector: string;
  readonly expectedPods: number;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** Called with a one-line status whenever it changes (and every 30 s). */
  readonly onProgress?: (line: string) => void;
  /** Seconds per watch before it is re-established (default 50). */
  readonly watchSeconds?: number;
  /** Called as each watch round starts (1, 2, …), after the fresh list that precedes it. */
  readonly onWatch?: (round: number) => void;
  /** Label that names a pod's component, for the progress line. */
  readonly componentLabel?: string;
  /**
   * A component whose pods must be replaced (its spec just changed): done only when every pod
   * of it was created at or after `since` (ms), so the old, still-Ready pod does not count.
   * `kubectl wait --for=condition=ready` after a patch can return on that old pod.
   */
  readonly replaced?: { readonly component: string; readonly since: number };
}

export interface WaitResult {
  readonly ready: boolean;
  readonly pods: PodState[];
  readonly condition?: Condition;
  readonly elapsedMs: number;
  /** How many times the watches were (re-)established. */
  readonly watches: number;
}

const BAD_WAITING = new Set([
  'ImagePullBackOff',
  'ErrImagePull',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'CreateContainerError',
  'InvalidImageName',
  'RunContainerError',
]);

export function podState(p: k8s.V1Pod, componentLabel?: string): PodState {
  const conds = p.status?.conditions ?? [];
  const ready = conds.some((c) => c.type === 'Ready' && c.status === 'True');
  const restarts = (p.status?.containerStatuses ?? []).reduce((t, c) => t + (c.restartCount ?? 0), 0);
  let problem: string | undefined;
  if (!ready) {
    const sched = conds.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    const statuses = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])];
    const waiting = statuses
      .map((c) => c.state?.waiting)
      .find((w) => w?.reason && w.reason !== 'ContainerCreating' && w.reason !== 'PodInitializing');
    const terminated = statuses.map((c) => c.lastState?.terminated ?? c.state?.terminated).find((t) => t && t.exitCode !== 0);
    if (sched) problem = `${sched.reason ?? 'Unschedulable'}: ${sched.message ?? ''}`.trim();
    else if (waiting) problem = `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
    else if (terminated) problem = `container exited with code ${terminated.exitCode}${terminated.reason ? ` (${terminated.reason})` : ''}`;
    else if (p.status?.phase === 'Running') {
      const rc = conds.find((c) => c.type === 'ContainersReady' && c.status === 'False');
      problem = rc?.message ? `not ready: ${rc.message}` : 'running, readiness probe not passing yet';
    } else if (p.metadata?.deletionTimestamp) problem = 'Terminating';
  }
  const created = p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp as unknown as string).getTime() : undefined;
  return {
    name: p.metadata?.name ?? '',
    phase: p.metadata?.deletionTimestamp ? 'Terminating' : (p.status?.phase ?? 'Unknown'),
    ready,
    problem,
    restarts,
    component: componentLabel ? p.metadata?.labels?.[componentLabel] : undefined,
    created,
  };
}

export function isSeriousProblem(s: PodState): boolean {
  if (!s.problem) return false;
  return [...BAD_WAITING].some((r) => s.problem!.startsWith(r)) || s.problem.startsWith('Unschedulable') || s.restarts > 0;
}

function readyCondition(obj: unknown): Condition | undefined {
  const o = obj as
    | {
        metadata?: { generation?: number };
        status?: { observedGeneration?: number; conditions?: Array<Condition & { observedGeneration?: number }> };
      }
    | undefined;
  const c = (o?.status?.conditions ?? []).find((x) => x.type === 'Ready');
  if (!c) return undefined;
  const gen = o?.metadata?.generation;
  const seen = c.observedGeneration ?? o?.status?.observedGeneration;
  return {
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message,
    stale: gen !== undefined && seen !== undefined && seen < gen,
  };
}

/** Pods of the replaced component that predate the change (still to be replaced). */
function oldPods(t: WaitTarget, pods: Map<string, PodState>): PodState[] {
  const r = t.replaced;
  if (!r) return [];
  // One second of slack: creationTimestamp has second resolution.
  return [...pods.values()].filter((p) => p.component === r.component && (p.created === undefined || p.created < r.since - 1000));
}

function summary(t: WaitTarget, pods: Map<string, PodState>, cond: Condition | undefined, hasObject: boolean): string {
  const list = [...pods.values()].sort((a, b) => a.name.localeCompare(b.name));
  const ready = list.filter((p) => p.ready).length;
  const parts: string[] = [];
  if (t.object)
    parts.push(
      hasObject
        ? `${t.object.name} Ready=${cond?.status ?? 'Unknown'}${cond?.reason ? ` (${cond.reason})` : ''}`
        : `${t.object.name}: not created yet`,
    );
  parts.push(`pods ready ${ready}/${t.expectedPods}${list.length !== t.expectedPods ? ` (${list.length} exist)` : ''}`);
  if (cond?.stale) parts.push('Ready condition is from an older generation');
  const old = oldPods(t, pods);
  if (old.length)
    parts.push(`waiting for ${t.replaced!.component} to be replaced (${old.map((p) => p.name).join(', ')} predates the change)`);
  const lines = [parts.join(' · ')];
  for (const p of list)
    if (!p.ready)
      lines.push(
        `    ${p.name}${p.component ? ` [${p.component}]` : ''}: ${p.phase}${p.problem ? ` — ${p.problem}` : ''}${p.restarts ? ` (restarts: ${p.restarts})` : ''}`,
      );
  return lines.join('\n');
}

function done(t: WaitTarget, pods: Map<string, PodState>, cond: Condition | undefined): boolean {
  const ready = [...pods.values()].filter((p) => p.ready).length;
  if (t.replaced && (oldPods(t, pods).length || ![...pods.values()].some((p) => p.component === t.replaced!.component && p.ready)))
    return false;
  return ready >= t.expectedPods && (!t.object || (cond?.status === 'True' && !cond.stale));
}

/** Watch until the target is ready or the deadline passes; never throws on timeout (see `ready`). */
export async function waitFor(cluster: Cluster, t: WaitTarget): Promise<WaitResult> {
  const start = performance.now();
  const deadline = start + t.timeoutMs;
  const watch = new k8s.Watch(cluster.ctx.kc);
  const pods = new Map<string, PodState>();
  let cond: Condition | undefined;
  let hasObject = false;
  let watches = 0;
  let last = '';
  let lastPrint = 0;
  const report = (force = false) => {
    const s = summary(t, pods, cond, hasObject);
    if (t.onProgress && (s !== last || force)) {
      t.onProgress(`[${Math.round((performance.now() - start) / 1000)}s] ${s}`);
      last = s;
      lastPrint = performance.now();
    }
  };
  const heartbeat = setInterval(() => {
    if (performance.now() - lastPrint >= 30_000) report(true);
  }, 5_000);
  try {
    while (!t.signal?.aborted) {
      // 1. Fresh list (also after every watch ends).
      const list = await cluster.call({ verb: 'list', resource: 'pods', namespace: t.namespace }, () =>
        cluster.core.listNamespacedPod({ namespace: t.namespace, labelSelector: t.labelSelector }),
      );
      pods.clear();
      for (const p of list.items) pods.set(p.metadata!.name!, podState(p, t.componentLabel));
      let objRv: string | undefined;
      if (t.object) {
        const o = t.object;
        const obj = await cluster.getOrUndefined(
          { verb: 'get', resource: `${o.plural}.${o.group}`, name: o.name, namespace: t.namespace },
          () =>
            cluster.custom.getNamespacedCustomObject({
              group: o.group,
              version: o.version,
              namespace: t.namespace,
              plural: o.plural,
              name: o.name,
            }),
        );
        hasObject = Boolean(obj);
        cond = readyCondition(obj);
        objRv = (obj as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
      }
      report();
      if (done(t, pods, cond))
        return { ready: true, pods: [...pods.values()], condition: cond, elapsedMs: Math.round(performance.now() - start), watches };
      const remaining = deadline - performance.now();
      if (remaining <= 0) break;

      // 2. Watch pods (and the object) until something ends the round.
      const seconds = Math.max(1, Math.min(t.watchSeconds ?? 50, Math.ceil(remaining / 1000)));
      watches += 1;
      t.onWatch?.(watches);
      const roundStart = performance.now();
      const finished = await new Promise<boolean>((resolve) => {
        const controllers: AbortController[] = [];
        let settled = false;
        const settle = (v: boolean) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          t.signal?.removeEventListener('abort', onAbort);
          for (const c of controllers) c.abort();
          resolve(v);
        };
        const onAbort = () => settle(false);
        t.signal?.addEventListener('abort', onAbort);
        // Client-side guard: the server's timeoutSeconds should end the watch, but a stuck
        // connection must not outlive the round.
        const timer = setTimeout(() => settle(false), seconds * 1000 + 5_000);
        const onEvent = () => {
          report();
          if (done(t, pods, cond)) settle(true);
        };
        const startWatch = (
          path: string,
          query: Record<string, string | number | boolean | undefined>,
          handle: (type: string, obj: unknown) => void,
        ) => {
          watch
            .watch(
              path,
              { ...query, allowWatchBookmarks: true, timeoutSeconds: seconds },
              (type, obj) => {
                if (type === 'BOOKMARK') return;
                if (type === 'ERROR') return settle(false); // e.g. 410 Expired: relist
                handle(type, obj);
                onEvent();
              },
              () => settle(false),
            )
            .then((c) => {
              controllers.push(c);
              if (settled) c.abort();
            })
            .catch(() => settle(false));
        };
        startWatch(
          `/api/v1/namespaces/${t.namespace}/pods`,
          { labelSelector: t.labelSelector, resourceVersion: list.metadata?.resourceVersion },
          (type, obj) => {
            const p = obj as k8s.V1Pod;
            if (type === 'DELETED') pods.delete(p.metadata!.name!);
            else pods.set(p.metadata!.name!, podState(p, t.componentLabel));
          },
        );
        if (t.object) {
          const o = t.object;
          startWatch(
            `/apis/${o.group}/${o.version}/namespaces/${t.namespace}/${o.plural}`,
            { fieldSelector: `metadata.name=${o.name}`, ...(objRv ? { resourceVersion: objRv } : {}) },
            (type, obj) => {
              hasObject = type !== 'DELETED';
              cond = type === 'DELETED' ? undefined : readyCondition(obj);
            },
          );
        }
      });
      if (finished)
        return { ready: true, pods: [...pods.values()], condition: cond, elapsedMs: Math.round(performance.now() - start), watches };
      if (performance.now() >= deadline) break;
      // A watch that ends at once (e.g. refused) must not turn into a busy relist loop.
      if (performance.now() - roundStart < 1000) await new Promise((r) => setTimeout(r, 1000));
    }
    return { ready: false, pods: [...pods.values()], condition: cond, elapsedMs: Math.round(performance.now() - start), watches };
  } finally {
    clearInterval(heartbeat);
  }
}

export interface EventLine {
  object: string;
  type: string;
  reason: string;
  message: string;
  count: number;
  last: string;
}

/** Recent events for the given objects (names in the namespace), newest last. */
async function recentEvents(cluster: Cluster, namespace: string, names: string[], limit = 5): Promise<EventLine[]> {
  const out: EventLine[] = [];
  for (const name of names) {
    const ev = await cluster.getOrUndefined({ verb: 'list', resource: 'events', namespace }, () =>
      cluster.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` }),
    );
    const items = (ev?.items ?? [])
      .map((e) => ({
        object: `${e.involvedObject.kind ?? ''}/${name}`,
        type: e.type ?? '',
        reason: e.reason ?? '',
        message: (e.message ?? '').trim(),
        count: e.count ?? 1,
        last: String(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? ''),
      }))
      .sort((a, b) => a.last.localeCompare(b.last));
    out.push(...items.slice(-limit));
  }
  return out;
}

/** Explain pod problems for people: likely cause and what to do, from the labs' troubleshooting notes. */
export function adviceFor(problem: string): string | undefined {
  if (/Insufficient nvidia\.com\/gpu|nvidia\.com\/gpu/i.test(problem))
    return 'not enough free GPUs: run `dynamo-lab check gpu` to see who holds them, delete other lab deployments, or deploy fewer workers (--workers).';
  if (/Unschedulable/i.test(problem))
    return 'no node can take the pod: see the scheduler message above (taints, node selectors, resources).';
  if (/ImagePullBackOff|ErrImagePull|InvalidImageName/.test(problem))
    return 'the image cannot be pulled: check the release tag (--release must match your Dynamo platform version) and registry credentials (nvcr.io needs an NGC pull secret on some clusters).';
  if (/CrashLoopBackOff|exited with code/.test(problem))
    return 'the container keeps crashing: read its logs (`dynamo-lab logs --component <name>`); common causes are an invalid HF token, a model that does not fit the GPU, or no route to NATS/etcd.';
  if (/CreateContainerConfigError/.test(problem))
    return 'a referenced Secret or ConfigMap is missing (e.g. hf-token-secret): set HF_TOKEN and deploy again.';
  if (/readiness|probe|Unhealthy/i.test(problem))
    return 'the container runs but its probes fail: the model may still be downloading (first start can take minutes); a startup probe that is too short restarts it (lab 004 troubleshooting).';
  return undefined;
}

/** Build the failure message after a wait timed out. */
export async function explainNotReady(cluster: Cluster, t: WaitTarget, r: WaitResult): Promise<ClusterError> {
  const lines: string[] = [];
  const what = t.object ? `DynamoGraphDeployment "${t.object.name}"` : `pods "${t.labelSelector}"`;
  lines.push(`${what} in namespace "${t.namespace}" is not ready after ${Math.round(r.elapsedMs / 1000)}s.`);
  if (t.object) {
    if (!r.condition)
      lines.push('  The DGD has no Ready condition: is the Dynamo operator running and watching this namespace? (`dynamo-lab doctor`)');
    else
      lines.push(
        `  Ready=${r.condition.status}${r.condition.reason ? ` (${r.condition.reason})` : ''}${r.condition.message ? `: ${r.condition.message}` : ''}`,
      );
  }
  const ready = r.pods.filter((p) => p.ready).length;
  lines.push(
    `  Pods ready: ${ready}/${t.expectedPods}${r.pods.length === 0 ? ' (no pods exist yet: the operator has not created them)' : ''}`,
  );
  const bad = r.pods.filter((p) => !p.ready);
  for (const p of bad) {
    lines.push(`  - ${p.name}: ${p.phase}${p.problem ? ` — ${p.problem}` : ''}${p.restarts ? ` (restarts: ${p.restarts})` : ''}`);
    const a = p.problem ? adviceFor(p.problem) : undefined;
    if (a) lines.push(`      why: ${a}`);
  }
  try {
    const names = bad.map((p) => p.name).slice(0, 5);
    if (t.object) names.unshift(t.object.name);
    const events = await recentEvents(cluster, t.namespace, names);
    const warn = events.filter((e) => e.type === 'Warning' || /Failed|BackOff|Unhealthy|FailedScheduling/.test(e.reason));
    if (warn.length) {
      lines.push('  Recent events:');
      for (const e of warn.slice(-10)) lines.push(`    ${e.object}: ${e.reason}: ${e.message}${e.count > 1 ? ` (x${e.count})` : ''}`);
    }
  } catch {
    /* events are a bonus; never hide the main message */
  }
  return new ClusterError(
    lines.join('\n'),
    `Fix the cause above and run the command again (it is idempotent), or wait longer with --timeout. Inspect with \`kubectl get pods -n ${t.namespace} -l ${t.labelSelector}\`.`,
  );
}
