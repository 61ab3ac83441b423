/**
 * `dynamo-lab check gpu`: GPU capacity of the cluster's nodes.
 * Results go to stdout (one JSON document with --json), progress to stderr; the work lives in src/cluster/.
 */
import chalk from 'chalk';
import type { Command } from '../command.js';
import { UsageError, UserError } from '../../base/errors.js';
import { connect, kubeOptionsFrom } from '../../cluster/kube.js';
import { formatGpuReport, gpuReport } from '../../cluster/gpu.js';
import { DEFAULT_DGD_NAME, DEFAULT_WORKERS } from '../../cluster/manifests.js';
import { str, intOpt, json, say, ok, warn } from './cluster-options.js';

export const checkCommand: Command = {
  name: 'check',
  summary: 'Check cluster prerequisites (`check gpu`: free GPUs per node vs what the lab needs)',
  usage: 'dynamo-lab check gpu [--need <n>] [--json]',
  positionals: { name: 'what', description: 'gpu', min: 1, max: 1 },
  options: {
    need: { type: 'string', valueName: 'n', description: `GPUs the lab needs (default ${DEFAULT_WORKERS}: one per worker)` },
    name: {
      type: 'string',
      valueName: 'dgd',
      description: `The lab's DGD name, whose own GPUs count as available (default ${DEFAULT_DGD_NAME})`,
    },
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
      for (const h of r.holders)
        say(
          ctx,
          `  ${h.namespace}/${h.name}: ${h.gpus} GPU(s) in ${h.pods} pod(s)${h.ours ? ' (this lab)' : ''}${h.gpus > 0 && !h.ours ? `\n    free them: ${h.cleanup.join('  &&  ')}` : ''}`,
        );
    }
    for (const n of r.notes) say(ctx, warn(`note: ${n}`));
    if (!r.enough) {
      const msg = `Only ${r.total.free} GPU(s) free, the lab needs ${need}.`;
      const fix = others.length
        ? `Free GPUs held by other labs: ${others.flatMap((h) => h.cleanup).join(' && ')}`
        : r.total.allocatable === 0
          ? 'No node advertises nvidia.com/gpu (is the NVIDIA device plugin / GPU Operator installed?). Without GPUs use `dynamo-lab start --target local`.'
          : 'Wait for terminating pods to go away, or deploy fewer workers (`dynamo-lab deploy --workers 1`).';
      if (ctx.globals.json) {
        say(ctx, `${chalk.red('Error:')} ${msg}\n${chalk.dim('Try:')} ${fix}`);
        return 1;
      }
      throw new UserError(msg, fix);
    }
  },
};
