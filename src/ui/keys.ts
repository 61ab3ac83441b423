/**
 * Key bindings as data: the hint bar and the input handler both read this table, so the
 * hints never drift from what the keys do. `when` says in which phase a key applies, and
 * `only` (optional) in which situation: a key that would do nothing is neither shown nor bound.
 */
import type { Phase } from '../lab/state.js';

export type KeyCommand =
  | 'run'
  | 'skip'
  | 'quit'
  | 'hint'
  | 'confirm'
  | 'cancel'
  | 'expand'
  | 'scroll-up'
  | 'scroll-down'
  | 'page-up'
  | 'page-down';

/** What the screen has right now, for keys that only apply sometimes. */
export interface KeyContext {
  /** The current step has a hint. */
  readonly hasHint?: boolean;
  /** The previous step has lines the scrollback does not show. */
  readonly canExpand?: boolean;
  /** The step box is longer than the screen. */
  readonly canScroll?: boolean;
}

export interface KeyBinding {
  readonly key: string;
  /** Shown in the hint bar; bindings without a label are bound but not shown (the scroll keys' aliases). */
  readonly label?: string;
  readonly description: string;
  /** Used instead of `description` when the whole bar does not fit the terminal's width. */
  readonly short?: string;
  readonly command: KeyCommand;
  readonly when: readonly Phase[];
  readonly only?: keyof KeyContext;
  readonly dangerous?: boolean;
}

export const KEY_BINDINGS: readonly KeyBinding[] = [
  { key: 'return', label: 'Enter', description: 'run', command: 'run', when: ['ready'] },
  { key: 's', label: 's', description: 'skip', command: 'skip', when: ['ready'] },
  { key: 'h', label: 'h', description: 'hint', command: 'hint', when: ['ready', 'running'], only: 'hasHint' },
  {
    key: 'e',
    label: 'e',
    description: 'show hidden output',
    short: 'hidden output',
    command: 'expand',
    when: ['ready', 'running'],
    only: 'canExpand',
  },
  { key: 'up', label: '↑↓', description: 'scroll', command: 'scroll-up', when: ['ready', 'running', 'confirm'], only: 'canScroll' },
  { key: 'down', description: 'scroll', command: 'scroll-down', when: ['ready', 'running', 'confirm'], only: 'canScroll' },
  { key: 'pageup', description: 'page up', command: 'page-up', when: ['ready', 'running', 'confirm'], only: 'canScroll' },
  { key: 'pagedown', description: 'page down', command: 'page-down', when: ['ready', 'running', 'confirm'], only: 'canScroll' },
  { key: 'y', label: 'y', description: 'yes, run it', short: 'yes', command: 'confirm', when: ['confirm'], dangerous: true },
  { key: 'n', label: 'n', description: 'no', command: 'cancel', when: ['confirm'] },
  { key: 'q', label: 'q', description: 'quit (progress is saved)', short: 'quit', command: 'quit', when: ['ready', 'confirm'] },
];

export function bindingsFor(phase: Phase, ctx: KeyContext = {}): KeyBinding[] {
  return KEY_BINDINGS.filter((b) => b.when.includes(phase) && (!b.only || ctx[b.only]));
}

/** Map an ink input event to a command in the given phase. */
export function commandFor(
  phase: Phase,
  input: string,
  key: { return?: boolean; escape?: boolean; upArrow?: boolean; downArrow?: boolean; pageUp?: boolean; pageDown?: boolean },
  ctx: KeyContext = {},
): KeyCommand | undefined {
  if (key.escape && phase === 'confirm') return 'cancel';
  const name = key.return
    ? 'return'
    : key.upArrow
      ? 'up'
      : key.downArrow
        ? 'down'
        : key.pageUp
          ? 'pageup'
          : key.pageDown
            ? 'pagedown'
            : input.toLowerCase();
  return bindingsFor(phase, ctx).find((b) => b.key === name)?.command;
}
