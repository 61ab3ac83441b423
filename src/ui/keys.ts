/**
 * Key bindings as data: the hint bar and the input handler both read this table, so the
 * hints never drift from what the keys do. `when` says in which phase a key applies.
 */
import type { Phase } from '../lab/state.js';

export type KeyCommand = 'run' | 'skip' | 'quit' | 'hint' | 'confirm' | 'cancel';

export interface KeyBinding {
  readonly key: string;
  /** Shown in the hint bar. */
  readonly label: string;
  readonly description: string;
  readonly command: KeyCommand;
  readonly when: readonly Phase[];
  readonly dangerous?: boolean;
}

export const KEY_BINDINGS: readonly KeyBinding[] = [
  { key: 'return', label: 'Enter', description: 'run', command: 'run', when: ['ready'] },
  { key: 's', label: 's', description: 'skip', command: 'skip', when: ['ready'] },
  { key: 'h', label: 'h', description: 'hint', command: 'hint', when: ['ready', 'running'] },
  { key: 'y', label: 'y', description: 'yes, run it', command: 'confirm', when: ['confirm'], dangerous: true },
  { key: 'n', label: 'n', description: 'no', command: 'cancel', when: ['confirm'] },
  { key: 'q', label: 'q', description: 'quit', command: 'quit', when: ['ready', 'confirm'] },
];

export function bindingsFor(phase: Phase): KeyBinding[] {
  return KEY_BINDINGS.filter((b) => b.when.includes(phase));
}

/** Map an ink input event to a command in the given phase. */
export function commandFor(phase: Phase, input: string, key: { return?: boolean; escape?: boolean }): KeyCommand | undefined {
  if (key.escape && phase === 'confirm') return 'cancel';
  const name = key.return ? 'return' : input.toLowerCase();
  return bindingsFor(phase).find((b) => b.key === name)?.command;
}
