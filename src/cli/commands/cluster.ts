/**
 * Cluster-target commands: `check gpu`, `install nats|etcd`, `deploy`, `logs`, `cleanup`,
 * `doctor`. Results go to stdout (one JSON document with --json), progress and explanations
 * to stderr. The work itself lives in src/cluster/.
 */
import { createInterface } from 'node:readline/promises';
import chalk from 'chalk';
import type { Command, CommandContext, ParsedValues } from '../command.js';
import { UsageError, UserError } from '../../base/errors.js';
import { connect, kubeOptionsFrom, type Cluster } from '../../cluster/kube.js';
import { ClusterError, ClusterInputError } from '../../cluster/errors.js';
import { formatGpuReport, gpuReport } from '../../cluster/gpu.js';
import { CHARTS, helmBin, installPlan, runHelm, shellQuote, valuesPath, valuesText } from '../../cluster/helm.js';
import { discoverDgdApi } from '../../cluster/apply.js';
import {
  DEFAULT_DGD_NAME, DEFAULT_MODEL, DEFAULT_NATS_URL, DEFAULT_NODE_PORT, DEFAULT_RELEASE, DEFAULT_WORKERS, DEFAULT_VLLM_IMAGE,
  WORKERS_SELECTOR, nodePortServiceName, parseRouterMode, toYaml, type DgdVersion,
} from '../../cluster/manifests.js';
import {
  applyPlan, buildDgdPlan, buildWorkersPlan, dgdWaitTarget, hfSecretExists, printablePlan, waitReady, workersWaitTarget, type PlannedRequest,
} from '../../cluster/deploy.js';
import { findOperator, runDoctor, type CheckStatus } from '../../cluster/doctor.js';
import { compileGrep, followLogs, LOG_PATTERNS, readLogs, selectPods } from '../../cluster/logs.js';
import { describeAction, planCleanup, runCleanup } from '../../cluster/cleanup.js';
import { nodePortUrl } from '../../cluster/portforward.js';

// ---- small helpers -------------------------------------------------------------------------

/** Cluster input errors name the option (`pattern`, `grep`, `router`); the CLI names the flag. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ClusterInputError) throw new UsageError(`--${err.option}: ${err.message}.`, err.hint);
    throw err;
  }
}

function str(v: ParsedValues[string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function intOpt(v: ParsedValues[string], flag: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag} must be an integer between ${min} and ${max}, got "${String(v)}".`);
  return n;
}

function numOpt(v: ParsedValues[string], flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${flag} must be a non-negative number, got "${String(v)}".`);
  return n;
}

/** "90" (seconds), "90s", "15m", "1h", "500ms" -> milliseconds. */
export function parseDuration(v: string | undefined, flag: string, defMs: number): number {
  if (v === undefined) return defMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new UsageError(`--${flag} must be a duration like 90s, 15m or 1h, got "${v}".`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000));
}

function json(ctx: CommandContext, doc: unknown): void {
  ctx.stdout.write(JSON.stringify(doc, null, 2) + '\n');
}

function say(ctx: CommandContext, line: string): void {
  ctx.stderr.write(line + '\n');
}

const ok = (s: string) => chalk.green(s);
const warn = (s: string) => chalk.yellow(s);

// ---- check gpu -----------------------------------------------------------------------------

