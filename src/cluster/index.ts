/**
 * The cluster target's public surface, for the lab engine, the router (`router --discover`)
 * and the CLI commands.
 *
 * Choosing the default target (fast, never throws):
 *   const { reachable, reason } = await probeCluster({ context, namespace }, signal);
 *
 * The router in place of the Dynamo frontend:
 *   const fw = await forwardWorkers('app.kubernetes.io/name=dynamo-lab-worker', { context, namespace, signal });
 *   fw.workers  // [{ pod, httpUrl: 'http://127.0.0.1:<p>', zmqUrl: 'tcp://127.0.0.1:<q>' }, ...]
 *   await fw.close();
 * (or discoverWorkers(selector, opts) + portForwardPods(cluster, pods, { ports }) for control.)
 * Note: a forwarded stream was not closed when the pod side closed (seen with kwok; the port-forward protocol
 * has no half-close); HTTP and ZMQ clients that keep their connection open are unaffected.
 *
 * The lab frontend's URL: await nodePortUrl({ context, namespace })  // http://<node IP>:30200
 */
export {
  loadKubeContext,
  probeCluster,
  connect,
  Cluster,
  DEFAULT_NAMESPACE,
  FIELD_MANAGER,
  type KubeOptions,
  type KubeContext,
  type ProbeResult,
} from './kube.js';
export { ClusterError, explainApiError } from './errors.js';
export {
  discoverWorkers,
  podWorkerEndpoints,
  type PodWorker,
  portForwardPods,
  forwardWorkers,
  nodePortUrl,
  type WorkerPod,
  type ForwardedWorker,
  type PortForwardHandle,
  type DiscoverOptions,
  type ForwardOptions,
} from './portforward.js';
export { gpuReport, formatGpuReport, type GpuReport } from './gpu.js';
export { discoverDgdApi, serverSideApply, ensureNamespace } from './apply.js';
export { CHARTS, installPlan, runHelm, helmBin } from './helm.js';
export { waitFor, type WaitTarget, type WaitResult } from './wait.js';
export { runDoctor, type DoctorReport, type Check } from './doctor.js';
export { planCleanup, runCleanup } from './cleanup.js';
export { selectPods, readLogs, followLogs, compileGrep, LOG_PATTERNS } from './logs.js';
export {
  frontendArgs,
  renderDgd,
  renderNodePortService,
  renderWorkersDeployment,
  nodePortServiceName,
  DEFAULT_DGD_NAME,
  DEFAULT_MODEL,
  DEFAULT_WORKERS,
  DEFAULT_NODE_PORT,
  DEFAULT_RELEASE,
  WORKERS_SELECTOR,
  LABEL_DGD,
  LABEL_COMPONENT,
  LABEL_COMPONENT_TYPE,
} from './manifests.js';
