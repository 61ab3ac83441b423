/** `dynamo-lab labs`: the labs, their sections, and saved progress per target. */
import chalk from 'chalk';
import type { Command } from '../command.js';
import { listLabIds, loadLab } from '../../lab/load.js';
import { loadProgress, progressPath } from '../../lab/progress.js';
import { flattenSteps } from '../../lab/types.js';
import { DEFAULT_LAB } from '../defaults.js';

export const labsCommand: Command = {
  name: 'labs',
  summary: 'List the labs, their sections and your progress',
  usage: 'dynamo-lab labs [--json]',
  options: {},
  async run(_v, _p, ctx) {
    // The default lab first, then the rest alphabetically.
    const ids = listLabIds().sort((a, b) => Number(b === DEFAULT_LAB) - Number(a === DEFAULT_LAB));
    const labs = ids.map((id) => {
      const lab = loadLab(id);
      const steps = flattenSteps(lab);
      const progress = Object.fromEntries(
        (['local', 'cluster'] as const).map((t) => {
          const saved = loadProgress(
            progressPath(id, t),
            id,
            steps.map((s) => s.step.id),
          ).statuses;
          return [
            t,
            { done: steps.filter((s) => saved[s.step.id] === 'done' || saved[s.step.id] === 'skipped').length, total: steps.length },
          ];
        }),
      );
      return {
        id,
        title: lab.title,
        summary: lab.summary,
        legacy: lab.legacy ?? false,
        seed: lab.seed,
        sections: lab.sections.map((s) => ({ id: s.id, title: s.title, steps: s.steps.length })),
        progress,
      };
    });
    if (ctx.globals.json) {
      ctx.stdout.write(JSON.stringify({ labs }, null, 2) + '\n');
      return 0;
    }
    for (const l of labs) {
      ctx.stdout.write(`${chalk.bold(l.id)}${l.legacy ? chalk.yellow(' (legacy)') : ''}  ${l.title}\n`);
      ctx.stdout.write(`  ${chalk.dim(l.summary)}\n`);
      ctx.stdout.write(`  sections: ${l.sections.map((s) => s.id).join(' → ')}\n`);
      ctx.stdout.write(
        `  progress: local ${l.progress.local!.done}/${l.progress.local!.total}, cluster ${l.progress.cluster!.done}/${l.progress.cluster!.total}\n\n`,
      );
    }
    ctx.stdout.write(chalk.dim('Start one with `dynamo-lab start --lab <id>`; resume with the same command.\n'));
    return 0;
  },
};