export const checkCommand: Command = {
  name: 'check',
  summary: 'Check cluster prerequisites (`check gpu`: free GPUs per node vs what the lab needs)',
  usage: 'dynamo-lab check gpu [--need <n>] [--json]',
  positionals: { name: 'what', description: 'gpu', min: 1, max: 1 },
  options: {
    need: { type: 'string', valueName: 'n', description: `GPUs the lab needs (default ${DEFAULT_WORKERS}: one per worker)` },
    name: { type: 'string', valueName: 'dgd', description: `The lab's DGD name, whose own GPUs count as available (default ${DEFAULT_DGD_NAME})` },
  },
  examples: ['dynamo-lab check gpu', 'dynamo-lab check gpu --need 4 --json'],
  async run(values, positionals, ctx) {
    if (positionals[0] !== 'gpu') throw new UsageError(`Unknown check "${positionals[0]}".`, 'Available: `dynamo-lab check gpu`.');
    const need = intOpt(values.need, 'need', DEFAULT_WORKERS, 0, 4096);
    const cluster = await connect(kubeOptionsFrom(ctx.globals), ctx.signal);
    const r = await gpuReport(cluster, need, str(values.name) ?? DEFAULT_DGD_NAME);
    const others = r.holders.filter((h) => !h.ours && h.gpus > 0);
    if (ctx.globals.json) json(ctx, { context: cluster.ctx.contextName, ...r });
    else {
      ctx.stdout.write(formatGpuReport(r) + '\n');
      ctx.stdout.write(`\nFree GPUs: ${r.total.free}; the lab needs ${need}: ${r.enough ? ok('enough') : chalk.red('NOT enough')}\n`);
    }
    if (r.holders.length && !ctx.globals.json) {
      say(ctx, '\nDynamoGraphDeployments holding GPUs:');
      for (const h of r.holders) say(ctx, `  ${h.namespace}/${h.name}: ${h.gpus} GPU(s) in ${h.pods} pod(s)${h.ours ? ' (this lab)' : ''}${h.gpus > 0 && !h.ours ? `\n    free them: ${h.cleanup.join('  &&  ')}` : ''}`);
    }
    for (const n of r.notes) say(ctx, warn(`note: ${n}`));
    if (!r.enough) {
      const msg = `Only ${r.total.free} GPU(s) free, the lab needs ${need}.`;
      const fix = others.length ? `Free GPUs held by other labs: ${others.flatMap((h) => h.cleanup).join(' && ')}` : r.total.allocatable === 0 ? 'No node advertises nvidia.com/gpu (is the NVIDIA device plugin / GPU Operator installed?). Without GPUs use `dynamo-lab start --target local`.' : 'Wait for terminating pods to go away, or deploy fewer workers (`dynamo-lab deploy --workers 1`).';
      if (ctx.globals.json) {
        say(ctx, `${chalk.red('Error:')} ${msg}\n${chalk.dim('Try:')} ${fix}`);
        return 1;
      }
      throw new UserError(msg, fix);
    }
  },
};

// ---- install nats|etcd ---------------------------------------------------------------------

