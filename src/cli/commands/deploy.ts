/**
 * `dynamo-lab deploy`: the lab DynamoGraphDeployment (or plain vLLM workers) with a NodePort Service, then wait until Ready.
 * Results go to stdout (one JSON document with --json), progress to stderr; the work lives in src/cluster/.
 */
import chalk from 'chalk';
import type { Command, CommandContext } from '../command.js';
import { UsageError } from '../../base/errors.js';
import { connect, kubeOptionsFrom, type Cluster } from '../../cluster/kube.js';
import { gpuReport } from '../../cluster/gpu.js';
import { discoverDgdApi } from '../../cluster/apply.js';
import {
  DEFAULT_DGD_NAME,
  DEFAULT_MODEL,
  DEFAULT_NATS_URL,
  DEFAULT_NODE_PORT,
  DEFAULT_RELEASE,
  DEFAULT_WORKERS,
  DEFAULT_VLLM_IMAGE,
  WORKERS_SELECTOR,
  nodePortServiceName,
  parseRouterMode,
  toYaml,
  type DgdVersion,
} from '../../cluster/manifests.js';
import {
  applyPlan,
  buildDgdPlan,
  buildWorkersPlan,
  dgdWaitTarget,
  frontendWillChange,
  hfSecretExists,
  printablePlan,
  waitReady,
  workersWaitTarget,
  type PlannedRequest,
} from '../../cluster/deploy.js';
import { findOperator } from '../../cluster/doctor.js';
import { nodePortUrl } from '../../cluster/portforward.js';
import { asUsage, str, intOpt, numOpt, parseDuration, json, say, ok, warn, loadKubeContextNamespace } from './cluster-options.js';

async function detectRelease(
  cluster: Cluster | undefined,
): Promise<{ release?: string; from: string; operator: 'found' | 'none' | 'unknown' }> {
  if (!cluster) return { from: 'default', operator: 'unknown' };
  try {
    const ops = await findOperator(cluster);
    if (ops !== 'forbidden') {
      const rel = ops.find((o) => o.release)?.release;
      if (rel) return { release: rel, from: `operator image ${ops.find((o) => o.release)!.image}`, operator: 'found' };
      return { from: 'default', operator: ops.length ? 'found' : 'none' };
    }
  } catch {
    /* fall back to the default */
  }
  return { from: 'default', operator: 'unknown' };
}

function printPlan(ctx: CommandContext, plan: PlannedRequest[], header: string): void {
  const shown = printablePlan(plan);
  ctx.stdout.write(`# ${header}\n`);
  shown.forEach((r, i) => {
    ctx.stdout.write(`${i ? '---\n' : ''}# ${r.method} ${r.path}?${r.query}  (Content-Type: ${r.contentType})\n`);
    ctx.stdout.write(toYaml([r.body]));
  });
}

