import React from 'react';
import { Box, Text } from 'ink';
import type { StepState } from '../lab/state.js';
import type { FlatStep } from '../lab/types.js';

const ICONS: Record<StepState['status'], { icon: string; color: string }> = {
  pending: { icon: '○', color: 'gray' },
  running: { icon: '●', color: 'yellow' },
  done: { icon: '✓', color: 'green' },
  failed: { icon: '✗', color: 'red' },
  skipped: { icon: '↷', color: 'gray' },
};

type DoneProps = { readonly step: FlatStep; readonly state: StepState; readonly showOutput: number };

/** A finished step as it stays in the scrollback: status icon, title, last lines of output. */
export function FinishedStep({ step, state, showOutput }: DoneProps): React.ReactElement {
  const { icon, color } = ICONS[state.status];
  const lines = state.output.slice(-showOutput);
  return (
    <Box flexDirection="column">
      <Text>
        <Text color={color}>{icon}</Text> <Text dimColor>{step.sectionTitle} ›</Text> {step.step.title}
        {state.status === 'skipped' ? <Text dimColor> (skipped)</Text> : null}
      </Text>
      {lines.map((l, i) => (
        <Text key={i} dimColor>
          {'  '}
          {l}
        </Text>
      ))}
    </Box>
  );
}

type CurrentProps = {
  readonly step: FlatStep;
  readonly state: StepState;
  readonly preview: readonly string[];
  readonly outputLines: number;
  readonly showHint: boolean;
  readonly position: string;
};

/** The step the user is on: explanation, diagram, what will run, live output, hint. */
export function CurrentStep({ step, state, preview, outputLines, showHint, position }: CurrentProps): React.ReactElement {
  const s = step.step;
  const { icon, color } = ICONS[state.status];
  const output = state.output.slice(-outputLines);
  return (
    <Box flexDirection="column" borderStyle="round" borderColor={state.status === 'failed' ? 'red' : 'cyan'} paddingX={1}>
      <Text>
        <Text dimColor>
          {step.sectionTitle} · step {position}
        </Text>
      </Text>
      <Text bold>
        <Text color={color}>{icon}</Text> {s.title}
      </Text>
      {s.body && state.status !== 'running' ? <Text>{s.body.trimEnd()}</Text> : null}
      {s.diagram && state.status !== 'running' ? (
        <Box marginTop={1}>
          <Text color="cyan">{s.diagram.trimEnd()}</Text>
        </Box>
      ) : null}
      {preview.length ? (
        <Box flexDirection="column" marginTop={1}>
          <Text dimColor>{state.status === 'running' ? 'Running:' : 'Will run:'}</Text>
          {preview.map((p, i) => (
            <Text key={i} color="magenta">
              {'  '}
              {p}
            </Text>
          ))}
        </Box>
      ) : null}
      {output.length ? (
        <Box flexDirection="column" marginTop={1}>
          {output.map((l, i) => (
            <Text key={i}>{l}</Text>
          ))}
        </Box>
      ) : null}
      {state.status === 'failed' && state.error ? (
        <Text color="red">
          Failed: {state.error}
        </Text>
      ) : null}
      {showHint && s.hint ? <Text color="yellow">Hint: {s.hint}</Text> : null}
    </Box>
  );
}
