/**
 * The Dynamo release table: everything that differs between the Dynamo releases the labs
 * support, as data in one place. Code asks `releaseInfo(v)` instead of comparing versions
 * itself; tests check the labs, manifests and log presets against this table.
 *
 * Sources (facts only): Dynamo's CRDs at v0.5.0, v0.7.1, v0.8.0, v1.0.2 and main@2026-08
 * (../shared/data/crds), the ai-dynamo 1.6.1 frontend's `--help`
 * (../shared/reference/dynamo-1.6.1-frontend-help.txt), the router's log statements
 * (`tracing::info!/debug!` in lib/llm/src/kv_router and lib/kv-router) and the metric names in
 * lib/runtime/src/metrics/prometheus_names.rs. Entries marked `inferred` were not read at that
 * tag; they carry the neighbouring release's value.
 */
import type { DgdVersion } from './manifests.js';

export type ReleaseId = '0.5' | '0.7' | '0.8' | '1.0' | '1.2' | '1.6';

/** How the frontend's KV cost knobs are passed. */
export type RouterKnobStyle =
  /** `--kv-overlap-score-weight W` (before 1.2). */
  | 'weight'
  /** `--router-kv-overlap-score-credit C --router-prefill-load-scale S --router-temperature T` (1.2 to 1.5). */
  | 'credit-flags'
  /** The three knobs in a `--router-policy-config` YAML; the flags are deprecated (1.6, removed in 1.7). */
  | 'policy-config';

export type LogLevel = 'info' | 'debug' | 'trace';

export interface LogLine {
  readonly id: string;
  /** JavaScript regular expression (case-sensitive, as upstream formats it). */
  readonly regex: string;
  readonly level: LogLevel;
  /** What the line tells a reader. */
  readonly about: string;
}

export interface ReleaseTooling {
  /** The oldest Helm the labs' commands work with. */
  readonly helmMin: string;
  /** Chart versions pinned with `--version` (values checked against them). */
  readonly charts: { readonly nats: string; readonly etcd: string };
}

export interface DynamoRelease {
  readonly id: ReleaseId;
  /** The tag this entry was checked against (or `inferred from …`). */
  readonly checked: string;
  /** Inclusive lower bound [major, minor]; the entry applies up to the next entry's bound. */
  readonly from: readonly [number, number];
  readonly crd: {
    /** DGD versions the release's CRD serves, storage version first. */
    readonly served: readonly DgdVersion[];
    readonly storage: DgdVersion;
    /** File under ../shared/data/crds holding this release's CRD (tests install it). */
    readonly fixture: string;
    /** How the CRD gets into the cluster. */
    readonly install: 'dynamo-crds chart first' | 'platform chart';
  };
  /** v1alpha1 `services.<name>.dynamoNamespace`: honoured, or ignored ({k8sNamespace}-{dgdName} is computed). */
  readonly dynamoNamespace: 'honoured' | 'ignored';
  /** Where the shared model-cache PVC is referenced in a v1alpha1 DGD. */
  readonly pvcShape: 'service.pvc' | 'spec.pvcs+volumeMounts';
  readonly router: {
    readonly knobs: RouterKnobStyle;
    /** Flags the frontend prints a FutureWarning for (still accepted). */
    readonly deprecatedFlags: readonly string[];
    /** How equal-cost workers are chosen at temperature 0. */
    readonly tieBreak: 'smaller tree size, then random' | 'random';
  };
  /** Frontend log lines that show a routing decision, with their levels. */
  readonly decisionLines: readonly LogLine[];
  /** Router metrics on the frontend's /metrics (empty: the frontend exports none). */
  readonly routerMetrics: readonly string[];
  /** The minimum Helm and the NATS / etcd chart versions the labs install for this release. */
  readonly tooling: ReleaseTooling;
  /** Worker registry choice on the operator side. */
  readonly discovery: {
    readonly platformValue?: string;
    readonly annotation?: string;
    readonly note: string;
  };
}

const SELECTED_V0 = 'Selected worker: worker_id=\\d+ dp_rank=\\S+, logit: -?[\\d.]+, cached blocks: \\d+, tree size: \\d+';
const FORMULA_V0 = 'Formula for worker_id=\\d+(?: dp_rank=\\S+)? with \\d+ cached blocks: -?[\\d.]+ = ';
const SELECTED_V16 =
  'Selected worker: worker_type=[\\w-]+, worker_id=\\d+ dp_rank=\\S+, logit: -?[\\d.]+, effective cached blocks: [\\d.]+';
/**
 * What the ai-dynamo 1.6.1 frontend really prints (captured from the peers venv): the message
 * "Selected worker" with structured fields, colour codes between them (logs.ts strips those).
 */
