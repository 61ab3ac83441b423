/**
 * `dynamo-lab install nats|etcd`: the event plane's charts with helm, then wait until ready.
 * Results go to stdout (one JSON document with --json), progress to stderr; the work lives in src/cluster/.
 */
import chalk from 'chalk';
import type { Command } from '../command.js';
import { UsageError } from '../../base/errors.js';
import { connect, kubeOptionsFrom } from '../../cluster/kube.js';
import { ClusterError } from '../../cluster/errors.js';
import { shellQuote } from '../../base/shell.js';
import { CHARTS, helmBin, installPlan, runHelm, valuesPath, valuesText } from '../../cluster/helm.js';
import { waitReady } from '../../cluster/deploy.js';
import { str, parseDuration, json, say, ok } from './cluster-options.js';

export const installCommand: Command = {
  name: 'install',
  summary: 'Install NATS or etcd with Helm (repo add/update + upgrade --install), then verify pods and Service',
  usage: 'dynamo-lab install nats|etcd [--dry-run] [--timeout <duration>] [--no-helm-wait] [--json]',
  positionals: { name: 'chart', description: 'nats | etcd', min: 1, max: 1 },
  options: {
    'dry-run': { type: 'boolean', description: 'Print the exact helm commands and values; change nothing' },
    timeout: { type: 'string', valueName: 'duration', description: 'How long to wait for the pods after helm (default 5m)' },
    'no-helm-wait': {
      type: 'boolean',
      description: "Do not pass --wait to helm (dynamo-lab still waits for the chart's pods and checks its Service)",
    },
  },
  examples: [
    'dynamo-lab install nats --dry-run',
    'DYNAMO_LAB_CHARTS_DIR=./charts dynamo-lab install etcd   # offline, from nats-2.14.2.tgz / etcd-12.0.20.tgz',
    'dynamo-lab install nats',
    'HELM_BIN=/opt/helm dynamo-lab install etcd',
  ],
  async run(values, positionals, ctx) {
    const id = positionals[0];
    if (id !== 'nats' && id !== 'etcd')
      throw new UsageError(`Unknown chart "${id}".`, 'Use `dynamo-lab install nats` or `dynamo-lab install etcd`.');
    const chart = CHARTS[id];
    const timeoutMs = parseDuration(str(values.timeout), 'timeout', 5 * 60_000);
    const plan = installPlan(chart, { kubeContext: ctx.globals.context }, { wait: !values['no-helm-wait'] });
    const bin = helmBin();
    if (values['dry-run']) {
      if (ctx.globals.json) {
        json(ctx, {
          dryRun: true,
          chart: id,
          release: chart.release,
          namespace: chart.namespace,
          commands: plan.map((a) => ({ argv: [bin, ...a], shell: shellQuote([bin, ...a]) })),
          valuesFile: valuesPath(chart),
          values: valuesText(chart),
        });
      } else {
        ctx.stdout.write(
          `# dynamo-lab install ${id} would run:\n${plan.map((a) => shellQuote([bin, ...a])).join('\n')}\n\n# with ${valuesPath(chart)}:\n${valuesText(chart)}`,
        );
        ctx.stdout.write(
          `\n# then wait for pods with app.kubernetes.io/instance=${chart.release} in ${chart.namespace} and check Service ${chart.service}:${chart.port}\n`,
        );
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
    const existing = await cluster.call({ verb: 'list', resource: 'pods', namespace: chart.namespace }, () =>
      cluster.core.listNamespacedPod({ namespace: chart.namespace, labelSelector: selector }),
    );
    const target = {
      namespace: chart.namespace,
      labelSelector: selector,
      expectedPods: Math.max(1, existing.items.length),
      timeoutMs,
      signal: ctx.signal,
      onProgress: (l: string) => say(ctx, chalk.dim(`  ${l}`)),
    };
    const r = await waitReady(cluster, target);
    const svc = await cluster.getOrUndefined({ verb: 'get', resource: 'services', name: chart.service, namespace: chart.namespace }, () =>
      cluster.core.readNamespacedService({ name: chart.service, namespace: chart.namespace }),
    );
    if (!svc)
      throw new ClusterError(
        `helm succeeded but Service ${chart.namespace}/${chart.service} does not exist.`,
        `Check the release: \`helm status ${chart.release} -n ${chart.namespace}\` and \`kubectl get svc -n ${chart.namespace}\`.`,
      );
    const ports = (svc.spec?.ports ?? []).map((p) => ({ name: p.name, port: p.port }));
    if (!ports.some((p) => p.port === chart.port))
      throw new ClusterError(
        `Service ${chart.namespace}/${chart.service} does not expose port ${chart.port} (it has ${ports.map((p) => p.port).join(', ') || 'none'}).`,
        'Check the chart values in manifests/helm/.',
      );
    const result = {
      chart: id,
      release: chart.release,
      namespace: chart.namespace,
      url: chart.url,
      pods: r.pods.map((p) => ({ name: p.name, phase: p.phase, ready: p.ready })),
      service: { name: chart.service, ports },
    };
    if (ctx.globals.json) json(ctx, result);
    else
      ctx.stdout.write(
        `${ok('✓')} ${id} ready: ${chart.url} (${r.pods.length} pod(s) ready, Service ${chart.service} ports ${ports.map((p) => p.port).join(', ')})\n`,
      );
  },
};