export const installCommand: Command = {
  name: 'install',
  summary: 'Install NATS or etcd with Helm (repo add/update + upgrade --install), then verify pods and Service',
  usage: 'dynamo-lab install nats|etcd [--dry-run] [--timeout <duration>] [--json]',
  positionals: { name: 'chart', description: 'nats | etcd', min: 1, max: 1 },
  options: {
    'dry-run': { type: 'boolean', description: 'Print the exact helm commands and values; change nothing' },
    timeout: { type: 'string', valueName: 'duration', description: 'How long to wait for the pods after helm (default 5m)' },
  },
  examples: ['dynamo-lab install nats --dry-run', 'dynamo-lab install nats', 'HELM_BIN=/opt/helm dynamo-lab install etcd'],
  async run(values, positionals, ctx) {
    const id = positionals[0];
    if (id !== 'nats' && id !== 'etcd') throw new UsageError(`Unknown chart "${id}".`, 'Use `dynamo-lab install nats` or `dynamo-lab install etcd`.');
    const chart = CHARTS[id];
    const timeoutMs = parseDuration(str(values.timeout), 'timeout', 5 * 60_000);
    const plan = installPlan(chart, { kubeContext: ctx.globals.context });
    const bin = helmBin();
    if (values['dry-run']) {
      if (ctx.globals.json) {
        json(ctx, { dryRun: true, chart: id, release: chart.release, namespace: chart.namespace, commands: plan.map((a) => ({ argv: [bin, ...a], shell: shellQuote([bin, ...a]) })), valuesFile: valuesPath(chart), values: valuesText(chart) });
      } else {
        ctx.stdout.write(`# dynamo-lab install ${id} would run:\n${plan.map((a) => shellQuote([bin, ...a])).join('\n')}\n\n# with ${valuesPath(chart)}:\n${valuesText(chart)}`);
        ctx.stdout.write(`\n# then wait for pods with app.kubernetes.io/instance=${chart.release} in ${chart.namespace} and check Service ${chart.service}:${chart.port}\n`);
      }
      return;
    }
    const cluster = await connect(kubeOptionsFrom(ctx.globals), ctx.signal);
    for (const args of plan) {
      say(ctx, chalk.dim(`$ ${shellQuote([bin, ...args])}`));
      await runHelm(args, { signal: ctx.signal, onLine: ctx.globals.verbose ? (l) => say(ctx, chalk.dim(`  ${l}`)) : undefined });
    }
    say(ctx, `verifying ${chart.namespace}: pods app.kubernetes.io/instance=${chart.release}, Service ${chart.service}`);
    const selector = `app.kubernetes.io/instance=${chart.release}`;
    const existing = await cluster.call({ verb: 'list', resource: 'pods', namespace: chart.namespace }, () => cluster.core.listNamespacedPod({ namespace: chart.namespace, labelSelector: selector }));
    const target = { namespace: chart.namespace, labelSelector: selector, expectedPods: Math.max(1, existing.items.length), timeoutMs, signal: ctx.signal, onProgress: (l: string) => say(ctx, chalk.dim(`  ${l}`)) };
    const r = await waitReady(cluster, target);
    const svc = await cluster.getOrUndefined({ verb: 'get', resource: 'services', name: chart.service, namespace: chart.namespace }, () => cluster.core.readNamespacedService({ name: chart.service, namespace: chart.namespace }));
    if (!svc) throw new ClusterError(`helm succeeded but Service ${chart.namespace}/${chart.service} does not exist.`, `Check the release: \`helm status ${chart.release} -n ${chart.namespace}\` and \`kubectl get svc -n ${chart.namespace}\`.`);
    const ports = (svc.spec?.ports ?? []).map((p) => ({ name: p.name, port: p.port }));
    if (!ports.some((p) => p.port === chart.port)) throw new ClusterError(`Service ${chart.namespace}/${chart.service} does not expose port ${chart.port} (it has ${ports.map((p) => p.port).join(', ') || 'none'}).`, 'Check the chart values in manifests/helm/.');
    const result = { chart: id, release: chart.release, namespace: chart.namespace, url: chart.url, pods: r.pods.map((p) => ({ name: p.name, phase: p.phase, ready: p.ready })), service: { name: chart.service, ports } };
    if (ctx.globals.json) json(ctx, result);
    else ctx.stdout.write(`${ok('✓')} ${id} ready: ${chart.url} (${r.pods.length} pod(s) ready, Service ${chart.service} ports ${ports.map((p) => p.port).join(', ')})\n`);
  },
};

// ---- deploy --------------------------------------------------------------------------------