const SELECTED_V16_FIELDS = 'Selected worker router_mode="kv" .*worker_id=\\d+ worker_type=[\\w-]+ dp_rank=\\d+ logit=-?[\\d.]+';

const ROUTER_METRICS = [
  'dynamo_component_router_requests_total',
  'dynamo_component_router_time_to_first_token_seconds',
  'dynamo_component_router_inter_token_latency_seconds',
  'dynamo_component_router_input_sequence_tokens',
  'dynamo_component_router_output_sequence_tokens',
  'dynamo_component_router_kv_hit_rate',
] as const;

const V0_LINES_INFO: readonly LogLine[] = [
  { id: 'formula', regex: FORMULA_V0, level: 'info', about: 'cost of each worker: cached blocks and the logit formula' },
  { id: 'selected', regex: SELECTED_V0, level: 'info', about: 'the chosen worker, its logit, cached blocks and tree size' },
];
const V1_LINES: readonly LogLine[] = [
  { id: 'formula', regex: FORMULA_V0, level: 'debug', about: 'cost of each worker: cached blocks and the logit formula' },
  { id: 'selected', regex: SELECTED_V0, level: 'info', about: 'the chosen worker, its logit, cached blocks and tree size' },
];

const ETCD_DISCOVERY = { note: 'Workers register in etcd and KV events travel over NATS (the platform chart installs both).' } as const;

const K8S_DISCOVERY = {
  platformValue: 'dynamo-operator.discoveryBackend',
  annotation: 'nvidia.com/dynamo-discovery-backend',
  note: 'Kubernetes-native discovery by default; the platform value discoveryBackend=etcd (or the per-DGD annotation nvidia.com/dynamo-discovery-backend: etcd) moves the registry to etcd. dynamo-operator.etcdAddr alone only injects ETCD_ENDPOINTS.',
} as const;

/**
 * The tools and charts behind the rows' `tooling`: the Helm the labs need and the NATS and etcd
 * charts they install beside Dynamo's platform, with where each comes from.
 */
export const TOOLING = {
  helm: {
    /** `helm uninstall --ignore-not-found` (used by the labs' cleanup) exists from Helm 3.13. */
    min: '3.13.0',
    why: "`helm uninstall --ignore-not-found` (the labs' cleanup) needs Helm 3.13 or newer",
    /** The version the test tier builds and runs. */
    tested: '3.22.0',
  },
  charts: {
    /** The values in manifests/helm/nats-values.yaml use the 1.x/2.x `config.jetstream.*` keys (written for chart 1.x); checked against 2.14.2. */
    nats: {
      chart: 'nats',
      version: '2.14.2',
      repoName: 'nats',
      repoUrl: 'https://nats-io.github.io/k8s/helm/charts/',
      file: 'nats-2.14.2.tgz',
      valuesWrittenFor: '1.x (config.jetstream.* keys), unchanged in 2.x',
    },
    etcd: {
      chart: 'etcd',
      version: '12.0.20',
      repoName: 'bitnami',
      repoUrl: 'https://charts.bitnami.com/bitnami',
      file: 'etcd-12.0.20.tgz',
      valuesWrittenFor: '12.x',
    },
  },
} as const;

/**
 * What every release row pins today. The labs install NATS and etcd from their own charts (not
 * Dynamo's), with values checked against one version of each, and the cleanup's Helm flag sets
 * the Helm minimum; none of that has changed between the releases in this table. A release that
 * needs another chart or Helm gets its own value in its row.
 */
const LAB_TOOLING: ReleaseTooling = {
  helmMin: TOOLING.helm.min,
  charts: { nats: TOOLING.charts.nats.version, etcd: TOOLING.charts.etcd.version },
};

/**
 * Oldest first. Every entry spells out every field, even where it repeats its neighbour: a row
 * reads as the whole story of one release, and the tests compare the rows field by field.
 */
