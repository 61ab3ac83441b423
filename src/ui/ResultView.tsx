import React from 'react';
import { Box, Text } from 'ink';
import wrapAnsi from 'wrap-ansi';
import { tableText, type StepResult } from '../lab/results.js';

/**
 * Rows of `text` at `width`, broken at spaces that are then dropped. Ink's own wrapping keeps
 * them: a word that ends exactly at the edge starts the next row with a space.
 */
function rows(text: string, width: number): string[] {
  return wrapAnsi(text, Math.max(10, width), { hard: true, trim: true }).split('\n');
}

/**
 * A table result: the header on top, aligned columns laid out for `width` (cells wrap, a bar
 * column may be left out with a note, narrow terminals get one block per row; nothing is cut);
 * a check: a PASS/FAIL line.
 */
export function ResultView({ result, width = 200 }: { readonly result: StepResult; readonly width?: number }): React.ReactElement {
  if (result.kind === 'check') {
    const mark = result.ok ? '✓ PASS' : '✗ FAIL';
    const [first = '', ...more] = rows(`${mark} ${result.text}`, width);
    return (
      <Box flexDirection="column">
        <Text>
          <Text color={result.ok ? 'green' : 'red'} bold>
            {mark}
          </Text>
          {first.slice(mark.length)}
        </Text>
        {more.map((l, i) => (
          <Text key={i}>{l}</Text>
        ))}
      </Box>
    );
  }
  const t = tableText(result, width);
  return (
    <Box flexDirection="column" marginTop={1}>
      {result.title
        ? rows(result.title, width).map((l, i) => (
            <Text key={`t${i}`} bold>
              {l}
            </Text>
          ))
        : null}
      {(t.header ?? []).map((l, i) => (
        <Text key={`h${i}`} bold color="cyan" wrap="truncate-end">
          {l}
        </Text>
      ))}
      {t.rows.flat().map((l, i) => (
        <Text key={i} wrap="truncate-end">
          {l === '' ? ' ' : l}
        </Text>
      ))}
      {[...(t.note ? [t.note] : []), ...(result.notes ?? [])]
        .flatMap((n) => rows(n, width))
        .map((l, i) => (
          <Text key={`n${i}`} dimColor>
            {l}
          </Text>
        ))}
    </Box>
  );
}
