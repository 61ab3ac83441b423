import React from 'react';
import { Box, Static, Text } from 'ink';
import wrapAnsi from 'wrap-ansi';
import type { LabState } from '../lab/state.js';
import type { FlatStep } from '../lab/types.js';
import { CurrentStep, FinishedStep, hiddenLines, stepLines } from './StepView.js';
import type { Line } from './lines.js';
import { HintBar } from './HintBar.js';
import { bindingsFor, type KeyContext } from './keys.js';

type Properties = {
  readonly title: string;
  readonly labId?: string;
  readonly target: string;
  readonly runnerKind: string;
  readonly steps: readonly FlatStep[];
  readonly state: LabState;
  readonly preview: readonly string[];
  readonly sections: ReadonlyArray<{ id: string; title: string; status: string }>;
  /** Progress file / log file paths shown at the bottom. */
  readonly footer?: string;
  readonly logFile?: string;
  readonly columns?: number;
  readonly rows?: number;
  /** First line of the step box shown; 'follow' keeps the end in view while a step runs. */
  readonly scroll?: number | 'follow';
  /** Show the previous step's hidden output in the step box. */
  readonly expanded?: boolean;
};

const SECTION_ICON: Record<string, string> = { done: '✓', failed: '✗', skipped: '↷', pending: '○', partial: '◐' };

/** `✓ ✓ ● ○ ○ ○  section 3/6: Start the KV-aware router` — one line at any width. */
function SectionBar({
  sections,
  currentSectionId,
}: {
  readonly sections: Properties['sections'];
  readonly currentSectionId?: string;
}): React.ReactElement {
  const idx = sections.findIndex((s) => s.id === currentSectionId);
  return (
    <Text wrap="truncate-end">
      {sections.map((s, i) => (
        <Text key={s.id} color={i === idx ? 'cyan' : s.status === 'done' ? 'green' : s.status === 'failed' ? 'red' : 'gray'}>
          {i === idx ? '●' : (SECTION_ICON[s.status] ?? '○')}{' '}
        </Text>
      ))}
      {idx >= 0 ? <Text dimColor>{` section ${idx + 1}/${sections.length}: ${sections[idx]!.title}`}</Text> : null}
    </Text>
  );
}

/** The question before a step that removes things; wrapped (never cut) so "(y/n)" is always on screen. */
function confirmText(cur: FlatStep): string {
  return `“${cur.step.title}” removes what the lab started. Run it? (y/n)`;
}

/** The step box's lines and the key context, computed for a terminal size (shared with LabApp). */
export function screenModel(p: Properties): { lines: Line[]; room: number; keyCtx: KeyContext; offset: number } {
  const columns = p.columns ?? 80;
  const rows = p.rows ?? 24;
  const cur = p.steps[p.state.current];
  const curState = cur ? p.state.steps[p.state.current] : undefined;
  const prevIdx = p.state.current - 1;
  const prev = prevIdx >= 0 ? p.state.steps[prevIdx] : undefined;
  const canExpand = prev !== undefined && prev.output.length > 0 && hiddenLines(prev) > 0;
  const lines =
    cur && curState
      ? stepLines({
          step: cur,
          state: curState,
          preview: p.preview,
          showHint: p.state.showHint,
          width: columns - 4,
          expandedFrom: p.expanded && canExpand ? { title: p.steps[prevIdx]!.step.title, output: prev!.output } : undefined,
        })
      : [];
  const footerRows = p.footer ? Math.ceil(p.footer.length / Math.max(20, columns)) : 0;
  const confirmRows =
    p.state.phase === 'confirm' && cur ? wrapAnsi(confirmText(cur), Math.max(20, columns), { hard: true }).split('\n').length : 0;
  // section bar, box borders + 2 title rows, confirm lines, keys line, footer, one spare row.
  const room = Math.max(3, rows - 1 - 4 - confirmRows - 1 - footerRows - 1);
  const max = Math.max(0, lines.length - (room - 1));
  const offset =
    lines.length <= room
      ? 0
      : p.scroll === undefined || p.scroll === 'follow'
        ? curState?.status === 'running'
          ? max
          : 0
        : Math.min(max, Math.max(0, p.scroll));
  return { lines, room, offset, keyCtx: { hasHint: Boolean(cur?.step.hint), canExpand, canScroll: lines.length > room } };
}

/**
 * The whole lab screen. Finished steps go to <Static> (they stay in the terminal's scrollback,
 * in full); the live area (section bar, the current step, the keys) always fits the terminal:
 * the step box scrolls when its text is longer than the screen, and everything re-lays out on resize.
 */
export function LabScreen(p: Properties): React.ReactElement {
  const { title, target, runnerKind, steps, state, sections, footer } = p;
  const columns = p.columns ?? 80;
  const finished = steps.filter((s) => s.index < state.current).map((s) => ({ step: s, state: state.steps[s.index]! }));
  const cur = steps[state.current];
  const curState = cur ? state.steps[state.current] : undefined;
  const model = screenModel(p);
  return (
    <Box flexDirection="column" width={columns}>
      <Static items={[{ key: 'header' }, ...finished.map((f) => ({ key: f.step.step.id, ...f }))]}>
        {(item) =>
          'step' in item ? (
            <FinishedStep key={item.key} step={item.step} state={item.state} width={columns} logFile={p.logFile} />
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
        <CurrentStep
          step={cur}
          state={curState}
          lines={model.lines}
          position={`${state.current + 1}/${steps.length}`}
          height={model.room}
          offset={model.offset}
        />
      ) : null}
      {state.phase === 'confirm' && cur ? (
        <Text color="red" bold wrap="wrap">
          {confirmText(cur)}
        </Text>
      ) : null}
      {state.phase === 'finished' ? (
        <Text color="green" bold>
          Lab {p.labId ?? ''} complete. Run `dynamo-lab start{p.labId ? ` --lab ${p.labId}` : ''}` to go through it once more.
        </Text>
      ) : null}
      {state.phase === 'running' ? (
        <Text wrap="truncate-end">
          <Text color="yellow">working… (Ctrl+C stops everything and exits)</Text>
          {model.keyCtx.canScroll ? <Text dimColor> · ↑↓ scroll</Text> : null}
        </Text>
      ) : (
        <HintBar bindings={bindingsFor(state.phase, model.keyCtx)} width={columns} />
      )}
      {footer ? <Text dimColor>{footer}</Text> : null}
    </Box>
  );
}
