import React from 'react';
import { Box, Static, Text } from 'ink';
import type { LabState } from '../lab/state.js';
import type { FlatStep } from '../lab/types.js';
import { CurrentStep, FinishedStep } from './StepView.js';
import { HintBar } from './HintBar.js';
import { bindingsFor } from './keys.js';

type Properties = {
  readonly title: string;
  readonly target: string;
  readonly runnerKind: string;
  readonly steps: readonly FlatStep[];
  readonly state: LabState;
  readonly preview: readonly string[];
  readonly sections: ReadonlyArray<{ id: string; title: string; status: string }>;
  /** Progress file / log file paths shown at the bottom. */
  readonly footer?: string;
};

const SECTION_ICON: Record<string, string> = { done: '✓', failed: '✗', skipped: '↷', pending: '○', partial: '◐' };

/** `✓ ✓ ● ○ ○ ○  section 3/6: Start the KV-aware router` — one line at any width. */
function SectionBar({ sections, currentSectionId }: { readonly sections: Properties['sections']; readonly currentSectionId?: string }): React.ReactElement {
  const idx = sections.findIndex((s) => s.id === currentSectionId);
  return (
    <Text>
      {sections.map((s, i) => (
        <Text key={s.id} color={i === idx ? 'cyan' : s.status === 'done' ? 'green' : s.status === 'failed' ? 'red' : 'gray'}>
          {i === idx ? '●' : (SECTION_ICON[s.status] ?? '○')}{' '}
        </Text>
      ))}
      {idx >= 0 ? <Text dimColor>{` section ${idx + 1}/${sections.length}: ${sections[idx]!.title}`}</Text> : null}
    </Text>
  );
}

/**
 * The whole lab screen. Finished steps go to <Static> (they stay in the terminal's
 * scrollback and are never redrawn); the live area shows the current step and the keys.
 */
export function LabScreen({ title, target, runnerKind, steps, state, preview, sections, footer }: Properties): React.ReactElement {
  const finished = steps.filter((s) => s.index < state.current).map((s) => ({ step: s, state: state.steps[s.index]! }));
  const cur = steps[state.current];
  const curState = cur ? state.steps[state.current] : undefined;
  return (
    <Box flexDirection="column">
      <Static items={[{ key: 'header' }, ...finished.map((f) => ({ key: f.step.step.id, ...f }))]}>
        {(item) =>
          'step' in item ? (
            <FinishedStep key={item.key} step={item.step} state={item.state} showOutput={6} />
          ) : (
            <Box key="header" flexDirection="column" marginBottom={1}>
              <Text bold color="green">
                dynamo-lab · {title}
              </Text>
              <Text dimColor>
                target: {target}
                {runnerKind === 'dry-run' ? ' (dry run: nothing is executed)' : ''}
              </Text>
            </Box>
          )
        }
      </Static>
      <SectionBar sections={sections} currentSectionId={cur?.sectionId} />
      {cur && curState && state.phase !== 'finished' ? (
        <CurrentStep step={cur} state={curState} preview={preview} outputLines={14} showHint={state.showHint} position={`${state.current + 1}/${steps.length}`} />
      ) : null}
      {state.phase === 'confirm' && cur ? (
        <Text color="red" bold>
          “{cur.step.title}” removes what the lab started. Run it? (y/n)
        </Text>
      ) : null}
      {state.phase === 'finished' ? (
        <Text color="green" bold>
          Lab complete. Run `dynamo-lab start` again to go through it once more.
        </Text>
      ) : null}
      {state.phase === 'running' ? <Text color="yellow">working… (Ctrl+C stops everything and exits)</Text> : <HintBar bindings={bindingsFor(state.phase)} />}
      {footer ? <Text dimColor>{footer}</Text> : null}
    </Box>
  );
}
