/**
 * `dynamo-lab doctor`: what is and is not ready on the cluster, with what to do.
 * Results go to stdout (one JSON document with --json), progress to stderr; the work lives in src/cluster/.
 */
import chalk from 'chalk';
import type { Command } from '../command.js';
import { kubeOptionsFrom } from '../../cluster/kube.js';
import { DEFAULT_DGD_NAME, DEFAULT_WORKERS } from '../../cluster/manifests.js';
import { runDoctor, type CheckStatus } from '../../cluster/doctor.js';
import { str, intOpt, json } from './cluster-options.js';

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
      ctx.stdout.write(
        `dynamo-lab doctor — context ${r.context ?? '(none)'}${r.server ? ` (${r.server})` : ''}, namespace ${r.namespace}\n\n`,
      );
      for (const c of r.checks) {
        ctx.stdout.write(`${MARK[c.status]} ${c.title}: ${c.detail}\n`);
        if (c.fix && c.status !== 'ok') ctx.stdout.write(`    ${chalk.dim('fix:')} ${c.fix}\n`);
      }
      ctx.stdout.write(
        `\n${r.summary.ok} ok, ${r.summary.warn} warning(s), ${r.summary.fail} failure(s)${r.summary.skip ? `, ${r.summary.skip} skipped` : ''}\n`,
      );
    }
    return r.summary.fail > 0 ? 1 : 0;
  },
};
