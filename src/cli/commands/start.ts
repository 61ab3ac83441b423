/**
 * `dynamo-lab start`: open a lab in the terminal UI, or run it without prompts (--yes,
 * CI, no TTY), or print it as a script (--dry-run).
 */
import { join } from 'node:path';
import chalk from 'chalk';
import type { Command } from '../command.js';
import { UsageError, UserError } from '../../base/errors.js';
import { stateDir } from '../../base/paths.js';
import { loadLab, LabFormatError, listLabIds, withVars } from '../../lab/load.js';
import { flattenSteps, type LabDefinition, type Target } from '../../lab/types.js';
import { loadProgress, progressPath, resetProgress } from '../../lab/progress.js';
import { LocalSession } from '../../lab/session.js';
import { ClusterRunner, DryRunner, LocalRunner, type StepRunner } from '../../lab/runner.js';
import { LabController } from '../../lab/controller.js';
import { MASK, displayCommand, maskSecrets, secretValues } from '../../lab/commands.js';
import { ClusterScript } from '../dry-script.js';
import type { DemoResult } from '../../lab/demo.js';
import type { StepResult } from '../../lab/results.js';
import { resultLines } from '../../lab/results.js';
import { compareModes } from '../../lab/compare.js';
import { closest } from '../suggest.js';
import { ENGINE_OPTION, parseEngine, prepareDynamoEngine } from '../engine.js';

import { DEFAULT_LAB } from '../defaults.js';

export { DEFAULT_LAB };

function labVars(lab: LabDefinition, namespace?: string): Record<string, string> {
  const vars: Record<string, string> = { ...(lab.vars ?? {}) };
  for (const k of Object.keys(vars)) if (process.env[k]) vars[k] = process.env[k]!;
  if (namespace) vars.NAMESPACE = namespace;
  return vars;
}

/** --from accepts a section id or a step id. */
function fromIndex(lab: LabDefinition, from: string | undefined): number | undefined {
  if (!from) return undefined;
  const steps = flattenSteps(lab);
  const bySection = steps.find((s) => s.sectionId === from);
  const byStep = steps.find((s) => s.step.id === from);
  const hit = bySection ?? byStep;
  if (!hit) {
    throw new UsageError(`"${from}" is not a section or step of lab ${lab.id}.`, `Sections: ${lab.sections.map((s) => s.id).join(', ')}.`);
  }
  return hit.index;
}

/** The dry-run script: every command of the lab, copy-pasteable, secrets masked. */
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|API_KEY/i;

function dryRunScript(
  lab: LabDefinition,
  target: Target,
  runner: StepRunner,
  vars: Readonly<Record<string, string>>,
  cluster?: ClusterRunner,
): string {
  const out = [
    '#!/usr/bin/env bash',
    `# dynamo-lab dry run of lab "${lab.id}" (${lab.title}) for the ${target} target.`,
    '# Nothing was executed. Secrets are never written here: they are read from the environment when the script runs.',
  ];
  const names = Object.keys(vars);
  if (names.length) {
    out.push('# Values used below (export any of them and run the dry run again to change it):');
    for (const n of names) out.push(`#   ${n}=${SECRET_NAME.test(n) && vars[n] ? MASK : vars[n]}`);
  }
  out.push('set -euo pipefail', '');
  const script = new ClusterScript();
  const helpersAt = out.length;
  for (const s of lab.sections) {
    out.push(`# ===== ${s.title} =====`);
    for (const st of s.steps) {
      out.push(`# --- ${st.title} [${st.id}]`);
      if (cluster) {
        // The real script: every command, with the lab's own dynamo-lab deploy/install spelled out.
        if (st.cluster?.note) out.push(...st.cluster.note.split('\n').map((l) => `# ${l}`));
        for (const c of cluster.commands(st)) out.push(...script.lines(c, displayCommand(c)));
        out.push('');
        continue;
      }
      for (const line of runner.preview(st)) {
        if (line.startsWith('$ ')) out.push(line.slice(2));
        else if (line.startsWith('then check: $ ')) out.push(line.slice('then check: $ '.length));
        else if (line.startsWith('(run by hand) $ ')) out.push(`# run by hand: ${line.slice('(run by hand) $ '.length)}`);
        else out.push(...line.split('\n').map((l) => `# ${l}`));
      }
      out.push('');
    }
  }
  out.splice(helpersAt, 0, ...script.preamble());
  return out.join('\n');
}

