/**
 * Structured step results: tables and pass/fail checks that actions emit next to their
 * progress lines. The TUI renders them as components (aligned columns, a header that is always
 * there), the non-interactive mode and the log file print them as text, --json carries them.
 *
 * A table is laid out for a width without losing a character: when its columns do not fit, a
 * column that only pictures another one (`visual`, e.g. a bar of a ratio shown as numbers next
 * to it) is left out first, with a note saying so; then the text columns get narrower and their
 * cells wrap onto more lines; if even that does not fit, every row is printed as
 * `header: value` pairs.
 */
import wrapAnsi from 'wrap-ansi';

export interface TableColumn {
  readonly header: string;
  readonly align?: 'left' | 'right';
  /** A picture of another column's value (a bar): left out, with a note, when the table does not fit. */
  readonly visual?: boolean;
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

/** Text columns are not made narrower than this; below it the table is stacked. */
const MIN_TEXT_COLUMN = 12;
const GAP = 2;

export type TableLayout =
  | { readonly kind: 'columns'; readonly keep: readonly number[]; readonly widths: readonly number[]; readonly dropped: readonly number[] }
  | { readonly kind: 'stacked' };

/** How a table fits `width` (see the file comment). */
export function tableLayout(t: Pick<TableResult, 'columns' | 'rows'>, width: number): TableLayout {
  const natural = columnWidths(t);
  const total = (idx: readonly number[], w: readonly number[]) => idx.reduce((a, i) => a + w[i]!, 0) + GAP * Math.max(0, idx.length - 1);
  const all = t.columns.map((_, i) => i);
  if (total(all, natural) <= width) return { kind: 'columns', keep: all, widths: natural, dropped: [] };
  const dropped = all.filter((i) => t.columns[i]!.visual);
  const keep = all.filter((i) => !t.columns[i]!.visual);
  const w = [...natural];
  let over = total(keep, w) - width;
  while (over > 0) {
    // The widest text column gives way first.
    let idx = -1;
    for (const i of keep) if (t.columns[i]!.align !== 'right' && w[i]! > MIN_TEXT_COLUMN && (idx < 0 || w[i]! > w[idx]!)) idx = i;
    if (idx < 0) break;
    const cut = Math.min(over, w[idx]! - MIN_TEXT_COLUMN);
    w[idx] = w[idx]! - cut;
    over -= cut;
  }
  // Headers never wrap: a column is at least as wide as its header's longest word.
  if (over > 0 || keep.some((i) => w[i]! < Math.max(...t.columns[i]!.header.split(' ').map((x) => x.length)))) return { kind: 'stacked' };
  return { kind: 'columns', keep, widths: w, dropped };
}

function cellLines(s: string, width: number): string[] {
  if (s.length <= width) return [s];
  return wrapAnsi(s, width, { hard: true, trim: true }).split('\n');
}

/** One row (or the header) as one or more lines: cells wider than their column wrap within it. */
function rowLines(t: Pick<TableResult, 'columns'>, layout: Extract<TableLayout, { kind: 'columns' }>, cells: readonly string[]): string[] {
  const parts = layout.keep.map((i) => cellLines(cells[i] ?? '', layout.widths[i]!));
  const height = Math.max(1, ...parts.map((p) => p.length));
  const out: string[] = [];
  for (let k = 0; k < height; k++) {
    out.push(
      layout.keep
        .map((i, j) => padCell(parts[j]![k] ?? '', layout.widths[i]!, t.columns[i]!.align))
        .join(' '.repeat(GAP))
        .trimEnd(),
    );
  }
  return out;
}

export interface TableText {
  /** The header line(s); undefined when the table is stacked (each row names its fields). */
  readonly header?: readonly string[];
  /** Each row's lines. */
  readonly rows: ReadonlyArray<readonly string[]>;
  /** What the layout left out, said in words (a visual column), or undefined. */
  readonly note?: string;
}

/** The table's header and rows as lines of at most `width` characters, nothing cut. */
export function tableText(t: Pick<TableResult, 'columns' | 'rows'>, width = Number.POSITIVE_INFINITY): TableText {
  const layout = tableLayout(t, width);
  if (layout.kind === 'stacked') {
    return {
      rows: t.rows.map((r) => {
        const pairs = t.columns.map((c, i) => ({ header: c.header, value: r[i] ?? '' }));
        const field = (p: { header: string; value: string }) => (p.header ? `${p.header}: ${p.value}` : p.value);
        const body = pairs
          .slice(1)
          .filter((p) => p.value !== '')
          .map(field)
          .join(' · ');
        return [...cellLines(field(pairs[0]!), width), ...(body ? cellLines(body, Math.max(10, width - 2)).map((l) => `  ${l}`) : [])];
      }),
    };
  }
  const dropped = layout.dropped.map((i) => t.columns[i]!.header || 'bar chart').filter((h, i, a) => a.indexOf(h) === i);
  return {
    header: rowLines(
      t,
      layout,
      t.columns.map((c) => c.header),
    ),
    rows: t.rows.map((r) => rowLines(t, layout, r)),
    note: dropped.length ? `(the ${dropped.join(', ')} column${dropped.length === 1 ? ' is' : 's are'} left out at this width)` : undefined,
  };
}

/** A result as plain lines (logs, CI, non-interactive runs), at most `width` wide; nothing is cut. */
export function resultLines(r: StepResult, width = Number.POSITIVE_INFINITY): string[] {
  if (r.kind === 'check') return [`${r.ok ? 'PASS' : 'FAIL'}  ${r.text}`];
  const t = tableText(r, width);
  return [...(r.title ? [r.title] : []), ...(t.header ?? []), ...t.rows.flat(), ...(t.note ? [t.note] : []), ...(r.notes ?? [])];
}
