/**
 * The lab's step state machine: a pure reducer, no I/O. The controller dispatches actions,
 * the runner does the work, the views render the state.
 *
 *   pending ──start──▶ running ──succeed──▶ done
 *      │                  └─────fail──────▶ failed ──start (retry)──▶ running
 *      └──skip──▶ skipped
 */
import type { FlatStep } from './types.js';
import type { StepResult } from './results.js';

export type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

export interface StepState {
  readonly id: string;
  readonly status: StepStatus;
  /** Last lines of output (bounded); the full log is in a file. */
  readonly output: readonly string[];
  /** Lines dropped from the front of `output` (the full text is in the log file). */
  readonly dropped?: number;
  /** Tables and checks, kept whole. */
  readonly results?: readonly StepResult[];
  readonly error?: string;
  readonly finishedAt?: string;
}

export type Phase = 'ready' | 'running' | 'confirm' | 'finished' | 'quit' | 'interrupted';

export interface LabState {
  readonly steps: readonly StepState[];
  /** Index of the step the user is on. */
  readonly current: number;
  readonly phase: Phase;
  /** Shown in the live area (e.g. the failed step's hint). */
  readonly showHint: boolean;
}

export type LabAction =
  | { readonly type: 'start' }
  | { readonly type: 'output'; readonly lines: readonly string[] }
  | { readonly type: 'result'; readonly result: StepResult }
  | { readonly type: 'succeed'; readonly at: string }
  | { readonly type: 'fail'; readonly error: string; readonly at: string }
  | { readonly type: 'skip'; readonly at: string }
  | { readonly type: 'ask-confirm' }
  | { readonly type: 'cancel-confirm' }
  | { readonly type: 'toggle-hint' }
  | { readonly type: 'quit' }
  | { readonly type: 'interrupt' };

export const OUTPUT_LINES_KEPT = 2000;

export function initialState(steps: readonly FlatStep[], saved: Readonly<Record<string, StepStatus>> = {}, from?: number): LabState {
  const states: StepState[] = steps.map((s) => {
    const prior = saved[s.step.id];
    // Only finished states survive a restart; a step that was running when the process died is pending again.
    const status: StepStatus = prior === 'done' || prior === 'skipped' ? prior : 'pending';
    return { id: s.step.id, status, output: [] };
  });
  let current = from ?? states.findIndex((s) => s.status === 'pending');
  if (from !== undefined) {
    // Starting from a chosen step re-opens it and everything after it.
    for (let i = from; i < states.length; i++) states[i] = { ...states[i]!, status: 'pending' };
  }
  if (current < 0) current = states.length;
  return { steps: states, current, phase: current >= states.length ? 'finished' : 'ready', showHint: false };
}

function replaceCurrent(state: LabState, patch: Partial<StepState>): readonly StepState[] {
  return state.steps.map((s, i) => (i === state.current ? { ...s, ...patch } : s));
}

function advance(state: LabState, steps: readonly StepState[]): LabState {
  let next = state.current + 1;
  while (next < steps.length && (steps[next]!.status === 'done' || steps[next]!.status === 'skipped')) next++;
  return { ...state, steps, current: next, phase: next >= steps.length ? 'finished' : 'ready', showHint: false };
}

export function reduce(state: LabState, action: LabAction): LabState {
  const cur = state.steps[state.current];
  switch (action.type) {
    case 'start':
      if (!cur || state.phase === 'running' || state.phase === 'finished') return state;
      return {
        ...state,
        steps: replaceCurrent(state, { status: 'running', output: [], dropped: 0, results: [], error: undefined }),
        phase: 'running',
        showHint: false,
      };
    case 'output': {
      if (!cur || state.phase !== 'running') return state;
      const all = [...cur.output, ...action.lines];
      const drop = Math.max(0, all.length - OUTPUT_LINES_KEPT);
      return { ...state, steps: replaceCurrent(state, { output: drop ? all.slice(drop) : all, dropped: (cur.dropped ?? 0) + drop }) };
    }
    case 'result':
      if (!cur || state.phase !== 'running') return state;
      return { ...state, steps: replaceCurrent(state, { results: [...(cur.results ?? []), action.result] }) };
    case 'succeed':
      if (!cur || state.phase !== 'running') return state;
      return advance(state, replaceCurrent(state, { status: 'done', finishedAt: action.at }));
    case 'fail':
      if (!cur || state.phase !== 'running') return state;
      return {
        ...state,
        steps: replaceCurrent(state, { status: 'failed', error: action.error, finishedAt: action.at }),
        phase: 'ready',
        showHint: true,
      };
    case 'skip':
      if (!cur || state.phase === 'running' || state.phase === 'finished') return state;
      return advance(state, replaceCurrent(state, { status: 'skipped', finishedAt: action.at }));
    case 'ask-confirm':
      return state.phase === 'ready' ? { ...state, phase: 'confirm' } : state;
    case 'cancel-confirm':
      return state.phase === 'confirm' ? { ...state, phase: 'ready' } : state;
    case 'toggle-hint':
      return { ...state, showHint: !state.showHint };
    case 'quit':
      return state.phase === 'running' ? state : { ...state, phase: 'quit' };
    case 'interrupt':
      return {
        ...state,
        steps: state.phase === 'running' ? replaceCurrent(state, { status: 'failed', error: 'interrupted' }) : state.steps,
        phase: 'interrupted',
      };
  }
}

/** Section status for the summary: done when every step is done or skipped. */
export function sectionStatus(states: readonly StepState[]): 'done' | 'failed' | 'skipped' | 'pending' | 'partial' {
  if (states.some((s) => s.status === 'failed')) return 'failed';
  if (states.every((s) => s.status === 'skipped')) return 'skipped';
  if (states.every((s) => s.status === 'done' || s.status === 'skipped')) return 'done';
  if (states.every((s) => s.status === 'pending')) return 'pending';
  return 'partial';
}
