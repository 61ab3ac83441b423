import React from 'react';
import { Box, Text } from 'ink';
import { tableText, type StepResult } from '../lab/results.js';

/**
 * A table result: the header on top, aligned columns laid out for `width` (cells wrap, a bar
 * column may be left out with a note, narrow terminals get one block per row; nothing is cut);
 * a check: a PASS/FAIL line.
 */
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
  const t = tableText(result, width);
  return (
    <Box flexDirection="column" marginTop={1}>
      {result.title ? <Text bold>{result.title}</Text> : null}
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
      {[...(t.note ? [t.note] : []), ...(result.notes ?? [])].map((n, i) => (
        <Text key={`n${i}`} dimColor wrap="wrap">
          {n}
        </Text>
      ))}
    </Box>
  );
}
