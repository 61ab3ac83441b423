/**
 * Worker discovery and port-forwarding for `dynamo-lab router --discover <selector>`: find
 * Ready worker pods by label selector, open one local listener per pod and port (HTTP 8000,
 * ZMQ KV events 5557) on 127.0.0.1, and forward each accepted connection over the API server
 * (one WebSocket per connection, as kubectl does). Also the NodePort URL of the lab frontend.
 */
import * as k8s from '@kubernetes/client-node';
import * as net from 'node:net';
import type { Cluster, KubeOptions } from './kube.js';
import { connect } from './kube.js';
import { ClusterError } from './errors.js';
import { DEFAULT_DGD_NAME, nodePortServiceName } from './manifests.js';

export interface WorkerPod {
  name: string;
  namespace: string;
  ip?: string;
  node?: string;
  ready: boolean;
  labels: Record<string, string>;
  /** Named container ports (every container), e.g. {http: 8000, "kv-events": 5557}. */
  ports: Record<string, number>;
}

export interface DiscoverOptions extends KubeOptions {
  readonly signal?: AbortSignal;
  /** Include pods that are not Ready (default false). */
  readonly includeNotReady?: boolean;
  /** Reuse an existing connection. */
  readonly cluster?: Cluster;
}

/** Pods matching the label selector in the namespace (Ready ones unless includeNotReady). */
export async function discoverWorkers(selector: string, opts: DiscoverOptions = {}): Promise<WorkerPod[]> {
  const cluster = opts.cluster ?? (await connect(opts, opts.signal));
  const ns = cluster.namespace;
  const list = await cluster.call({ verb: 'list', resource: 'pods', namespace: ns }, () =>
    cluster.core.listNamespacedPod({ namespace: ns, labelSelector: selector }),
  );
  return list.items
    .filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
    .map((p) => ({
      name: p.metadata!.name!,
      namespace: ns,
      ip: p.status?.podIP,
      node: p.spec?.nodeName,
      ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      labels: p.metadata?.labels ?? {},
      ports: Object.fromEntries(
        (p.spec?.containers ?? []).flatMap((c) =>
          (c.ports ?? []).filter((cp) => cp.name).map((cp) => [cp.name!, cp.containerPort] as const),
        ),
      ),
    }))
    .filter((w) => opts.includeNotReady || w.ready)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A worker pod reached directly at its pod IP (`router --discover … --in-cluster`). */
export interface PodWorker {
  pod: string;
  namespace: string;
  httpUrl: string;
  zmqUrl: string;
}

/**
 * Where to reach Ready worker pods from inside the cluster: the pod IP, the container port named
 * `http` (else defaults[0]) and the one named `kv-events` or `zmq` (else defaults[1]). Pods
 * without an IP yet are left out.
 */
export function podWorkerEndpoints(pods: readonly WorkerPod[], defaults: readonly [number, number]): PodWorker[] {
  const out: PodWorker[] = [];
  for (const p of pods) {
    if (!p.ip || !p.ready) continue;
    const host = p.ip.includes(':') ? `[${p.ip}]` : p.ip;
    const http = p.ports.http ?? defaults[0];
    const zmq = p.ports['kv-events'] ?? p.ports.zmq ?? defaults[1];
    out.push({ pod: p.name, namespace: p.namespace, httpUrl: `http://${host}:${http}`, zmqUrl: `tcp://${host}:${zmq}` });
  }
  return out;
}

export interface ForwardedWorker {
  pod: string;
  namespace: string;
  /** http://127.0.0.1:<port> for the worker's OpenAI server (remote 8000). */
  httpUrl: string;
  /** tcp://127.0.0.1:<port> for the worker's ZMQ KV-event publisher (remote 5557). */
  zmqUrl?: string;
  /** All forwards: remote port -> local port. */
  ports: Record<number, number>;
}

export interface PortForwardHandle {
  workers: ForwardedWorker[];
  close(): Promise<void>;
}

export interface ForwardOptions extends DiscoverOptions {
  /** Remote ports (default [8000, 5557]). The first is the HTTP port. */
  readonly ports?: readonly number[];
  /** Called when a forwarded connection fails (pod gone, port closed). */
  readonly onError?: (pod: string, port: number, err: Error) => void;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/**
 * Forward the given pods' ports to 127.0.0.1. Each local listener accepts any number of
 * connections; each becomes its own port-forward stream. close() stops everything.
 */
export async function portForwardPods(
  cluster: Cluster,
  pods: readonly Pick<WorkerPod, 'name' | 'namespace'>[],
  opts: ForwardOptions = {},
): Promise<PortForwardHandle> {
  const ports = opts.ports ?? [8000, 5557];
  const pf = new k8s.PortForward(cluster.ctx.kc, true);
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const workers: ForwardedWorker[] = [];
  try {
    for (const pod of pods) {
      const map: Record<number, number> = {};
      for (const remote of ports) {
        const server = net.createServer((sock) => {
          sockets.add(sock);
          sock.on('close', () => sockets.delete(sock));
          sock.on('error', () => sock.destroy());
          pf.portForward(pod.namespace, pod.name, [remote], sock, null, sock)
            .then((ws) => {
              const w = typeof ws === 'function' ? ws() : ws;
              // Close the WebSocket when the local side goes away, and vice versa: writing
              // after the peer closed would crash the process (client-node #459).
              sock.on('close', () => {
                try {
                  w?.close();
                } catch {
                  /* already closed */
                }
              });
              w?.on?.('close', () => sock.destroy());
              w?.on?.('error', (e: Error) => {
                opts.onError?.(pod.name, remote, e);
                sock.destroy();
              });
            })
            .catch((err: Error) => {
              opts.onError?.(pod.name, remote, err);
              sock.destroy();
            });
        });
        servers.push(server);
        map[remote] = await listen(server);
      }
      const http = ports[0]!;
      workers.push({
        pod: pod.name,
        namespace: pod.namespace,
        httpUrl: `http://127.0.0.1:${map[http]}`,
        zmqUrl: map[5557] ? `tcp://127.0.0.1:${map[5557]}` : undefined,
        ports: map,
      });
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
  const onAbort = () => void handle.close();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const handle: PortForwardHandle = {
    workers,
    async close() {
      opts.signal?.removeEventListener('abort', onAbort);
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
  return handle;
}

/** discoverWorkers + portForwardPods: local URLs for every Ready worker pod. */
export async function forwardWorkers(selector: string, opts: ForwardOptions = {}): Promise<PortForwardHandle> {
  const cluster = opts.cluster ?? (await connect(opts, opts.signal));
  const pods = await discoverWorkers(selector, { ...opts, cluster });
  if (!pods.length) {
    throw new ClusterError(
      `No Ready pods match "${selector}" in namespace "${cluster.namespace}".`,
      'Deploy workers first (`dynamo-lab deploy --workers-only`) and check `kubectl get pods -l <selector>`.',
    );
  }
  return portForwardPods(cluster, pods, opts);
}

export interface NodePortOptions extends KubeOptions {
  readonly name?: string;
  readonly service?: string;
  readonly signal?: AbortSignal;
  readonly cluster?: Cluster;
}

/** http://<node InternalIP>:<nodePort> of the lab frontend's NodePort Service. */
export async function nodePortUrl(opts: NodePortOptions = {}): Promise<string> {
  const cluster = opts.cluster ?? (await connect(opts, opts.signal));
  const ns = cluster.namespace;
  const svcName = opts.service ?? nodePortServiceName(opts.name ?? DEFAULT_DGD_NAME);
  const svc = await cluster.getOrUndefined({ verb: 'get', resource: 'services', name: svcName, namespace: ns }, () =>
    cluster.core.readNamespacedService({ name: svcName, namespace: ns }),
  );
  if (!svc)
    throw new ClusterError(
      `The NodePort Service "${svcName}" does not exist in namespace "${ns}".`,
      'Run `dynamo-lab deploy` (it creates the Service), or pass the frontend URL with --url.',
    );
  const port = svc.spec?.ports?.find((p) => p.nodePort)?.nodePort;
  if (!port)
    throw new ClusterError(
      `Service "${svcName}" has no nodePort (type ${svc.spec?.type}).`,
      'Re-run `dynamo-lab deploy` to restore the NodePort Service.',
    );
  const nodes = await cluster.call({ verb: 'list', resource: 'nodes' }, () => cluster.core.listNode());
  const ready = nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  const node = (ready.length ? ready : nodes.items)[0];
  // Lab 000 uses the first node's InternalIP.
  const addr =
    node?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ??
    node?.status?.addresses?.find((a) => a.type === 'ExternalIP')?.address;
  if (!addr)
    throw new ClusterError(
      'No node address found for the NodePort URL.',
      `Use \`kubectl port-forward svc/${svcName} 8000:8000 -n ${ns}\` and --url http://127.0.0.1:8000.`,
    );
  return `http://${addr.includes(':') ? `[${addr}]` : addr}:${port}`;
}
