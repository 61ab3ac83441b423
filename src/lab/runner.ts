/**
 * Runners do the work of a step. The engine picks one at startup and never branches on it:
 *
 * - LocalRunner: the step's local equivalent (built-in actions: sim workers, embedded router…)
 * - ClusterRunner: the step's cluster commands, argv arrays through execa
 * - DryRunner: prints what either of the above would do, runs nothing
 */
import { stripVTControlCharacters } from 'node:util';
import { packagePath } from '../base/paths.js';
import { actionFor, type ActionResult } from './actions/index.js';
import { displayCommand, maskSecrets, resolveCommand, secretValues } from './commands.js';
import type { LabEngine, LocalSession } from './session.js';
import type { StepResult } from './results.js';
import type { CommandSpec, FlatStep, LocalAction, Step, TargetWork } from './types.js';

export interface RunContext {
  readonly signal: AbortSignal;
  readonly out: (line: string) => void;
  readonly emit: (result: StepResult) => void;
}

export interface StepRunner {
  readonly kind: 'local' | 'cluster' | 'dry-run';
  /** What the step will do, shown before it runs (shell-quoted commands or a local description). */
  preview(step: Step): string[];
  run(step: Step, ctx: RunContext): Promise<ActionResult>;
  /** Release everything the runner started (idempotent). */
  close(): Promise<string[]>;
}

function describeAction(a: LocalAction, engine: LabEngine): string {
  const def = actionFor(a.action, engine);
  return def ? def.describe(a.with ?? {}) : `(unknown action ${a.action})`;
}

export class LocalRunner implements StepRunner {
  readonly kind = 'local' as const;

  constructor(
    readonly session: LocalSession,
    /** All steps of the lab, to find which step provides a resource a resumed step needs. */
    private readonly steps: readonly FlatStep[],
  ) {}

  preview(step: Step): string[] {
    const w = step.local;
    const lines: string[] = [];
    if (w?.run) lines.push(`local: ${describeAction(w.run, this.session.engine)}`);
    if (w?.note) lines.push(w.note);
    if (step.verify?.local) lines.push(`then check: ${describeAction(step.verify.local, this.session.engine)}`);
    if (!lines.length && step.cluster?.commands?.length) lines.push('(cluster-only step: nothing to run locally)');
    return lines;
  }

  private async runAction(a: LocalAction, ctx: RunContext, depth = 0): Promise<ActionResult> {
    const def = actionFor(a.action, this.session.engine);
    if (!def) return { ok: false, error: `unknown local action "${a.action}" in the lab definition` };
    for (const need of def.requires ?? []) {
      if (this.session.has(need)) continue;
      // Resuming in a new process: re-run the step that provides this resource first.
      const provider = this.steps.find(
        (s) => s.step.local?.run && actionFor(s.step.local.run.action, this.session.engine)?.provides?.includes(need),
      );
      if (!provider || depth > 3) return { ok: false, error: `this step needs ${need}, and no earlier step of the lab starts them` };
      ctx.out(`(${need} are not running in this session: re-running "${provider.step.title}" first)`);
      const r = await this.runAction(provider.step.local!.run!, ctx, depth + 1);
      if (!r.ok) return r;
    }
    return def.run(a.with ?? {}, { session: this.session, signal: ctx.signal, out: ctx.out, emit: ctx.emit });
  }

  async run(step: Step, ctx: RunContext): Promise<ActionResult> {
    const w = step.local;
    if (w?.run) {
      const r = await this.runAction(w.run, ctx);
      if (!r.ok) return r;
    }
    if (step.verify?.local) return this.runAction(step.verify.local, ctx);
    return { ok: true };
  }

  close(): Promise<string[]> {
    return this.session.stop();
  }
}

/**
 * The reason a command failed, from the end of its output: its "Error:" line (and "Try:"),
 * else the last line that reads like an error, else the last line.
 */
function failureReason(tail: readonly string[]): string {
  if (!tail.length) return '';
  const lines = tail.map((l) => stripVTControlCharacters(l));
  let errIdx = -1;
  lines.forEach((l, i) => {
    if (/^(Error|error):/.test(l)) errIdx = i;
  });
  if (errIdx >= 0) {
    const tryLine = lines.slice(errIdx + 1).find((l) => /^Try:/.test(l));
    return `: ${lines[errIdx]!.replace(/^(Error|error):\s*/, '')}${tryLine ? ` (${tryLine})` : ''}`;
  }
  const bad = [...lines].reverse().find((l) => /error|fail|unable|cannot|refused|not found|forbidden|denied|timed? ?out/i.test(l));
  return `: ${bad ?? lines.at(-1)!}`;
}