async function detectRelease(cluster: Cluster | undefined): Promise<{ release?: string; from: string; operator: 'found' | 'none' | 'unknown' }> {
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
  usage: 'dynamo-lab deploy [--name <dgd>] [--router kv|round-robin] [--workers <n>] [--model <id>] [--release <x.y.z>] [--dry-run] [--json]',
  options: {
    name: { type: 'string', valueName: 'dgd', description: `DGD name (default ${DEFAULT_DGD_NAME})` },
    router: { type: 'string', valueName: 'mode', description: 'Frontend router mode: kv or round-robin (default kv)' },
    workers: { type: 'string', valueName: 'n', description: `vLLM workers, 1 GPU each (default ${DEFAULT_WORKERS})` },
    model: { type: 'string', valueName: 'id', description: `Hugging Face model (default ${DEFAULT_MODEL})` },
    release: { type: 'string', valueName: 'x.y.z', description: `Dynamo release (image tag, router flags); default: the operator's, else ${DEFAULT_RELEASE}` },
    image: { type: 'string', valueName: 'ref', description: 'Container image (default nvcr.io/nvidia/ai-dynamo/vllm-runtime:<release>)' },
    'api-version': { type: 'string', valueName: 'v', description: 'Force the DGD version: v1alpha1 or v1beta1 (default: what the cluster serves, v1beta1 first)' },
    'kv-overlap-score-weight': { type: 'string', valueName: 'w', description: 'KV overlap weight (<1.2) / prefill load scale (1.2+) (default 1.0)' },
    'node-port': { type: 'string', valueName: 'port', description: `NodePort for the frontend (default ${DEFAULT_NODE_PORT})` },
    'nats-url': { type: 'string', valueName: 'url', description: `NATS_SERVER for frontend and workers (default ${DEFAULT_NATS_URL}; "" to omit)` },
    'workers-only': { type: 'boolean', description: `Deploy plain vLLM workers with ZMQ KV events instead (for \`router --discover ${WORKERS_SELECTOR}\`)` },
    timeout: { type: 'string', valueName: 'duration', description: 'How long to wait for Ready (default 20m)' },
    'no-wait': { type: 'boolean', description: 'Apply and return without waiting' },
    'dry-run': { type: 'boolean', description: 'Print the exact requests and manifests (HF token masked); change nothing' },
  },
  examples: ['dynamo-lab deploy --dry-run', 'dynamo-lab deploy', 'dynamo-lab deploy --router round-robin --name vllm-rr-demo --node-port 30201', 'HF_TOKEN=hf_... dynamo-lab deploy --workers 4'],
  async run(values, _positionals, ctx) {
    const name = str(values.name) ?? DEFAULT_DGD_NAME;
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63) throw new UsageError(`--name "${name}" is not a valid Kubernetes name (lowercase letters, digits, "-").`);
    const router = asUsage(() => parseRouterMode(str(values.router)));
    const workers = intOpt(values.workers, 'workers', DEFAULT_WORKERS, 1, 64);
    const model = str(values.model) ?? DEFAULT_MODEL;
    const nodePort = intOpt(values['node-port'], 'node-port', DEFAULT_NODE_PORT, 1, 65535);
    const weight = numOpt(values['kv-overlap-score-weight'], 'kv-overlap-score-weight');
    const apiVersionFlag = str(values['api-version']);
    if (apiVersionFlag && apiVersionFlag !== 'v1alpha1' && apiVersionFlag !== 'v1beta1') throw new UsageError(`--api-version must be v1alpha1 or v1beta1, got "${apiVersionFlag}".`);
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
      say(ctx, warn(`note: ${(err as Error).message.split('\n')[0]} — dry run without a cluster: DGD ${apiVersionFlag ?? 'v1alpha1'} assumed.`));
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
      const doc = { namespace, selector: WORKERS_SELECTOR, workers, ready, next: `dynamo-lab router --discover ${WORKERS_SELECTOR} -n ${namespace}` };
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
    if (!explicitRelease) say(ctx, chalk.dim(`Dynamo release ${release} (${detected.release ? `from the ${detected.from}` : 'lab default; pass --release to match your platform'})`));
    const spec = { name, namespace, version, release, image: str(values.image), model, workers, router, overlapWeight: weight, nodePort, natsUrl, hfSecret };
    const plan = buildDgdPlan(spec, hfToken);

    if (dryRun) {
      if (ctx.globals.json) json(ctx, { dryRun: true, apiVersion: `nvidia.com/${version}`, served, release, router, requests: printablePlan(plan) });
      else printPlan(ctx, plan, `dynamo-lab deploy would send (server-side apply, field manager dynamo-lab; DGD nvidia.com/${version}${served.length ? `, cluster serves ${served.join(', ')}` : ''}):`);
      return;
    }
    const c = cluster!;
    if (found.operator === 'none') say(ctx, warn('warning: no Dynamo operator Deployment found: the DGD will be stored but nobody will create its pods (see `dynamo-lab doctor`).'));
    if (natsUrl === DEFAULT_NATS_URL) {
      const nats = await c.getOrUndefined({ verb: 'get', resource: 'services', name: 'nats', namespace: 'nats-system' }, () => c.core.readNamespacedService({ name: 'nats', namespace: 'nats-system' })).catch(() => 'unknown' as const);
      if (!nats) say(ctx, warn(`warning: no NATS Service at ${DEFAULT_NATS_URL}: run \`dynamo-lab install nats\` first, or pass --nats-url "" for Kubernetes-native discovery.`));
    }
    // GPU pre-check: warn (the wait below shows the scheduler's view if it really does not fit).
    try {
      const g = await gpuReport(c, workers, name);
      if (!g.enough) {
        say(ctx, warn(`warning: ${g.total.free} GPU(s) free, ${workers} needed; workers will stay Pending.`));
        for (const h of g.holders.filter((x) => !x.ours && x.gpus > 0)) say(ctx, warn(`  ${h.namespace}/${h.name} holds ${h.gpus} GPU(s): ${h.cleanup.join(' && ')}`));
      }
    } catch {
      /* no right to list nodes/pods cluster-wide: skip the pre-check */
    }
    say(ctx, `deploying ${namespace}/${name}: DGD nvidia.com/${version}, router ${router}, ${workers} worker(s) × 1 GPU, model ${model}${hfToken ? ', HF token from $HF_TOKEN' : ''}`);
    const outcome = await applyPlan(c, namespace, plan, (m) => say(ctx, `  ${m}`));
    let ready = false;
    let pods: Array<{ name: string; ready: boolean; phase: string }> = [];
    if (!values['no-wait']) {
      say(ctx, `waiting for ${name} to become Ready (timeout ${Math.round(timeoutMs / 1000)}s; first start downloads the model)…`);
      const r = await waitReady(c, dgdWaitTarget(spec, { timeoutMs, signal: ctx.signal, onProgress: (l) => say(ctx, chalk.dim(`  ${l}`)) }));
      ready = r.ready;
      pods = r.pods.map((p) => ({ name: p.name, ready: p.ready, phase: p.phase }));
    }
    let url: string | undefined;
    try {
      url = await nodePortUrl({ cluster: c, name });
    } catch {
      /* no node address: the Service is still there */
    }
    const doc = { name, namespace, apiVersion: `nvidia.com/${version}`, release, router, workers, model, applied: outcome.applied, ready, pods, service: nodePortServiceName(name), url };
    if (ctx.globals.json) json(ctx, doc);
    else {
      ctx.stdout.write(`${ok('✓')} ${name} ${ready ? 'is Ready' : 'applied (not waited for)'}${url ? `: ${url}` : ''}\n`);
      if (url) ctx.stdout.write(`  try: dynamo-lab demo --url ${url}\n`);
    }
  },
};

