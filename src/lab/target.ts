/**
 * Choosing the target when the user did not: the cluster when a kubeconfig points at a
 * reachable API server, otherwise the local target.
 */
import { kubeconfigFiles } from '../cluster/kubeconfig.js';
import type { Target } from './types.js';

export interface TargetChoice {
  readonly target: Target;
  readonly reason: string;
}

export async function chooseTarget(opts: { context?: string; namespace?: string; signal: AbortSignal }): Promise<TargetChoice> {
  if (kubeconfigFiles().length === 0)
    return { target: 'local', reason: 'no kubeconfig found, so the lab runs locally with simulated workers' };
  try {
    // Loaded lazily: the cluster client is heavy and only needed when a kubeconfig exists.
    const cluster = await import('../cluster/index.js');
    const probe = await cluster.probeCluster({ context: opts.context, namespace: opts.namespace }, opts.signal);
    if (probe.reachable) return { target: 'cluster', reason: 'the current kube context answers' };
    return { target: 'local', reason: `no cluster is reachable (${probe.reason ?? 'no answer'}), so the lab runs locally` };
  } catch (err) {
    return { target: 'local', reason: `the cluster could not be checked (${(err as Error).message}), so the lab runs locally` };
  }
}
