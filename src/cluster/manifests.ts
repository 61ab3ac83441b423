/**
 * Rendering the objects `deploy` sends: the DynamoGraphDeployment (v1alpha1 or v1beta1 shape),
 * the NodePort Service, the HF token Secret and the plain-vLLM worker Deployment. Templates
 * live in manifests/ as YAML; they are parsed first and placeholders are substituted in the
 * parsed tree, so no value is ever spliced into YAML text.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { packagePath } from '../base/paths.js';
import { DEFAULT_MODEL } from '../tokenizer/index.js';
import { MANAGED_BY_LABEL } from './kube.js';
import { ClusterInputError } from './errors.js';
import { POLICY_CONFIG_FILE, POLICY_CONFIG_MOUNT, releaseInfo, routerArgs, routerPolicyConfig, type RouterKnobs } from './releases.js';

export type DgdVersion = 'v1alpha1' | 'v1beta1';
export type RouterMode = 'kv' | 'round-robin' | 'random';

export const DGD_GROUP = 'nvidia.com';
export const DGD_PLURAL = 'dynamographdeployments';
export const DEFAULT_DGD_NAME = 'vllm-kv-demo';
export { DEFAULT_MODEL };
export const DEFAULT_WORKERS = 2;
export const DEFAULT_NODE_PORT = 30200;
/** The Dynamo release the lab notebooks were written against (RELEASE_VERSION in lab 000). */
export const DEFAULT_RELEASE = '0.8.0';
export const DEFAULT_VLLM_IMAGE = 'vllm/vllm-openai:v0.11.0';
export const HF_SECRET_NAME = 'hf-token-secret';
export const DEFAULT_NATS_URL = 'nats://nats.nats-system:4222';
const DEFAULT_CACHE_PATH = '/data/huggingface-cache';
export const WORKERS_DEPLOYMENT_NAME = 'dynamo-lab-workers';
export const WORKERS_SELECTOR = 'app.kubernetes.io/name=dynamo-lab-worker';
const LAB_LABEL = 'dynamo-lab/lab';

/** Pod labels the Dynamo operator puts on DGD pods (dynamo-facts §8). */
export const LABEL_DGD = 'nvidia.com/dynamo-graph-deployment-name';
export const LABEL_COMPONENT = 'nvidia.com/dynamo-component';
export const LABEL_COMPONENT_TYPE = 'nvidia.com/dynamo-component-type';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

type Vars = Record<string, unknown>;
const WHOLE = /^\{\{\s*([A-Z0-9_]+)\s*\}\}$/;
const INLINE = /\{\{\s*([A-Z0-9_]+)\s*\}\}/g;

function substitute(node: unknown, vars: Vars, file: string): unknown {
  if (typeof node === 'string') {
    const whole = WHOLE.exec(node);
    if (whole) {
      const key = whole[1]!;
      if (!(key in vars)) throw new Error(`${file}: no value for {{ ${key} }}`);
      return vars[key];
    }
    return node.replace(INLINE, (_m, key: string) => {
      if (!(key in vars)) throw new Error(`${file}: no value for {{ ${key} }}`);
      return String(vars[key]);
    });
  }
  if (Array.isArray(node)) return node.map((n) => substitute(n, vars, file));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      const s = substitute(v, vars, file);
      // A placeholder that resolves to undefined removes the key (e.g. no HF secret).
      if (s !== undefined) out[k] = s;
    }
    return out;
  }
  return node;
}

/** Render one template file from manifests/ with the given variables. */
function renderTemplate(relPath: string, vars: Vars): KubeObject {
  const file = packagePath('manifests', relPath);
  const doc = parse(readFileSync(file, 'utf8')) as unknown;
  return substitute(doc, vars, relPath) as KubeObject;
}

export interface RouterArgsOptions extends RouterKnobs {
  readonly mode: RouterMode;
  readonly release: string;
}

/**
 * `python -m dynamo.frontend` arguments for the Dynamo release in use, in the form the release
 * table (releases.ts) names: `--kv-overlap-score-weight` before 1.2, the credit/scale flags in
 * 1.2-1.5, and `--router-policy-config <mounted file>` from 1.6 (the flags are deprecated there).
 */
export function frontendArgs(o: RouterArgsOptions): string[] {
  return routerArgs(o.release, o.mode, o);
}

