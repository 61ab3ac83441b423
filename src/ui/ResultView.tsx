import React from 'react';
import { Box, Text } from 'ink';
import { columnWidths, padCell, type StepResult } from '../lab/results.js';

/** A table result: aligned columns, the header always on top; a check: a PASS/FAIL line. */
/** Column widths that fit `width`: the widest left-aligned (text) column gives way first, cells get "…". */
export function fitWidths(result: Extract<StepResult, { kind: 'table' }>, width: number): number[] {
  const w = columnWidths(result);
  let over = w.reduce((a, b) => a + b, 0) + 2 * (w.length - 1) - width;
  while (over > 0) {
    let idx = -1;
    for (let i = 0; i < w.length; i++) if (result.columns[i]!.align !== 'right' && w[i]! > 8 && (idx < 0 || w[i]! > w[idx]!)) idx = i;
    if (idx < 0) break;
    const cut = Math.min(over, w[idx]! - 8);
    w[idx] = w[idx]! - cut;
    over -= cut;
  }
  return w;
}

const fit = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, Math.max(0, n - 1))}…`);

/** One table row as text, each cell cut to its width. */
export function tableRow(result: Extract<StepResult, { kind: 'table' }>, w: readonly number[], cells: readonly string[]): string {
  return cells
    .map((c, i) => padCell(fit(c, w[i]!), w[i]!, result.columns[i]!.align))
    .join('  ')
    .trimEnd();
}

export function ResultView({ result, width = 200 }: { readonly result: StepResult; readonly width?: number }): React.ReactElement {
  if (result.kind === 'check') {
    return (
      <Text wrap="wrap">
        <Text color={result.ok ? 'green' : 'red'} bold>
          {result.ok ? '✓ PASS ' : '✗ FAIL '}
        </Text>
        {result.text}
      </Text>
    );
  }
  const w = fitWidths(result, width);
  const row = (cells: readonly string[]) => tableRow(result, w, cells);
  return (
    <Box flexDirection="column" marginTop={1}>
      {result.title ? <Text bold>{result.title}</Text> : null}
      <Text bold color="cyan" wrap="truncate-end">
        {row(result.columns.map((c) => c.header))}
      </Text>
      {result.rows.map((r, i) => (
        <Text key={i} wrap="truncate-end">
          {row(r)}
        </Text>
      ))}
      {(result.notes ?? []).map((n, i) => (
        <Text key={`n${i}`} dimColor wrap="wrap">
          {n}
        </Text>
      ))}
    </Box>
  );
}
