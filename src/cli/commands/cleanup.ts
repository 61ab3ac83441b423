/**
 * `dynamo-lab cleanup`: remove what the labs created on the cluster.
 * Results go to stdout (one JSON document with --json), progress to stderr; the work lives in src/cluster/.
 */
import { createInterface } from 'node:readline/promises';
import type { Command, CommandContext } from '../command.js';
import { UsageError } from '../../base/errors.js';
import { connect, kubeOptionsFrom } from '../../cluster/kube.js';
import { ClusterError } from '../../cluster/errors.js';
import { discoverDgdApi } from '../../cluster/apply.js';
import { DEFAULT_DGD_NAME, type DgdVersion } from '../../cluster/manifests.js';
import { describeAction, planCleanup, runCleanup } from '../../cluster/cleanup.js';
import { str, json, say, ok } from './cluster-options.js';

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
    all: {
      type: 'boolean',
      description:
        'Also uninstall the nats/etcd Helm releases and delete their namespaces (and the lab namespace if dynamo-lab created it)',
    },
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
    const actions = await planCleanup(cluster, {
      namespace: cluster.namespace,
      all,
      dgdName: str(values.name),
      dgdVersion,
      helm: { kubeContext: ctx.globals.context },
    });
    const lines = actions.map(describeAction);
    if (dryRun) {
      if (ctx.globals.json)
        json(ctx, { dryRun: true, namespace: cluster.namespace, all, actions: actions.map((a, i) => ({ ...a, display: lines[i] })) });
      else
        ctx.stdout.write(
          actions.length
            ? `# dynamo-lab cleanup${all ? ' --all' : ''} would run:\n${lines.join('\n')}\n`
            : `# nothing to clean up in namespace ${cluster.namespace}${all ? ' (and no nats-system/etcd-system)' : ''}\n`,
        );
      return;
    }
    if (!actions.length) {
      if (ctx.globals.json) json(ctx, { namespace: cluster.namespace, all, results: [] });
      else
        ctx.stdout.write(
          `${ok('✓')} nothing to clean up in namespace ${cluster.namespace}${all ? ' (no NATS/etcd namespaces either)' : ''}\n`,
        );
      return;
    }
    if (!values.yes) {
      if (!ctx.interactive)
        throw new UsageError(
          `cleanup would delete ${actions.length} object(s)/release(s) and needs confirmation, but this is not an interactive terminal.`,
          'Re-run with --yes (see what would go with --dry-run).',
        );
      say(ctx, 'This will delete:');
      for (const l of lines) say(ctx, `  ${l}`);
      if (!(await confirm(ctx, 'Proceed?'))) {
        say(ctx, 'Nothing deleted.');
        return 1;
      }
    }
    const results = await runCleanup(cluster, actions, { signal: ctx.signal, onStep: (m) => say(ctx, `  ${m}`) });
    if (ctx.globals.json)
      json(ctx, { namespace: cluster.namespace, all, results: results.map((r) => ({ ...r.action, result: r.result })) });
    else
      ctx.stdout.write(
        `${ok('✓')} cleanup done: ${results.filter((r) => r.result === 'deleted' || r.result === 'uninstalled').length} removed, ${results.filter((r) => r.result === 'already gone' || r.result === 'not installed').length} already gone\n`,
      );
  },
};