export const RELEASES: readonly DynamoRelease[] = [
  {
    id: '0.5',
    checked: 'v0.5.0 (CRD); log lines inferred from v0.8.0',
    from: [0, 5],
    crd: { served: ['v1alpha1'], storage: 'v1alpha1', fixture: 'dgd-v0.5.0.yaml.gz', install: 'dynamo-crds chart first' },
    dynamoNamespace: 'honoured',
    pvcShape: 'service.pvc',
    router: { knobs: 'weight', deprecatedFlags: [], tieBreak: 'smaller tree size, then random' },
    decisionLines: V0_LINES_INFO,
    routerMetrics: [],
    tooling: LAB_TOOLING,
    discovery: ETCD_DISCOVERY,
  },
  {
    id: '0.7',
    checked: 'v0.7.1 (CRD); log lines inferred from v0.8.0',
    from: [0, 7],
    crd: { served: ['v1alpha1'], storage: 'v1alpha1', fixture: 'dgd-v0.7.1.yaml.gz', install: 'dynamo-crds chart first' },
    dynamoNamespace: 'honoured',
    pvcShape: 'spec.pvcs+volumeMounts',
    router: { knobs: 'weight', deprecatedFlags: [], tieBreak: 'smaller tree size, then random' },
    decisionLines: V0_LINES_INFO,
    routerMetrics: [],
    tooling: LAB_TOOLING,
    discovery: ETCD_DISCOVERY,
  },
  {
    id: '0.8',
    checked: 'v0.8.0',
    from: [0, 8],
    crd: { served: ['v1alpha1'], storage: 'v1alpha1', fixture: 'dgd-v0.8.0.yaml.gz', install: 'platform chart' },
    dynamoNamespace: 'ignored',
    pvcShape: 'spec.pvcs+volumeMounts',
    router: { knobs: 'weight', deprecatedFlags: [], tieBreak: 'smaller tree size, then random' },
    decisionLines: V0_LINES_INFO,
    routerMetrics: [],
    tooling: LAB_TOOLING,
    discovery: K8S_DISCOVERY,
  },
  {
    id: '1.0',
    checked: 'v1.0.2',
    from: [1, 0],
    crd: { served: ['v1alpha1'], storage: 'v1alpha1', fixture: 'dgd-v1.0.2.yaml.gz', install: 'platform chart' },
    dynamoNamespace: 'ignored',
    pvcShape: 'spec.pvcs+volumeMounts',
    router: { knobs: 'weight', deprecatedFlags: [], tieBreak: 'smaller tree size, then random' },
    decisionLines: V1_LINES,
    routerMetrics: ROUTER_METRICS,
    tooling: LAB_TOOLING,
    discovery: K8S_DISCOVERY,
  },
  {
    id: '1.2',
    checked: 'main@2026-08-21 (1.5.0-dev) for CRD, flags and tie-break; log lines inferred from v1.0.2',
    from: [1, 2],
    crd: { served: ['v1beta1', 'v1alpha1'], storage: 'v1beta1', fixture: 'dgd-main-2026-08.yaml.gz', install: 'platform chart' },
    dynamoNamespace: 'ignored',
    pvcShape: 'spec.pvcs+volumeMounts',
    router: { knobs: 'credit-flags', deprecatedFlags: ['--kv-overlap-score-weight'], tieBreak: 'random' },
    decisionLines: V1_LINES,
    routerMetrics: ROUTER_METRICS,
    tooling: LAB_TOOLING,
    discovery: K8S_DISCOVERY,
  },
  {
    id: '1.6',
    checked: 'ai-dynamo 1.6.1 --help and log line; CRD as main@2026-08',
    from: [1, 6],
    crd: { served: ['v1beta1', 'v1alpha1'], storage: 'v1beta1', fixture: 'dgd-main-2026-08.yaml.gz', install: 'platform chart' },
    dynamoNamespace: 'ignored',
    pvcShape: 'spec.pvcs+volumeMounts',
    router: {
      knobs: 'policy-config',
      deprecatedFlags: [
        '--router-kv-overlap-score-credit',
        '--router-prefill-load-scale',
        '--router-temperature',
        '--router-kv-overlap-score-credit-decay',
        '--router-queue-threshold',
        '--router-queue-policy',
        '--load-aware',
      ],
      tieBreak: 'random',
    },
    decisionLines: [
      {
        id: 'selected',
        regex: SELECTED_V16_FIELDS,
        level: 'info',
        about: 'the chosen worker, its type and logit, as structured fields (the 1.6.1 frontend as released)',
      },
      {
        id: 'selected',
        regex: SELECTED_V16,
        level: 'info',
        about:
          'the chosen worker, its type, logit and effective cached blocks (the form quoted from the 1.6 source; not seen from the 1.6.1 wheel)',
      },
    ],
    routerMetrics: ROUTER_METRICS,
    tooling: LAB_TOOLING,
    discovery: K8S_DISCOVERY,
  },
];

/** Parse "0.8.0", "v1.2.1", "1.2.0-rc1" into [major, minor, patch]; undefined if not a version. */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(v.trim());
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d) return d < 0 ? -1 : 1;
  }
  return 0;
}

/**
 * The table entry for a Dynamo release string. Unknown tags ("latest", "main") and releases
 * newer than the table get the newest entry; releases older than 0.5 the oldest.
 */
