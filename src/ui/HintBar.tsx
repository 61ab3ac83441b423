import React from 'react';
import { Box, Text } from 'ink';
import type { KeyBinding } from './keys.js';

type Properties = { readonly bindings: readonly KeyBinding[]; readonly extra?: string };

/** `Enter run · s skip · h hint · q quit` */
export function HintBar({ bindings, extra }: Properties): React.ReactElement {
  return (
    <Box>
      {bindings
        .filter((b) => b.label)
        .map((b, i) => (
          <Text key={b.key}>
            {i > 0 ? <Text dimColor> · </Text> : null}
            <Text bold color={b.dangerous ? 'red' : 'cyan'}>
              {b.label}
            </Text>
            <Text dimColor> {b.description}</Text>
          </Text>
        ))}
      {extra ? <Text dimColor>{`   ${extra}`}</Text> : null}
    </Box>
  );
}