export const deployCommand: Command = {
  name: 'deploy',
  summary: 'Apply the lab DynamoGraphDeployment (server-side, version-aware) + NodePort Service, then wait until Ready',
  usage:
    'dynamo-lab deploy [--name <dgd>] [--router kv|round-robin|random] [--workers <n>] [--model <id>] [--release <x.y.z>] [--dry-run] [--json]',
  options: {
    name: { type: 'string', valueName: 'dgd', description: `DGD name (default ${DEFAULT_DGD_NAME})` },
    router: { type: 'string', valueName: 'mode', description: 'Frontend router mode: kv, round-robin or random (default kv)' },
    workers: { type: 'string', valueName: 'n', description: `vLLM workers, 1 GPU each (default ${DEFAULT_WORKERS})` },
    model: { type: 'string', valueName: 'id', description: `Hugging Face model (default ${DEFAULT_MODEL})` },
    release: {
      type: 'string',
      valueName: 'x.y.z',
      description: `Dynamo release (image tag, router flags); default: the operator's, else ${DEFAULT_RELEASE}`,
    },
    image: { type: 'string', valueName: 'ref', description: 'Container image (default nvcr.io/nvidia/ai-dynamo/vllm-runtime:<release>)' },
    'api-version': {
      type: 'string',
      valueName: 'v',
      description: 'Force the DGD version: v1alpha1 or v1beta1 (default: what the cluster serves, v1beta1 first)',
    },
    'kv-overlap-score-weight': {
      type: 'string',
      valueName: 'w',
      description: 'KV overlap weight (<1.2) / prefill load scale (1.2+; in the router policy file from 1.6) (default 1.0)',
    },
    'router-temperature': {
      type: 'string',
      valueName: 't',
      description: 'Router temperature (flag before 1.6, router policy file from 1.6; default: the frontend default 0)',
    },
    'discovery-backend': {
      type: 'string',
      valueName: 'kubernetes|etcd',
      description:
        "Worker registry for this DGD (0.8+: annotation nvidia.com/dynamo-discovery-backend; etcd needs the platform's etcdAddr)",
    },
    'node-port': { type: 'string', valueName: 'port', description: `NodePort for the frontend (default ${DEFAULT_NODE_PORT})` },
    'nats-url': {
      type: 'string',
      valueName: 'url',
      description: `NATS_SERVER for frontend and workers (default ${DEFAULT_NATS_URL}; "" to omit)`,
    },
    'workers-only': {
      type: 'boolean',
      description: `Deploy plain vLLM workers with ZMQ KV events instead (for \`router --discover ${WORKERS_SELECTOR}\`)`,
    },
    timeout: { type: 'string', valueName: 'duration', description: 'How long to wait for Ready (default 20m)' },
    'no-wait': { type: 'boolean', description: 'Apply and return without waiting' },
    'dry-run': { type: 'boolean', description: 'Print the exact requests and manifests (HF token masked); change nothing' },
  },
  examples: [
    'dynamo-lab deploy --dry-run',
    'dynamo-lab deploy',
    'dynamo-lab deploy --router round-robin --name vllm-rr-demo --node-port 30201',
    'HF_TOKEN=hf_... dynamo-lab deploy --workers 4',
  ],
  async run(values, _positionals, ctx) {
    const name = str(values.name) ?? DEFAULT_DGD_NAME;
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63)
      throw new UsageError(`--name "${name}" is not a valid Kubernetes name (lowercase letters, digits, "-").`);
    const router = asUsage(() => parseRouterMode(str(values.router)));
    const workers = intOpt(values.workers, 'workers', DEFAULT_WORKERS, 1, 64);
    const model = str(values.model) ?? DEFAULT_MODEL;
    const nodePort = intOpt(values['node-port'], 'node-port', DEFAULT_NODE_PORT, 1, 65535);
    const weight = numOpt(values['kv-overlap-score-weight'], 'kv-overlap-score-weight');
    const temperature = numOpt(values['router-temperature'], 'router-temperature');
    const discoveryBackend = str(values['discovery-backend']);
    if (discoveryBackend !== undefined && discoveryBackend !== 'kubernetes' && discoveryBackend !== 'etcd')
      throw new UsageError(`--discovery-backend must be kubernetes or etcd, got "${discoveryBackend}".`);
    const apiVersionFlag = str(values['api-version']);
    if (apiVersionFlag && apiVersionFlag !== 'v1alpha1' && apiVersionFlag !== 'v1beta1')
      throw new UsageError(`--api-version must be v1alpha1 or v1beta1, got "${apiVersionFlag}".`);
    const timeoutMs = parseDuration(str(values.timeout), 'timeout', 20 * 60_000);
    const dryRun = Boolean(values['dry-run']);
    const natsUrl = values['nats-url'] === undefined ? DEFAULT_NATS_URL : str(values['nats-url']) || undefined;
    const hfToken = process.env.HF_TOKEN || undefined;
    const kopts = kubeOptionsFrom(ctx.globals);
    const namespace = loadKubeContextNamespace(kopts);

    // A dry run uses the cluster when it can (to print exactly what would be sent) and works without one.
    let cluster: Cluster | undefined;
    try {
      cluster = await connect(kopts, ctx.signal);
    } catch (err) {
      if (!dryRun) throw err;
      say(
        ctx,
        warn(`note: ${(err as Error).message.split('\n')[0]} — dry run without a cluster: DGD ${apiVersionFlag ?? 'v1alpha1'} assumed.`),
      );
    }
    const hfSecret = Boolean(hfToken) || (cluster ? await hfSecretExists(cluster, namespace) : false);

    if (values['workers-only']) {
      const spec = { namespace, model, workers, image: str(values.image) ?? DEFAULT_VLLM_IMAGE, hfSecret };
      const plan = buildWorkersPlan(spec, hfToken);
      if (dryRun) {
        if (ctx.globals.json) json(ctx, { dryRun: true, requests: printablePlan(plan) });
        else printPlan(ctx, plan, `dynamo-lab deploy --workers-only would send (server-side apply, field manager dynamo-lab):`);
        return;
      }
      const c = cluster!;
      await applyPlan(c, namespace, plan, (m) => say(ctx, m));
      let ready = false;
      if (!values['no-wait']) {
        const r = await waitReady(c, workersWaitTarget(spec, { timeoutMs, signal: ctx.signal, onProgress: (l) => say(ctx, chalk.dim(l)) }));
        ready = r.ready;
      }
      const doc = {
        namespace,
        selector: WORKERS_SELECTOR,
        workers,
        ready,
        next: `dynamo-lab router --discover ${WORKERS_SELECTOR} -n ${namespace}`,
      };
      if (ctx.globals.json) json(ctx, doc);
      else ctx.stdout.write(`${ok('✓')} ${workers} vLLM worker(s) ${ready ? 'ready' : 'applied'}; route to them with: ${doc.next}\n`);
      return;
    }

    let version: DgdVersion;
    let served: DgdVersion[] = [];
    if (cluster) {
      const api = await discoverDgdApi(cluster, apiVersionFlag as DgdVersion | undefined);
      version = api.version;
      served = api.served;
    } else version = (apiVersionFlag as DgdVersion | undefined) ?? 'v1alpha1';
    const explicitRelease = str(values.release);
    const found = await detectRelease(cluster);
    const detected = explicitRelease ? { release: explicitRelease, from: '--release' } : found;
    const release = detected.release ?? DEFAULT_RELEASE;
    if (!explicitRelease)
      say(
        ctx,
        chalk.dim(
          `Dynamo release ${release} (${detected.release ? `from the ${detected.from}` : 'lab default; pass --release to match your platform'})`,
        ),
      );
    const spec = {
      name,
      namespace,
      version,
      release,
      image: str(values.image),
      model,
      workers,
      router,
      overlapWeight: weight,
      temperature,
      discoveryBackend: discoveryBackend as 'kubernetes' | 'etcd' | undefined,
      nodePort,
      natsUrl,
      hfSecret,
    };
    const plan = buildDgdPlan(spec, hfToken);

    if (dryRun) {
      if (ctx.globals.json)
        json(ctx, { dryRun: true, apiVersion: `nvidia.com/${version}`, served, release, router, requests: printablePlan(plan) });
      else
        printPlan(
          ctx,
          plan,
          `dynamo-lab deploy would send (server-side apply, field manager dynamo-lab; DGD nvidia.com/${version}${served.length ? `, cluster serves ${served.join(', ')}` : ''}):`,
        );
      return;
    }
    const c = cluster!;
    if (found.operator === 'none')
      say(
        ctx,
        warn(
          'warning: no Dynamo operator Deployment found: the DGD will be stored but nobody will create its pods (see `dynamo-lab doctor`).',
        ),
      );
    if (natsUrl === DEFAULT_NATS_URL) {
      const nats = await c
        .getOrUndefined({ verb: 'get', resource: 'services', name: 'nats', namespace: 'nats-system' }, () =>
          c.core.readNamespacedService({ name: 'nats', namespace: 'nats-system' }),
        )
        .catch(() => 'unknown' as const);
      if (!nats)
        say(
          ctx,
          warn(
            `warning: no NATS Service at ${DEFAULT_NATS_URL}: run \`dynamo-lab install nats\` first, or pass --nats-url "" for Kubernetes-native discovery.`,
          ),
        );
    }
    // GPU pre-check: warn (the wait below shows the scheduler's view if it really does not fit).
    try {
      const g = await gpuReport(c, workers, name);
      if (!g.enough) {
        say(ctx, warn(`warning: ${g.total.free} GPU(s) free, ${workers} needed; workers will stay Pending.`));
        for (const h of g.holders.filter((x) => !x.ours && x.gpus > 0))
          say(ctx, warn(`  ${h.namespace}/${h.name} holds ${h.gpus} GPU(s): ${h.cleanup.join(' && ')}`));
      }
    } catch {
      /* no right to list nodes/pods cluster-wide: skip the pre-check */
    }
    say(
      ctx,
      `deploying ${namespace}/${name}: DGD nvidia.com/${version}, router ${router}, ${workers} worker(s) × 1 GPU, model ${model}${hfToken ? ', HF token from $HF_TOKEN' : ''}`,
    );
    const dgdObj = plan.find((r) => r.plural === 'dynamographdeployments')!.body;
    const frontendChanges = await frontendWillChange(c, dgdObj, version);
    const since = Date.now();
    const outcome = await applyPlan(c, namespace, plan, (m) => say(ctx, `  ${m}`));
    let ready = false;
    let pods: Array<{ name: string; ready: boolean; phase: string }> = [];
    if (!values['no-wait']) {
      say(ctx, `waiting for ${name} to become Ready (timeout ${Math.round(timeoutMs / 1000)}s; first start downloads the model)…`);
      if (frontendChanges)
        say(
          ctx,
          'the frontend settings changed: waiting for the operator to replace the frontend pod (the old one may still report Ready)',
        );
      const r = await waitReady(
        c,
        dgdWaitTarget(spec, {
          timeoutMs,
          signal: ctx.signal,
          onProgress: (l) => say(ctx, chalk.dim(`  ${l}`)),
          replaced: frontendChanges ? { component: 'Frontend', since } : undefined,
        }),
      );
      ready = r.ready;
      pods = r.pods.map((p) => ({ name: p.name, ready: p.ready, phase: p.phase }));
    }
    let url: string | undefined;
    try {
      url = await nodePortUrl({ cluster: c, name });
    } catch {
      /* no node address: the Service is still there */
    }
    const doc = {
      name,
      namespace,
      apiVersion: `nvidia.com/${version}`,
      release,
      router,
      workers,
      model,
      applied: outcome.applied,
      ready,
      pods,
      service: nodePortServiceName(name),
      url,
    };
    if (ctx.globals.json) json(ctx, doc);
    else {
      ctx.stdout.write(`${ok('✓')} ${name} ${ready ? 'is Ready' : 'applied (not waited for)'}${url ? `: ${url}` : ''}\n`);
      if (url) ctx.stdout.write(`  try: dynamo-lab demo --url ${url}\n`);
    }
  },
};
