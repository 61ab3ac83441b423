/**
 * `dynamo-lab logs`: a component's logs, filtered with the labs' patterns.
 * Results go to stdout (one JSON document with --json), progress to stderr; the work lives in src/cluster/.
 */
import chalk from 'chalk';
import type { Command } from '../command.js';
import { UsageError } from '../../base/errors.js';
import { connect, kubeOptionsFrom } from '../../cluster/kube.js';
import { DEFAULT_DGD_NAME } from '../../cluster/manifests.js';
import { compileGrep, followLogs, LOG_PATTERNS, readLogs, selectPods } from '../../cluster/logs.js';
import { asUsage, str, intOpt, json, say, warn } from './cluster-options.js';

export const logsCommand: Command = {
  name: 'logs',
  summary: "Show a component's logs, filtered with the labs' patterns (decisions, cache, nats, events)",
  usage:
    'dynamo-lab logs [--component <name>] [--grep <regex> | --pattern decisions|cache|nats|events] [--release <x.y.z>] [--follow] [--tail <n>]',
  options: {
    component: {
      type: 'string',
      valueName: 'name',
      description: 'Component name or type: VllmWorker, Frontend, worker, frontend (default: all pods of the DGD)',
    },
    grep: { type: 'string', valueName: 'regex', description: 'Only lines matching this regular expression (case-insensitive)' },
    pattern: {
      type: 'string',
      valueName: 'name',
      description: `A lab pattern: ${Object.entries(LOG_PATTERNS)
        .map(([k, v]) => `${k} (${v.about})`)
        .join(', ')}; comma-separate several`,
    },
    follow: { type: 'boolean', short: 'f', description: 'Stream new lines until Ctrl+C' },
    release: {
      type: 'string',
      valueName: 'x.y.z',
      description: "Dynamo release whose log lines the decisions pattern matches (default: every release's forms)",
    },
    tail: { type: 'string', valueName: 'n', description: 'Lines per pod from the end (default 100)' },
    name: { type: 'string', valueName: 'dgd', description: `DGD whose pods to read (default ${DEFAULT_DGD_NAME})` },
    selector: {
      type: 'string',
      short: 'l',
      valueName: 'labels',
      description: 'Any label selector instead of the DGD (e.g. app.kubernetes.io/name=dynamo-lab-worker)',
    },
  },
  examples: [
    'dynamo-lab logs --component VllmWorker --pattern cache',
    'dynamo-lab logs --component frontend --pattern decisions --release 1.6.1 --follow',
    'dynamo-lab logs --component worker --grep "nats|nixl"',
  ],
  async run(values, _p, ctx) {
    const grep = asUsage(() => compileGrep(str(values.grep), str(values.pattern), str(values.release)));
    const tail = intOpt(values.tail, 'tail', 100, 0, 1_000_000);
    const follow = Boolean(values.follow);
    if (follow && ctx.globals.json) throw new UsageError('--json cannot be combined with --follow (a stream is not one JSON document).');
    const cluster = await connect(kubeOptionsFrom(ctx.globals), ctx.signal);
    const targets = await selectPods(cluster, {
      namespace: cluster.namespace,
      dgd: str(values.selector) ? undefined : (str(values.name) ?? DEFAULT_DGD_NAME),
      component: str(values.component),
      selector: str(values.selector),
    });
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
