/**
 * Structured step results: tables and pass/fail checks that actions emit next to their
 * progress lines. The TUI renders them as components (aligned columns, a header that is always
 * there), the non-interactive mode and the log file print them as text, --json carries them.
 */

export interface TableColumn {
  readonly header: string;
  readonly align?: 'left' | 'right';
}

export interface TableResult {
  readonly kind: 'table';
  readonly title?: string;
  readonly columns: readonly TableColumn[];
  readonly rows: ReadonlyArray<readonly string[]>;
  /** Lines under the table (totals, per-worker counts). */
  readonly notes?: readonly string[];
}

export interface CheckResult {
  readonly kind: 'check';
  readonly ok: boolean;
  readonly text: string;
}

export type StepResult = TableResult | CheckResult;

/** Column widths: the widest cell (header included) of each column. */
export function columnWidths(t: Pick<TableResult, 'columns' | 'rows'>): number[] {
  return t.columns.map((c, i) => Math.max(c.header.length, ...t.rows.map((r) => (r[i] ?? '').length)));
}

export function padCell(s: string, width: number, align: 'left' | 'right' = 'left'): string {
  return align === 'right' ? s.padStart(width) : s.padEnd(width);
}

/** A result as plain lines (logs, CI, non-interactive runs). */
export function resultLines(r: StepResult): string[] {
  if (r.kind === 'check') return [`${r.ok ? 'PASS' : 'FAIL'}  ${r.text}`];
  const w = columnWidths(r);
  const row = (cells: readonly string[]) =>
    cells
      .map((c, i) => padCell(c, w[i]!, r.columns[i]!.align))
      .join('  ')
      .trimEnd();
  return [...(r.title ? [r.title] : []), row(r.columns.map((c) => c.header)), ...r.rows.map(row), ...(r.notes ?? [])];
}