function loadKubeContextNamespace(kopts: { namespace?: string }): string {
  return kopts.namespace || 'dynamo';
}

// ---- logs ----------------------------------------------------------------------------------

export const logsCommand: Command = {
  name: 'logs',
  summary: "Show a component's logs, filtered with the labs' patterns (cache, nats, routing)",
  usage: 'dynamo-lab logs [--component <name>] [--grep <regex> | --pattern cache|nats|routing|events] [--follow] [--tail <n>]',
  options: {
    component: { type: 'string', valueName: 'name', description: 'Component name or type: VllmWorker, Frontend, worker, frontend (default: all pods of the DGD)' },
    grep: { type: 'string', valueName: 'regex', description: 'Only lines matching this regular expression (case-insensitive)' },
    pattern: { type: 'string', valueName: 'name', description: `A lab pattern: ${Object.entries(LOG_PATTERNS).map(([k, v]) => `${k} (${v.about})`).join(', ')}; comma-separate several` },
    follow: { type: 'boolean', short: 'f', description: 'Stream new lines until Ctrl+C' },
    tail: { type: 'string', valueName: 'n', description: 'Lines per pod from the end (default 100)' },
    name: { type: 'string', valueName: 'dgd', description: `DGD whose pods to read (default ${DEFAULT_DGD_NAME})` },
    selector: { type: 'string', short: 'l', valueName: 'labels', description: 'Any label selector instead of the DGD (e.g. app.kubernetes.io/name=dynamo-lab-worker)' },
  },
  examples: ['dynamo-lab logs --component VllmWorker --pattern cache', 'dynamo-lab logs --component frontend --pattern routing --follow', 'dynamo-lab logs --component worker --grep "nats|nixl"'],
  async run(values, _p, ctx) {
    const grep = asUsage(() => compileGrep(str(values.grep), str(values.pattern)));
    const tail = intOpt(values.tail, 'tail', 100, 0, 1_000_000);
    const follow = Boolean(values.follow);
    if (follow && ctx.globals.json) throw new UsageError('--json cannot be combined with --follow (a stream is not one JSON document).');
    const cluster = await connect(kubeOptionsFrom(ctx.globals), ctx.signal);
    const targets = await selectPods(cluster, { namespace: cluster.namespace, dgd: str(values.selector) ? undefined : str(values.name) ?? DEFAULT_DGD_NAME, component: str(values.component), selector: str(values.selector) });
    const prefix = targets.length > 1;
    if (!follow) {
      const out: Array<{ pod: string; container: string; lines: string[] }> = [];
      for (const t of targets) out.push({ pod: t.pod, container: t.container, lines: await readLogs(cluster, t, tail, grep) });
      if (ctx.globals.json) json(ctx, { namespace: cluster.namespace, grep: grep?.source, pods: out });
      else {
        for (const o of out) {
          if (prefix) say(ctx, chalk.bold(`=== ${o.pod} (${o.container}) ===`));
          for (const l of o.lines) ctx.stdout.write(prefix ? `${chalk.cyan(`[${o.pod}]`)} ${l}\n` : `${l}\n`);
          if (!o.lines.length) say(ctx, chalk.dim(grep ? `  no lines match /${grep.source}/i in the last ${tail}` : '  (no log lines)'));
        }
      }
      return;
    }
    say(ctx, chalk.dim(`following ${targets.map((t) => t.pod).join(', ')}${grep ? ` for /${grep.source}/i` : ''} — Ctrl+C to stop`));
    await followLogs(cluster, targets, {
      tailLines: tail,
      grep,
      signal: ctx.signal,
      onLine: (t, l) => ctx.stdout.write(prefix ? `${chalk.cyan(`[${t.pod}]`)} ${l}\n` : `${l}\n`),
      onNote: (m) => say(ctx, warn(m)),
    });
  },
};