/** The benchmark's A/B tables among the steps' results. */
function abTables(steps: ReadonlyArray<{ results?: readonly StepResult[] }>): StepResult[] {
  return steps.flatMap((s) => s.results ?? []).filter((r) => r.kind === 'table' && (r.title ?? '').startsWith('A/B'));
}

export interface StartJson {
  lab: string;
  target: Target;
  status: 'finished' | 'failed' | 'quit' | 'interrupted';
  sections: Array<{ id: string; status: string }>;
  steps: Array<{ id: string; status: string; error?: string; results?: readonly StepResult[] }>;
  /** Per scenario, kv vs round-robin on the requests that can reuse a prefix (local runs with both modes). */
  comparison?: ReturnType<typeof compareModes>;
  /** router-ab: the benchmark's A/B table (per mode TTFT avg/p50/p99, hit rate, oracle). */
  ab?: StepResult[];
  error?: { message: string; hint?: string };
  /** The exact command that resumes this run. */
  resume?: string;
  demo: Array<Pick<DemoResult, 'mode' | 'prompt' | 'worker' | 'cached_tokens' | 'prompt_tokens' | 'ttft_ms'> & { group: string }>;
  /** Every endpoint the run listened on (all closed by the time this is printed). */
  endpoints: Array<{ id: string; url: string }>;
  progress_file?: string;
  log_file?: string;
}

