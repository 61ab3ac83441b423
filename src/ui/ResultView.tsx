import React from 'react';
import { Box, Text } from 'ink';
import type { StepResult } from '../lab/results.js';
import { resultRows, type Line } from './lines.js';

/** One row, already laid out for the width. */
export function LineText({ line }: { readonly line: Line }): React.ReactElement {
  return (
    <Text color={line.color} bold={line.bold} dimColor={line.dim} wrap="truncate-end">
      {line.text === '' ? ' ' : line.text}
    </Text>
  );
}

/**
 * A result as it stays in the scrollback, in the rows the step box shows it in (see resultRows):
 * a table with its header on top, aligned columns laid out for `width` (cells wrap, a bar column
 * may be left out with a note, narrow terminals get one block per row; nothing is cut); a check:
 * a PASS/FAIL line, only the mark in colour.
 */
export function ResultView({ result, width = 200 }: { readonly result: StepResult; readonly width?: number }): React.ReactElement {
  const lines = resultRows(result, width);
  if (result.kind === 'check') {
    const mark = result.ok ? '✓ PASS' : '✗ FAIL';
    return (
      <Box flexDirection="column">
        {lines.map((l, i) =>
          i === 0 ? (
            <Text key={i}>
              <Text color={l.color} bold>
                {mark}
              </Text>
              {l.text.slice(mark.length)}
            </Text>
          ) : (
            <Text key={i}>{l.text}</Text>
          ),
        )}
      </Box>
    );
  }
  return (
    <Box flexDirection="column">
      {lines.map((l, i) => (
        <LineText key={i} line={l} />
      ))}
    </Box>
  );
}