// ---- cleanup -------------------------------------------------------------------------------

async function confirm(ctx: CommandContext, question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: ctx.stderr });
  try {
    const a = await rl.question(`${question} [y/N] `, { signal: ctx.signal });
    return /^y(es)?$/i.test(a.trim());
  } finally {
    rl.close();
  }
}

export const cleanupCommand: Command = {
  name: 'cleanup',
  summary: 'Remove what the labs created on the cluster (--all: also the NATS/etcd releases and namespaces)',
  usage: 'dynamo-lab cleanup [--all] [--yes] [--dry-run] [--json]',
  options: {
    all: { type: 'boolean', description: 'Also uninstall the nats/etcd Helm releases and delete their namespaces (and the lab namespace if dynamo-lab created it)' },
    yes: { type: 'boolean', short: 'y', description: 'Do not ask for confirmation (required when not interactive)' },
    'dry-run': { type: 'boolean', description: 'Print what would be deleted; change nothing' },
    name: { type: 'string', valueName: 'dgd', description: `The lab DGD name (default ${DEFAULT_DGD_NAME})` },
  },
  examples: ['dynamo-lab cleanup --dry-run', 'dynamo-lab cleanup --yes', 'dynamo-lab cleanup --all --yes'],
  async run(values, _p, ctx) {
    const dryRun = Boolean(values['dry-run']);
    const all = Boolean(values.all);
    const cluster = await connect(kubeOptionsFrom(ctx.globals), ctx.signal);
    let dgdVersion: DgdVersion | undefined;
    try {
      dgdVersion = (await discoverDgdApi(cluster)).version;
    } catch (err) {
      if ((err as ClusterError).reason !== 'CRDMissing') throw err;
    }
    const actions = await planCleanup(cluster, { namespace: cluster.namespace, all, dgdName: str(values.name), dgdVersion, helm: { kubeContext: ctx.globals.context } });
    const lines = actions.map(describeAction);
    if (dryRun) {
      if (ctx.globals.json) json(ctx, { dryRun: true, namespace: cluster.namespace, all, actions: actions.map((a, i) => ({ ...a, display: lines[i] })) });
      else ctx.stdout.write(actions.length ? `# dynamo-lab cleanup${all ? ' --all' : ''} would run:\n${lines.join('\n')}\n` : `# nothing to clean up in namespace ${cluster.namespace}${all ? ' (and no nats-system/etcd-system)' : ''}\n`);
      return;
    }
    if (!actions.length) {
      if (ctx.globals.json) json(ctx, { namespace: cluster.namespace, all, results: [] });
      else ctx.stdout.write(`${ok('✓')} nothing to clean up in namespace ${cluster.namespace}${all ? ' (no NATS/etcd namespaces either)' : ''}\n`);
      return;
    }
    if (!values.yes) {
      if (!ctx.interactive) throw new UsageError(`cleanup would delete ${actions.length} object(s)/release(s) and needs confirmation, but this is not an interactive terminal.`, 'Re-run with --yes (see what would go with --dry-run).');
      say(ctx, 'This will delete:');
      for (const l of lines) say(ctx, `  ${l}`);
      if (!(await confirm(ctx, 'Proceed?'))) {
        say(ctx, 'Nothing deleted.');
        return 1;
      }
    }
    const results = await runCleanup(cluster, actions, { signal: ctx.signal, onStep: (m) => say(ctx, `  ${m}`) });
    if (ctx.globals.json) json(ctx, { namespace: cluster.namespace, all, results: results.map((r) => ({ ...r.action, result: r.result })) });
    else ctx.stdout.write(`${ok('✓')} cleanup done: ${results.filter((r) => r.result === 'deleted' || r.result === 'uninstalled').length} removed, ${results.filter((r) => r.result === 'already gone' || r.result === 'not installed').length} already gone\n`);
  },
};