export const startCommand: Command = {
  name: 'start',
  summary: 'Open a lab (default: kv-routing) and go through it section by section',
  usage: 'dynamo-lab start [--lab <id>] [--target local|cluster] [--yes] [--dry-run] [--from <section>] [--json]',
  examples: [
    'dynamo-lab start',
    'dynamo-lab start --target local --yes --json',
    'dynamo-lab start --from demo',
    'dynamo-lab start --target cluster --dry-run > lab.sh',
  ],
  options: {
    lab: { type: 'string', valueName: 'id', description: `Which lab (see \`dynamo-lab labs\`; default ${DEFAULT_LAB})` },
    target: { type: 'string', valueName: 'local|cluster', description: 'Where to run (default: cluster if one is reachable, else local)' },
    yes: { type: 'boolean', short: 'y', description: 'Run every step without asking (also implied by CI or no TTY)' },
    'dry-run': { type: 'boolean', description: 'Print every command of the lab as a script; run nothing' },
    from: { type: 'string', valueName: 'section', description: 'Start at this section or step (re-runs it and what follows)' },
    reset: { type: 'boolean', description: 'Forget saved progress and start at the beginning' },
    engine: ENGINE_OPTION,
  },
  async run(values, _pos, ctx) {
    const labId = (values.lab as string | undefined) ?? DEFAULT_LAB;
    let lab: LabDefinition;
    const known = listLabIds();
    if (!known.includes(labId)) {
      const near = closest(labId, known);
      throw new UsageError(
        `There is no lab "${labId}".`,
        `${near ? `Did you mean --lab ${near}? ` : ''}Labs: ${known.join(', ')} (\`dynamo-lab labs\` describes them).`,
      );
    }
    try {
      lab = loadLab(labId);
    } catch (err) {
      if (err instanceof LabFormatError)
        throw new UserError(err.message, 'The lab file does not match the lab format; if you did not edit it, please report this.');
      throw err;
    }
    const targetFlag = values.target as string | undefined;
    if (targetFlag && targetFlag !== 'local' && targetFlag !== 'cluster')
      throw new UsageError(`--target must be local or cluster, not "${targetFlag}".`);
    const dryRun = Boolean(values['dry-run']);
    let target: Target;
    if (targetFlag) target = targetFlag as Target;
    else if (dryRun) target = 'cluster';
    else {
      const { chooseTarget } = await import('../../lab/target.js');
      const choice = await chooseTarget({ context: ctx.globals.context, namespace: ctx.globals.namespace, signal: ctx.signal });
      target = choice.target;
      if (!ctx.globals.json) ctx.stderr.write(chalk.dim(`target: ${target} — ${choice.reason}\n`));
    }

    const engine = parseEngine(values.engine, target);
    const vars = labVars(lab, ctx.globals.namespace);
    lab = withVars(lab, vars);
    const steps = flattenSteps(lab);
    const from = fromIndex(lab, values.from as string | undefined);
    const runId = new Date().toISOString().replace(/[:.]/g, '-');
    const logFile = join(stateDir(), 'logs', `${lab.id}-${target}-${runId}.log`);

    if (dryRun) {
      const inner: StepRunner = target === 'local' ? new LocalRunner(new LocalSession(undefined, engine), steps) : new ClusterRunner(vars);
      const runner = new DryRunner(inner);
      if (ctx.globals.json) {
        ctx.stdout.write(
          JSON.stringify(
            {
              lab: lab.id,
              target,
              dry_run: true,
              steps: steps.map((s) => ({ id: s.step.id, section: s.sectionId, title: s.step.title, would_run: runner.preview(s.step) })),
            },
            null,
            2,
          ) + '\n',
        );
      } else {
        // Belt and braces: whatever path a secret took into the text, it leaves masked.
        ctx.stdout.write(
          maskSecrets(
            dryRunScript(lab, target, runner, vars, inner instanceof ClusterRunner ? inner : undefined),
            secretValues({ argv: [] }),
          ) + '\n',
        );
      }
      return 0;
    }

    const ppath = progressPath(lab.id, target);
    const resumeCommand = `dynamo-lab start --lab ${lab.id} --target ${target}`;
    if (values.reset) resetProgress(ppath);
    const loaded = loadProgress(
      ppath,
      lab.id,
      steps.map((s) => s.step.id),
    );
    if (loaded.notice) ctx.stderr.write(chalk.yellow(loaded.notice) + '\n');
    let saved = loaded.statuses;
    // A finished lab starts over rather than opening on "complete".
    if (from === undefined && steps.every((s) => saved[s.step.id] === 'done' || saved[s.step.id] === 'skipped')) saved = {};

    if (engine === 'dynamo')
      await prepareDynamoEngine({
        yes: Boolean(values.yes) || !ctx.interactive,
        stderr: ctx.stderr,
        interactive: ctx.interactive && !ctx.globals.json,
      });
    const session = new LocalSession(join(stateDir(), 'logs', `${lab.id}-${target}-${runId}-components.log`), engine);
    const runner: StepRunner = target === 'local' ? new LocalRunner(session, steps) : new ClusterRunner(vars);
    const controller = new LabController({ lab, target, runner, progressPath: ppath, saved, from, signal: ctx.signal, logFile });

    try {
      if (ctx.interactive && !ctx.globals.json) {
        const { default: React } = await import('react');
        const { render } = await import('ink');
        const { LabApp } = await import('../../ui/LabApp.js');
        const interrupt = () => process.kill(process.pid, 'SIGINT');
        const app = render(
          React.createElement(LabApp, {
            controller,
            title: lab.title,
            labId: lab.id,
            target,
            footer: `progress: ${ppath} · log: ${logFile}`,
            logFile,
            onInterrupt: interrupt,
          }),
          { exitOnCtrlC: false },
        );
        await app.waitUntilExit();
      } else {
        const say = (s: string) => {
          if (!ctx.globals.json || ctx.globals.verbose) ctx.stderr.write(s + '\n');
        };
        let printed = 0;
        let shownResults = 0;
        const printNew = () => {
          const st = controller.state.steps[controller.state.current];
          if (!st) return;
          for (; printed < st.output.length; printed++) say(`    ${st.output[printed]}`);
          for (; shownResults < (st.results?.length ?? 0); shownResults++)
            for (const l of resultLines(st.results![shownResults]!)) say(`    ${l}`);
        };
        const off = controller.subscribe(printNew);
        say(chalk.bold(`dynamo-lab · ${lab.title} · target ${target}`));
        await controller.runAll((s) => {
          printed = 0;
          shownResults = 0;
          say(chalk.cyan(`\n▶ ${s.sectionTitle} › ${s.step.title}`));
          for (const p of runner.preview(s.step)) say(chalk.magenta(`  ${p}`));
        });
        off();
        const cur = controller.state.steps[controller.state.current];
        if (cur?.status === 'failed') {
          // The reason goes to stderr even with --json (the JSON document carries it too).
          ctx.stderr.write(`${chalk.red('✗')} ${controller.currentStep()?.step.title}: ${cur.error}\n`);
          const hint = controller.currentStep()?.step.hint;
          if (hint) ctx.stderr.write(chalk.yellow(`Hint: ${hint}`) + '\n');
          ctx.stderr.write(chalk.dim(`Full log: ${logFile}. Fix the problem and run \`${resumeCommand}\` to resume at this step.`) + '\n');
        }
      }
    } finally {
      const stopped = await runner.close();
      if (stopped.length && !ctx.globals.json) ctx.stderr.write(chalk.dim(`stopped: ${stopped.join('; ')}\n`));
    }

    const st = controller.state;
    const status: StartJson['status'] =
      ctx.signal.aborted || st.phase === 'interrupted'
        ? 'interrupted'
        : st.phase === 'finished'
          ? 'finished'
          : st.phase === 'quit'
            ? 'quit'
            : 'failed';
    const curState = st.steps[st.current];
    const failedHere = curState?.status === 'failed';
    const done = st.steps.filter((s) => s.status === 'done' || s.status === 'skipped').length;
    if (status === 'quit' || status === 'interrupted') {
      ctx.stderr.write(
        `${status === 'quit' ? 'Quit' : 'Stopped'} at step ${st.current + 1}/${st.steps.length} (“${controller.currentStep()?.step.title ?? ''}”). Progress saved: ${done} of ${st.steps.length} steps done, in ${ppath}.\nResume with: ${resumeCommand}\n`,
      );
    } else if (status === 'finished' && !ctx.globals.json && !(ctx.interactive && !ctx.globals.json)) {
      ctx.stderr.write(chalk.green(`Lab ${lab.id} complete. Run \`dynamo-lab start --lab ${lab.id}\` to go through it once more.`) + '\n');
    }
    if (ctx.globals.json) {
      const failedStep = failedHere ? controller.currentStep() : undefined;
      const doc: StartJson = {
        lab: lab.id,
        target,
        status,
        sections: controller.sectionSummary().map(({ id, status: s }) => ({ id, status: s })),
        steps: st.steps.map((s) => ({
          id: s.id,
          status: s.status,
          ...(s.error ? { error: s.error } : {}),
          ...(s.results?.length ? { results: s.results } : {}),
        })),
        ...(session.demo.length ? { comparison: compareModes(session.demo) } : {}),
        ...(abTables(st.steps).length ? { ab: abTables(st.steps) } : {}),
        ...(failedStep
          ? {
              error: {
                message: `${failedStep.step.title}: ${curState!.error}`,
                hint: failedStep.step.hint ?? `See the log file ${logFile}.`,
              },
            }
          : {}),
        ...(status === 'interrupted' ? { error: { message: 'Interrupted.', hint: `Resume with: ${resumeCommand}` } } : {}),
        ...(status !== 'finished' ? { resume: resumeCommand } : {}),
        demo: session.demo.map((d) => ({
          mode: d.mode,
          group: d.group,
          prompt: d.prompt,
          worker: d.worker,
          cached_tokens: d.cached_tokens,
          prompt_tokens: d.prompt_tokens,
          ttft_ms: d.ttft_ms,
        })),
        endpoints: session.endpoints,
        progress_file: ppath,
        log_file: logFile,
      };
      ctx.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    }
    if (status === 'interrupted') return 130;
    // Quitting on a failed step is still a failure.
    return status === 'failed' || failedHere ? 1 : 0;
  },
};
