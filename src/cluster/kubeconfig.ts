/**
 * Where the Kubernetes configuration comes from, like kubectl: KUBECONFIG (a path list), else
 * ~/.kube/config, else the in-cluster service account. Light on purpose (no client library), so
 * the lab can decide whether a cluster is worth probing before it loads the cluster client.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, delimiter } from 'node:path';

/** The kubeconfig files that exist: KUBECONFIG's list, or ~/.kube/config. */
export function kubeconfigFiles(): string[] {
  const env = process.env.KUBECONFIG;
  const files = env ? env.split(delimiter).filter(Boolean) : [join(homedir(), '.kube', 'config')];
  return files.filter((f) => existsSync(f));
}

/** Where the configuration would be read from, for messages; '' when there is none. */
export function kubeconfigSource(opts: { readonly kubeconfig?: string } = {}): string {
  if (opts.kubeconfig) return opts.kubeconfig;
  if (process.env.KUBECONFIG) return `KUBECONFIG=${process.env.KUBECONFIG}`;
  const p = join(homedir(), '.kube', 'config');
  if (existsSync(p)) return p;
  if (process.env.KUBERNETES_SERVICE_HOST) return 'in-cluster service account';
  return '';
}