// ---- doctor --------------------------------------------------------------------------------

const MARK: Record<CheckStatus, string> = { ok: chalk.green('✓'), warn: chalk.yellow('!'), fail: chalk.red('✗'), skip: chalk.dim('-') };

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'Diagnose the cluster setup: tools, context, RBAC, CRDs, operator, GPUs, NATS/etcd, the lab deployment',
  usage: 'dynamo-lab doctor [--need <n>] [--json]',
  options: {
    need: { type: 'string', valueName: 'n', description: `GPUs the lab needs (default ${DEFAULT_WORKERS})` },
    name: { type: 'string', valueName: 'dgd', description: `The lab DGD to inspect (default ${DEFAULT_DGD_NAME})` },
  },
  examples: ['dynamo-lab doctor', 'dynamo-lab doctor --json'],
  async run(values, _p, ctx) {
    const need = intOpt(values.need, 'need', DEFAULT_WORKERS, 0, 4096);
    const r = await runDoctor({ ...kubeOptionsFrom(ctx.globals), need, name: str(values.name), signal: ctx.signal });
    if (ctx.globals.json) json(ctx, r);
    else {
      ctx.stdout.write(`dynamo-lab doctor — context ${r.context ?? '(none)'}${r.server ? ` (${r.server})` : ''}, namespace ${r.namespace}\n\n`);
      for (const c of r.checks) {
        ctx.stdout.write(`${MARK[c.status]} ${c.title}: ${c.detail}\n`);
        if (c.fix && c.status !== 'ok') ctx.stdout.write(`    ${chalk.dim('fix:')} ${c.fix}\n`);
      }
      ctx.stdout.write(`\n${r.summary.ok} ok, ${r.summary.warn} warning(s), ${r.summary.fail} failure(s)${r.summary.skip ? `, ${r.summary.skip} skipped` : ''}\n`);
    }
    return r.summary.fail > 0 ? 1 : 0;
  },
};

export const clusterCommands: readonly Command[] = [checkCommand, installCommand, deployCommand, logsCommand, cleanupCommand, doctorCommand];