export interface DeploySpec {
  readonly name: string;
  readonly namespace: string;
  readonly version: DgdVersion;
  readonly release: string;
  readonly image?: string;
  readonly model: string;
  readonly workers: number;
  readonly router: RouterMode;
  readonly overlapWeight?: number;
  readonly overlapCredit?: number;
  readonly temperature?: number;
  /** Per-DGD worker registry override (0.8+: annotation nvidia.com/dynamo-discovery-backend). */
  readonly discoveryBackend?: 'kubernetes' | 'etcd';
  readonly nodePort: number;
  readonly natsUrl?: string;
  /** Reference the HF token Secret from the workers. */
  readonly hfSecret: boolean;
  readonly cachePath?: string;
}

function labLabels(): Record<string, string> {
  return { [MANAGED_BY_LABEL]: 'dynamo-lab', [LAB_LABEL]: 'kv-routing' };
}

function dynamoImage(release: string): string {
  return `nvcr.io/nvidia/ai-dynamo/vllm-runtime:${release.replace(/^v/, '')}`;
}

/** The NodePort Service's name: lab 000 calls it vllm-kv-frontend-np for vllm-kv-demo. */
export function nodePortServiceName(dgdName: string): string {
  return dgdName === DEFAULT_DGD_NAME ? 'vllm-kv-frontend-np' : `${dgdName}-frontend-np`;
}

function env(pairs: Array<[string, string | undefined]>): Array<{ name: string; value: string }> {
  return pairs.filter((p): p is [string, string] => p[1] !== undefined && p[1] !== '').map(([name, value]) => ({ name, value }));
}

/** The ConfigMap holding the 1.6+ router policy file; undefined when the release takes flags. */
function policyConfigMapName(dgdName: string): string {
  return `${dgdName}-router-policy`;
}

function usesPolicyConfig(s: Pick<DeploySpec, 'release' | 'router'>): boolean {
  return s.router === 'kv' && releaseInfo(s.release).router.knobs === 'policy-config';
}

function policyText(s: DeploySpec): string {
  return stringify(routerPolicyConfig(s));
}

/**
 * The frontend reads `--router-policy-config` once, at start-up, and the operator does not roll
 * a pod when only a mounted ConfigMap changes. So the policy's digest goes into the frontend's
 * environment: new knobs change the pod template, the operator replaces the frontend pod and
 * `deploy` waits for the new one.
 */
export const POLICY_DIGEST_ENV = 'DYNAMO_LAB_ROUTER_POLICY_SHA256';

function policyDigest(s: DeploySpec): string {
  return createHash('sha256').update(policyText(s)).digest('hex').slice(0, 16);
}

export function renderPolicyConfigMap(s: DeploySpec): KubeObject | undefined {
  if (!usesPolicyConfig(s)) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: policyConfigMapName(s.name), namespace: s.namespace, labels: labLabels() },
    data: { [POLICY_CONFIG_FILE]: policyText(s) },
  };
}

export function renderDgd(s: DeploySpec): KubeObject {
  const rel = releaseInfo(s.release);
  const policy = usesPolicyConfig(s);
  const frontendEnv = env([
    ['DYN_ROUTER_MODE', s.router],
    ['NATS_SERVER', s.natsUrl],
    ['DYN_LOG', 'info'],
    [POLICY_DIGEST_ENV, policy ? policyDigest(s) : undefined],
  ]);
  const workerEnv = env([
    ['NATS_SERVER', s.natsUrl],
    ['DYN_LOG', 'info'],
  ]);
  const annotations: Record<string, string> = {};
  if (s.discoveryBackend && rel.discovery.annotation) annotations[rel.discovery.annotation] = s.discoveryBackend;
  const vars: Vars = {
    NAME: s.name,
    NAMESPACE: s.namespace,
    LABELS: labLabels(),
    ANNOTATIONS: Object.keys(annotations).length ? annotations : undefined,
    // Honoured before 0.8; from 0.8 the operator computes {k8sNamespace}-{dgdName} and ignores it.
    DYNAMO_NAMESPACE: rel.dynamoNamespace === 'honoured' ? s.name : undefined,
    IMAGE: s.image ?? dynamoImage(s.release),
    WORKERS: s.workers,
    FRONTEND_ARGS: frontendArgs({
      mode: s.router,
      release: s.release,
      overlapWeight: s.overlapWeight,
      overlapCredit: s.overlapCredit,
      temperature: s.temperature,
    }),
    FRONTEND_ENV: frontendEnv,
    FRONTEND_VOLUMES: policy ? [{ name: 'router-policy', configMap: { name: policyConfigMapName(s.name) } }] : undefined,
    FRONTEND_VOLUME_MOUNTS: policy ? [{ name: 'router-policy', mountPath: POLICY_CONFIG_MOUNT, readOnly: true }] : undefined,
    WORKER_ENV: workerEnv,
    WORKER_ARGS: ['--model', s.model, '--tensor-parallel-size', '1', '--enable-prefix-caching'],
    HF_SECRET: s.hfSecret ? HF_SECRET_NAME : undefined,
    WORKER_ENV_FROM: s.hfSecret ? [{ secretRef: { name: HF_SECRET_NAME } }] : undefined,
    CACHE_PATH: s.cachePath ?? DEFAULT_CACHE_PATH,
  };
  return renderTemplate(`dgd/${s.version}/vllm-kv-demo.yaml`, vars);
}