/** Resolve `dynamo-lab` in lab commands to this very installation (works without a global install). */
function selfArgv(argv: readonly string[]): { file: string; args: string[] } {
  if (argv[0] === 'dynamo-lab') return { file: process.execPath, args: [...process.execArgv, process.argv[1]!, ...argv.slice(1)] };
  return { file: argv[0]!, args: argv.slice(1) };
}

export class ClusterRunner implements StepRunner {
  readonly kind = 'cluster' as const;

  constructor(private readonly vars: Readonly<Record<string, string>>) {}

  /** The step's commands (then its verify commands), resolved: what `run` executes, in order. */
  commands(step: Step): CommandSpec[] {
    return [...this.commandsOf(step.cluster), ...this.commandsOf(step.verify?.cluster)];
  }

  private commandsOf(work: TargetWork | undefined): CommandSpec[] {
    return (work?.commands ?? []).map((c) => {
      const r = resolveCommand(c, this.vars);
      // Lab files name manifests relative to the package (`manifests/…`); the user may run from anywhere.
      return { ...r, argv: r.argv.map((a) => (a.startsWith('manifests/') ? packagePath(a) : a)) };
    });
  }

  preview(step: Step): string[] {
    const lines = this.commandsOf(step.cluster).map((c) => `${c.manual ? '(run by hand) ' : ''}$ ${displayCommand(c)}`);
    if (step.cluster?.note) lines.push(step.cluster.note);
    for (const c of this.commandsOf(step.verify?.cluster)) lines.push(`then check: $ ${displayCommand(c)}`);
    return lines;
  }

  private async exec(cmd: CommandSpec, ctx: RunContext): Promise<ActionResult> {
    if (cmd.manual) {
      ctx.out(`Run this yourself (it needs a terminal of its own): ${displayCommand(cmd)}`);
      return { ok: true };
    }
    ctx.out(`$ ${displayCommand(cmd)}`);
    const secrets = secretValues(cmd);
    const { file, args } = selfArgv(cmd.argv);
    try {
      const { execa } = await import('execa');
      const proc = execa(file, args, {
        env: { ...cmd.env },
        cancelSignal: ctx.signal,
        forceKillAfterDelay: 3000,
        reject: false,
        all: true,
        stdin: 'ignore',
      });
      const tail: string[] = [];
      for await (const line of proc.iterable({ from: 'all' })) {
        const l = maskSecrets(String(line), secrets);
        ctx.out(l);
        if (l.trim()) tail.push(l.trim());
        if (tail.length > 20) tail.shift();
      }
      const r = await proc;
      if (r.isCanceled) return { ok: false, error: 'interrupted' };
      if (r.exitCode !== 0) return { ok: false, error: `${cmd.argv[0]} exited with code ${r.exitCode ?? r.signal}${failureReason(tail)}` };
      return { ok: true };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') return { ok: false, error: `${cmd.argv[0]} is not installed or not on PATH` };
      return { ok: false, error: maskSecrets(e.message, secrets) };
    }
  }

  async run(step: Step, ctx: RunContext): Promise<ActionResult> {
    if (step.cluster?.note) ctx.out(step.cluster.note);
    for (const c of [...this.commandsOf(step.cluster), ...this.commandsOf(step.verify?.cluster)]) {
      const r = await this.exec(c, ctx);
      if (!r.ok) return r;
    }
    return { ok: true };
  }

  async close(): Promise<string[]> {
    return [];
  }
}

export class DryRunner implements StepRunner {
  readonly kind = 'dry-run' as const;

  constructor(private readonly inner: StepRunner) {}

  preview(step: Step): string[] {
    return this.inner.preview(step);
  }

  async run(step: Step, ctx: RunContext): Promise<ActionResult> {
    for (const line of this.inner.preview(step)) ctx.out(`would run: ${line}`);
    return { ok: true };
  }

  async close(): Promise<string[]> {
    return [];
  }
}
