/**
 * Text laid out as terminal rows of a given width, for the step box and the finished steps'
 * scrollback alike: paragraphs wrapped (the space a row breaks at is dropped), diagrams cut,
 * results as rows.
 */
import wrapAnsi from 'wrap-ansi';
import { tableText, type StepResult } from '../lab/results.js';

/** One terminal row of the step box or of a finished step. */
export interface Line {
  readonly text: string;
  readonly color?: string;
  readonly bold?: boolean;
  readonly dim?: boolean;
}

/** Wrap each paragraph to the width; a paragraph's leading indent becomes a hanging indent. */
export function wrapped(text: string, width: number, style: Omit<Line, 'text'> = {}): Line[] {
  return text.split('\n').flatMap((para) => {
    const indent = /^\s*/.exec(para)![0];
    if (!para.trim()) return [{ text: '', ...style }];
    return wrapAnsi(para.slice(indent.length), Math.max(10, width - indent.length), { hard: true, trim: true })
      .split('\n')
      .map((t) => ({ text: indent + t, ...style }));
  });
}

/** Diagrams are kept verbatim: cut at the width, never re-wrapped. */
export function verbatim(text: string, width: number, style: Omit<Line, 'text'> = {}): Line[] {
  return text.split('\n').map((t) => ({ text: t.length > width ? `${t.slice(0, Math.max(0, width - 1))}…` : t, ...style }));
}

/** A result's rows: a check line, or a table with its title, header and notes (after an empty row). */
export function resultRows(r: StepResult, width: number): Line[] {
  if (r.kind === 'check') return wrapped(`${r.ok ? '✓ PASS' : '✗ FAIL'} ${r.text}`, width, { color: r.ok ? 'green' : 'red' });
  const t = tableText(r, width);
  return [
    { text: '' },
    ...(r.title ? wrapped(r.title, width, { bold: true }) : []),
    ...(t.header ?? []).map((text) => ({ text, bold: true, color: 'cyan' })),
    ...t.rows.flat().map((text) => ({ text })),
    ...[...(t.note ? [t.note] : []), ...(r.notes ?? [])].flatMap((n) => wrapped(n, width, { dim: true })),
  ];
}
