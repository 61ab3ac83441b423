/**
 * What an action is. Lab data names actions (`run: {action: sim.start, with: {...}}`); each
 * says, before it runs, what it will do (`describe`), which session resources it needs
 * (`requires`) and which it creates (`provides`), so a resumed lab can bring back what an
 * earlier process had started.
 */
import type { LocalSession } from '../session.js';
import type { StepResult } from '../results.js';

export interface ActionContext {
  readonly session: LocalSession;
  readonly signal: AbortSignal;
  /** Progress lines for the person (bounded view + log). */
  readonly out: (line: string) => void;
  /** A structured result (table, pass/fail check) shown in full when the step is done. */
  readonly emit: (result: StepResult) => void;
}

export type ActionResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

export interface ActionDef {
  describe(params: Readonly<Record<string, unknown>>): string;
  readonly requires?: readonly string[];
  readonly provides?: readonly string[];
  run(params: Readonly<Record<string, unknown>>, ctx: ActionContext): Promise<ActionResult>;
}

/** A numeric parameter, or the default. */
export const num = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
/** A string parameter, or the default. */
export const str = (v: unknown, d: string): string => (typeof v === 'string' ? v : d);

/** The step's `pattern` parameter as a RegExp (default: match everything; `flags` default 'i'), or the error to report. */
export function patternParam(v: unknown, flags = 'i'): RegExp | { ok: false; error: string } {
  try {
    return new RegExp(str(v, '.'), flags);
  } catch (err) {
    return { ok: false, error: `bad pattern: ${(err as Error).message}` };
  }
}