export function renderNodePortService(s: Pick<DeploySpec, 'name' | 'namespace' | 'nodePort'>): KubeObject {
  return renderTemplate('dgd/frontend-nodeport.yaml', {
    SERVICE_NAME: nodePortServiceName(s.name),
    NAMESPACE: s.namespace,
    NAME: s.name,
    NODE_PORT: s.nodePort,
    LABELS: labLabels(),
  });
}

export interface WorkersSpec {
  readonly namespace: string;
  readonly name?: string;
  readonly model: string;
  readonly workers: number;
  readonly image?: string;
  readonly hfSecret: boolean;
  readonly cachePath?: string;
}

/** vLLM OpenAI servers publishing KV events over ZMQ on 5557 (for `router --discover`). */
export function renderWorkersDeployment(s: WorkersSpec): KubeObject {
  const kvEvents = JSON.stringify({ enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://*:5557', topic: 'kv-events' });
  return renderTemplate('workers/vllm-kv-events-workers.yaml', {
    NAME: s.name ?? WORKERS_DEPLOYMENT_NAME,
    NAMESPACE: s.namespace,
    LABELS: labLabels(),
    WORKERS: s.workers,
    VLLM_IMAGE: s.image ?? DEFAULT_VLLM_IMAGE,
    VLLM_ARGS: [s.model, '--host', '0.0.0.0', '--port', '8000', '--enable-prefix-caching', '--kv-events-config', kvEvents],
    WORKER_ENV: env([['VLLM_LOGGING_LEVEL', 'INFO']]),
    WORKER_ENV_FROM: s.hfSecret ? [{ secretRef: { name: HF_SECRET_NAME } }] : undefined,
    CACHE_PATH: s.cachePath ?? DEFAULT_CACHE_PATH,
  });
}

/** The HF token Secret. The token is only ever in this object's stringData. */
export function renderHfSecret(namespace: string, token: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: HF_SECRET_NAME, namespace, labels: labLabels() },
    type: 'Opaque',
    stringData: { HF_TOKEN: token },
  };
}

/** A copy safe to print: Secret values replaced by a mask. */
export function maskSecrets(obj: KubeObject): KubeObject {
  if (obj.kind !== 'Secret') return obj;
  const copy = structuredClone(obj) as KubeObject & { stringData?: Record<string, string>; data?: Record<string, string> };
  for (const field of ['stringData', 'data'] as const) {
    const m = copy[field];
    if (m) for (const k of Object.keys(m)) m[k] = '***';
  }
  return copy;
}

export function toYaml(objs: readonly KubeObject[]): string {
  return objs.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

/** REST path of an object for messages and dry-run output. */
export function objectPath(o: KubeObject, plural: string): string {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const ns = o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
  return `${base}${ns}/${plural}/${o.metadata.name}`;
}

export function parseRouterMode(v: string | undefined): RouterMode {
  const m = (v ?? 'kv').toLowerCase();
  if (m === 'kv' || m === 'round-robin' || m === 'random') return m;
  throw new ClusterInputError(`the router mode must be "kv", "round-robin" or "random", got "${v}"`, 'router');
}
