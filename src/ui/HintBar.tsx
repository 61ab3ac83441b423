import React from 'react';
import { Box, Text } from 'ink';
import type { KeyBinding } from './keys.js';

type Properties = { readonly bindings: readonly KeyBinding[]; readonly extra?: string; readonly width?: number };

const SEP = ' · ';

/**
 * `Enter run · s skip · h hint · q quit (progress is saved)` on one line. When that is wider
 * than `width`, the keys with a short description use it (`q quit`), so no key is squeezed.
 */
export function HintBar({ bindings, extra, width = Number.POSITIVE_INFINITY }: Properties): React.ReactElement {
  const shown = bindings.filter((b) => b.label);
  const length = (short: boolean) =>
    shown.reduce(
      (a, b, i) => a + (i > 0 ? SEP.length : 0) + [...b.label!].length + 1 + (short ? (b.short ?? b.description) : b.description).length,
      0,
    );
  const short = length(false) > width;
  return (
    <Box>
      <Text wrap="truncate-end">
        {shown.map((b, i) => (
          <Text key={b.key}>
            {i > 0 ? <Text dimColor>{SEP}</Text> : null}
            <Text bold color={b.dangerous ? 'red' : 'cyan'}>
              {b.label}
            </Text>
            <Text dimColor> {short ? (b.short ?? b.description) : b.description}</Text>
          </Text>
        ))}
        {extra ? <Text dimColor>{`   ${extra}`}</Text> : null}
      </Text>
    </Box>
  );
}
