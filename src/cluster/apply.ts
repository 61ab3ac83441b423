/**
 * Server-side apply (field manager "dynamo-lab", force) and the DGD API-version discovery:
 * the cluster's served versions of nvidia.com decide between the v1alpha1 shape
 * (spec.services) and the v1beta1 shape (spec.components).
 */
import * as k8s from '@kubernetes/client-node';
import type { Cluster } from './kube.js';
import { FIELD_MANAGER, MANAGED_BY_LABEL } from './kube.js';
import { ClusterError, explainApiError } from './errors.js';
import { DGD_GROUP, DGD_PLURAL, type DgdVersion, type KubeObject } from './manifests.js';

export interface DgdApi {
  /** Versions of nvidia.com that serve dynamographdeployments. */
  served: DgdVersion[];
  /** The version we will use (v1beta1 when served, else v1alpha1). */
  version: DgdVersion;
}

const KNOWN: readonly DgdVersion[] = ['v1beta1', 'v1alpha1'];

const CRD_MISSING_TRY =
  'Install the Dynamo platform (it installs the CRDs): `helm install dynamo-platform dynamo-platform-<version>.tgz -n dynamo-system --create-namespace` (see the Dynamo installation guide), then run `dynamo-lab doctor`. No cluster at hand? `dynamo-lab start --target local`.';

/**
 * Which DGD versions does the cluster serve? Uses API discovery (allowed to every authenticated
 * user), not the CRD object (reading CRDs needs cluster-wide rights).
 */
export async function discoverDgdApi(cluster: Cluster, prefer?: DgdVersion): Promise<DgdApi> {
  const apis = cluster.ctx.kc.makeApiClient(k8s.ApisApi);
  const groups = await cluster.call({ verb: 'get', resource: 'API discovery (/apis)' }, () => apis.getAPIVersions());
  const group = groups.groups.find((g) => g.name === DGD_GROUP);
  const served: DgdVersion[] = [];
  if (group) {
    for (const v of KNOWN) {
      if (!group.versions.some((gv) => gv.version === v)) continue;
      const custom = cluster.ctx.kc.makeApiClient(k8s.CustomObjectsApi);
      const res = (await cluster.call({ verb: 'get', resource: `API discovery (/apis/${DGD_GROUP}/${v})` }, () =>
        custom.getAPIResources({ group: DGD_GROUP, version: v }),
      )) as k8s.V1APIResourceList;
      if (res.resources.some((r) => r.name === DGD_PLURAL)) served.push(v);
    }
  }
  if (served.length === 0) {
    throw new ClusterError(
      `The DynamoGraphDeployment CRD (${DGD_PLURAL}.${DGD_GROUP}) is not installed on this cluster (context "${cluster.ctx.contextName}").`,
      CRD_MISSING_TRY,
      404,
      'CRDMissing',
    );
  }
  if (prefer) {
    if (!served.includes(prefer))
      throw new ClusterError(
        `The cluster does not serve ${DGD_GROUP}/${prefer} for DynamoGraphDeployments (it serves ${served.join(', ')}).`,
        `Use --api-version ${served[0]}.`,
      );
    return { served, version: prefer };
  }
  return { served, version: served.includes('v1beta1') ? 'v1beta1' : 'v1alpha1' };
}

/** Server-side apply one object (creates or updates; our field manager owns what we set). */
export async function serverSideApply<T extends KubeObject>(cluster: Cluster, obj: T, resource: string): Promise<T> {
  try {
    return (await cluster.objects.patch(
      obj as unknown as k8s.KubernetesObject,
      undefined,
      undefined,
      FIELD_MANAGER,
      true,
      k8s.PatchStrategy.ServerSideApply,
    )) as unknown as T;
  } catch (err) {
    const e = explainApiError(
      err,
      { verb: 'apply (patch)', resource, name: obj.metadata.name, namespace: obj.metadata.namespace },
      cluster.ctx.server,
    );
    // KubernetesObjectApi wraps discovery failures in plain Errors.
    if (/Failed to fetch resource metadata/.test((err as Error).message ?? '')) {
      throw new ClusterError(`The cluster does not know ${obj.apiVersion} ${obj.kind}: ${(err as Error).message}`, CRD_MISSING_TRY, 404);
    }
    throw e;
  }
}

/** Create the namespace if it does not exist (labelled as ours, so cleanup --all may remove it). */
export async function ensureNamespace(cluster: Cluster, name: string): Promise<'created' | 'exists'> {
  const existing = await cluster.getOrUndefined({ verb: 'get', resource: 'namespaces', name }, () => cluster.core.readNamespace({ name }));
  if (existing) return 'exists';
  try {
    await cluster.core.createNamespace({ body: { metadata: { name, labels: { [MANAGED_BY_LABEL]: 'dynamo-lab' } } } });
    return 'created';
  } catch (err) {
    if ((err as { code?: number }).code === 409) return 'exists';
    throw explainApiError(err, { verb: 'create', resource: 'namespaces', name }, cluster.ctx.server);
  }
}
