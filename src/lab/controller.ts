/**
 * The controller ties the pure reducer to a runner and the progress file. Views subscribe to
 * it and call its methods (run, skip, quit); the non-interactive mode calls runAll().
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { initialState, reduce, sectionStatus, type LabAction, type LabState, type StepStatus } from './state.js';
import { saveProgress } from './progress.js';
import type { StepRunner } from './runner.js';
import { resultLines, type StepResult } from './results.js';
import { flattenSteps, type FlatStep, type LabDefinition, type Target } from './types.js';

export interface ControllerOptions {
  readonly lab: LabDefinition;
  readonly target: Target;
  readonly runner: StepRunner;
  /** Where progress is saved; undefined = not saved (dry-run). */
  readonly progressPath?: string;
  readonly saved?: Readonly<Record<string, StepStatus>>;
  /** Start at this step index (from `--from`). */
  readonly from?: number;
  readonly signal: AbortSignal;
  /** Full output of every step, appended as it comes; the structured results go next to it (resultsFileOf). */
  readonly logFile?: string;
}

/** Where a run's structured results are kept: one JSON line per result, `{"step": id, "result": …}`. */
export function resultsFileOf(logFile: string): string {
  return `${logFile.replace(/\.log$/, '')}.results.jsonl`;
}

export class LabController {
  readonly steps: readonly FlatStep[];
  private stateNow: LabState;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly opts: ControllerOptions) {
    this.steps = flattenSteps(opts.lab);
    this.stateNow = initialState(this.steps, opts.saved, opts.from);
    if (opts.logFile) mkdirSync(dirname(opts.logFile), { recursive: true });
    opts.signal.addEventListener('abort', () => this.dispatch({ type: 'interrupt' }), { once: true });
  }

  get state(): LabState {
    return this.stateNow;
  }

  get runner(): StepRunner {
    return this.opts.runner;
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private dispatch(action: LabAction): void {
    const next = reduce(this.stateNow, action);
    if (next === this.stateNow) return;
    const finishedStep = action.type === 'succeed' || action.type === 'skip';
    this.stateNow = next;
    if (finishedStep || action.type === 'fail') this.persist();
    for (const l of this.listeners) l();
  }

  private persist(): void {
    if (!this.opts.progressPath) return;
    const steps: Record<string, { status: StepStatus; finishedAt?: string }> = {};
    for (const s of this.stateNow.steps)
      if (s.status !== 'pending' && s.status !== 'running') steps[s.id] = { status: s.status, finishedAt: s.finishedAt };
    try {
      saveProgress(this.opts.progressPath, { lab: this.opts.lab.id, labVersion: this.opts.lab.version, target: this.opts.target, steps });
    } catch {
      /* progress is a convenience; never fail the lab on it */
    }
  }

  private log(line: string): void {
    if (!this.opts.logFile) return;
    try {
      appendFileSync(this.opts.logFile, line + '\n');
    } catch {
      /* ignore */
    }
  }

  currentStep(): FlatStep | undefined {
    return this.steps[this.stateNow.current];
  }

  preview(): string[] {
    const cur = this.currentStep();
    return cur ? this.opts.runner.preview(cur.step) : [];
  }

  /** Run the current step; resolves when it has succeeded or failed. */
  async runCurrent(): Promise<boolean> {
    const cur = this.currentStep();
    if (!cur || this.opts.signal.aborted) return false;
    this.dispatch({ type: 'start' });
    this.log(`== ${cur.sectionTitle} / ${cur.step.title} (${cur.step.id})`);
    const out = (line: string) => {
      this.log(line);
      this.dispatch({ type: 'output', lines: [line] });
    };
    const emit = (result: StepResult) => {
      for (const l of resultLines(result)) this.log(l);
      if (this.opts.logFile) {
        try {
          appendFileSync(resultsFileOf(this.opts.logFile), `${JSON.stringify({ step: cur.step.id, result })}\n`);
        } catch {
          /* like the log: never fail the lab on it */
        }
      }
      this.dispatch({ type: 'result', result });
    };
    let ok = false;
    try {
      const r = await this.opts.runner.run(cur.step, { signal: this.opts.signal, out, emit });
      if (this.opts.signal.aborted) return false;
      if (r.ok) {
        this.dispatch({ type: 'succeed', at: new Date().toISOString() });
        ok = true;
      } else {
        this.log(`FAILED: ${r.error}`);
        this.dispatch({ type: 'fail', error: r.error, at: new Date().toISOString() });
      }
    } catch (err) {
      if (this.opts.signal.aborted) return false;
      const msg = (err as Error)?.message ?? String(err);
      this.log(`FAILED: ${msg}`);
      this.dispatch({ type: 'fail', error: msg, at: new Date().toISOString() });
    }
    return ok;
  }

  skip(): void {
    this.dispatch({ type: 'skip', at: new Date().toISOString() });
  }

  askConfirm(): void {
    this.dispatch({ type: 'ask-confirm' });
  }

  cancelConfirm(): void {
    this.dispatch({ type: 'cancel-confirm' });
  }

  toggleHint(): void {
    this.dispatch({ type: 'toggle-hint' });
  }

  quit(): void {
    this.dispatch({ type: 'quit' });
  }

  /** Non-interactive: run every remaining step in order; stop at the first failure. */
  async runAll(onStep?: (s: FlatStep) => void): Promise<boolean> {
    while (this.stateNow.phase === 'ready') {
      const cur = this.currentStep()!;
      onStep?.(cur);
      if (!(await this.runCurrent())) return false;
    }
    return this.stateNow.phase === 'finished';
  }

  sectionSummary(): Array<{ id: string; title: string; status: string }> {
    return this.opts.lab.sections.map((s) => {
      const ids = new Set(s.steps.map((st) => st.id));
      return { id: s.id, title: s.title, status: sectionStatus(this.stateNow.steps.filter((st) => ids.has(st.id))) };
    });
  }
}