export function releaseInfo(v: string): DynamoRelease {
  const p = parseVersion(v);
  if (!p) return RELEASES[RELEASES.length - 1]!;
  let found = RELEASES[0]!;
  for (const r of RELEASES) if (compareVersions(p, r.from) >= 0) found = r;
  return found;
}

/** A regex source matching every decision line of a release (or of all releases). */
export function decisionPattern(release?: string): string {
  const lines = release ? releaseInfo(release).decisionLines : RELEASES.flatMap((r) => r.decisionLines);
  return [...new Set(lines.map((l) => l.regex))].join('|');
}

/** The Helm minimum of a release's row; without a release, the strictest over the table. */
export function helmMinimum(release?: string): string {
  if (release) return releaseInfo(release).tooling.helmMin;
  return RELEASES.map((r) => r.tooling.helmMin).reduce((a, b) => (compareVersions(parseVersion(a)!, parseVersion(b)!) >= 0 ? a : b));
}

/** Does `helm version --short` output ("v3.22.0+g…", "v3.12") satisfy the table's minimum? */
export function helmVersionOk(versionOutput: string, minimum: string = helmMinimum()): { ok: boolean; version?: string } {
  const m = /v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(versionOutput);
  if (!m) return { ok: false };
  const have = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  const min = parseVersion(minimum)!;
  return { ok: compareVersions(have, min) >= 0, version: `${m[1]}.${m[2]}${m[3] !== undefined ? `.${m[3]}` : ''}` };
}

/** The frontend's KV knobs in the form the release takes. */
export interface RouterKnobs {
  /** Before 1.2 `--kv-overlap-score-weight`; from 1.2 the prefill load scale it maps to. */
  readonly overlapWeight?: number;
  /** `overlap_score_credit` (1.2+). */
  readonly overlapCredit?: number;
  readonly temperature?: number;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? n.toFixed(1) : String(n);
}

/** Where the operator-mounted policy file lives in the frontend container (1.6+). */
export const POLICY_CONFIG_MOUNT = '/etc/dynamo-lab/router-policy';
export const POLICY_CONFIG_FILE = 'policy.yaml';

/** The worker-selection instance the 1.6+ policy file defines ("default" is reserved). */
export const POLICY_INSTANCE = 'dynamo-lab';
/** Dynamo's built-in cost function as a worker-selection policy type (1.6.1). */
export const POLICY_TYPE = 'dynamo-default-cost-fn';

/**
 * The `--router-policy-config` document for 1.6+: one worker-selection instance of Dynamo's
 * built-in cost function carrying the three knobs as its parameters (they replace the
 * deprecated flags), selected for aggregated workers. Checked against the ai-dynamo 1.6.1
 * frontend (test/peers/dynamo.test.ts): it refuses the instance name "default" ("reserved for
 * Dynamo's built-in selector") and the type "default" (the linked types are
 * dynamo-default-cost-fn, dynamo-two-tier-cost-fn, thunderagent), rejects unknown parameter
 * names, and the file below starts a frontend whose logit follows prefill_load_scale.
 */
export function routerPolicyConfig(k: RouterKnobs): Record<string, unknown> {
  return {
    worker_selection: {
      aggregated: POLICY_INSTANCE,
      instances: [
        {
          name: POLICY_INSTANCE,
          type: POLICY_TYPE,
          parameters: {
            overlap_score_credit: k.overlapCredit ?? 1,
            prefill_load_scale: k.overlapWeight ?? 1,
            router_temperature: k.temperature ?? 0,
          },
        },
      ],
    },
  };
}

/** `python -m dynamo.frontend` routing arguments for a release. */
export function routerArgs(release: string, mode: string, k: RouterKnobs): string[] {
  const args = ['--http-port', '8000', '--router-mode', mode];
  if (mode !== 'kv') return args;
  switch (releaseInfo(release).router.knobs) {
    case 'weight':
      args.push('--kv-overlap-score-weight', fmt(k.overlapWeight ?? 1));
      if (k.temperature !== undefined) args.push('--router-temperature', fmt(k.temperature));
      break;
    case 'credit-flags':
      args.push('--router-kv-overlap-score-credit', fmt(k.overlapCredit ?? 1), '--router-prefill-load-scale', fmt(k.overlapWeight ?? 1));
      if (k.temperature !== undefined) args.push('--router-temperature', fmt(k.temperature));
      break;
    case 'policy-config':
      args.push('--router-policy-config', `${POLICY_CONFIG_MOUNT}/${POLICY_CONFIG_FILE}`);
      break;
  }
  return args;
}
