import React from 'react';
import { Box, Text } from 'ink';
import type { StepState } from '../lab/state.js';
import type { FlatStep } from '../lab/types.js';
import { ResultView, LineText } from './ResultView.js';
import { resultRows, verbatim, wrapped, type Line } from './lines.js';

const ICONS: Record<StepState['status'], { icon: string; color: string }> = {
  pending: { icon: '○', color: 'gray' },
  running: { icon: '●', color: 'yellow' },
  done: { icon: '✓', color: 'green' },
  failed: { icon: '✗', color: 'red' },
  skipped: { icon: '↷', color: 'gray' },
};

/** Output lines a finished step does not print: its progress lines when it has structured results. */
export function hiddenLines(state: StepState): number {
  return state.results?.length ? state.output.length + (state.dropped ?? 0) : (state.dropped ?? 0);
}

type DoneProps = { readonly step: FlatStep; readonly state: StepState; readonly width: number; readonly logFile?: string };

/**
 * A finished step as it stays in the scrollback: its results in full (tables with their header,
 * check lines), else its whole output. What is left out is said, with the key and the log path.
 * Laid out in the rows the step box uses (see lines.ts), at the width less the indent.
 */
export function FinishedStep({ step, state, width, logFile }: DoneProps): React.ReactElement {
  const { icon, color } = ICONS[state.status];
  const results = state.results ?? [];
  const hidden = hiddenLines(state);
  return (
    <Box flexDirection="column">
      <Text>
        <Text color={color}>{icon}</Text> <Text dimColor>{step.sectionTitle} ›</Text> {step.step.title}
        {state.status === 'skipped' ? <Text dimColor> (skipped)</Text> : null}
      </Text>
      <Box flexDirection="column" paddingLeft={2}>
        {results.map((r, i) => (
          <ResultView key={i} result={r} width={width - 2} />
        ))}
        {(results.length ? [] : state.output.flatMap((l) => wrapped(l, width - 2, { dim: true }))).map((l, i) => (
          <LineText key={`o${i}`} line={l} />
        ))}
        {hidden
          ? wrapped(
              `(${
                results.length
                  ? `${hidden} progress line${hidden === 1 ? '' : 's'} not shown`
                  : `${hidden} earlier line${hidden === 1 ? '' : 's'} not kept`
              }: press e to show them${logFile ? `; all of it is in ${logFile}` : ''})`,
              width - 2,
              { dim: true },
            ).map((l, i) => <LineText key={`h${i}`} line={l} />)
          : null}
      </Box>
    </Box>
  );
}

/**
 * Everything under the step title, as rows of the given width: body, diagram, what will run,
 * output, results, error, hint; and the previous step's hidden lines when expanded.
 */
export function stepLines(opts: {
  step: FlatStep;
  state: StepState;
  preview: readonly string[];
  showHint: boolean;
  width: number;
  expandedFrom?: { title: string; output: readonly string[] };
}): Line[] {
  const { step, state, preview, showHint, width } = opts;
  const s = step.step;
  const lines: Line[] = [];
  if (opts.expandedFrom) {
    lines.push({ text: `Output of “${opts.expandedFrom.title}” (e hides it):`, dim: true });
    for (const l of opts.expandedFrom.output) lines.push(...wrapped(l, width, { dim: true }));
    lines.push({ text: '' });
  }
  const running = state.status === 'running';
  if (s.body && !running) lines.push(...wrapped(s.body.trim(), width));
  if (s.diagram && !running) lines.push({ text: '' }, ...verbatim(s.diagram.replace(/\n+$/, ''), width, { color: 'cyan' }));
  if (preview.length) {
    lines.push({ text: '' }, { text: running ? 'Running:' : 'Will run:', dim: true });
    for (const p of preview) lines.push(...wrapped(`  ${p}`, width, { color: 'magenta' }));
  }
  if (state.output.length || state.results?.length) {
    lines.push({ text: '' });
    if (state.dropped) lines.push({ text: `(${state.dropped} earlier lines are only in the log file)`, dim: true });
    for (const l of state.output) lines.push(...wrapped(l, width));
    for (const r of state.results ?? []) lines.push(...resultRows(r, width));
  }
  if (state.status === 'failed' && state.error) lines.push(...wrapped(`Failed: ${state.error}`, width, { color: 'red' }));
  if (showHint && s.hint) lines.push(...wrapped(`Hint: ${s.hint}`, width, { color: 'yellow' }));
  return lines;
}

type CurrentProps = {
  readonly step: FlatStep;
  readonly lines: readonly Line[];
  readonly state: StepState;
  readonly position: string;
  /** Rows available for the lines (the box adds 2 borders and 2 title rows). */
  readonly height: number;
  /** First line shown. */
  readonly offset: number;
};

/** The step the user is on: title always on top, then a window of its lines that scrolls. */
export function CurrentStep({ step, lines, state, position, height, offset }: CurrentProps): React.ReactElement {
  const { icon, color } = ICONS[state.status];
  const room = Math.max(1, height);
  const fits = lines.length <= room;
  const view = fits ? lines : lines.slice(offset, offset + room - 1);
  const below = fits ? 0 : Math.max(0, lines.length - offset - view.length);
  return (
    <Box flexDirection="column" borderStyle="round" borderColor={state.status === 'failed' ? 'red' : 'cyan'} paddingX={1}>
      <Text dimColor wrap="truncate-end">
        {step.sectionTitle} · step {position}
      </Text>
      <Text bold wrap="truncate-end">
        <Text color={color}>{icon}</Text> {step.step.title}
      </Text>
      {view.map((l, i) => (
        <LineText key={i} line={l} />
      ))}
      {fits ? null : (
        <Text dimColor wrap="truncate-end">
          {`── lines ${offset + 1}-${offset + view.length} of ${lines.length}${offset > 0 ? ' · ↑ earlier' : ''}${below ? ` · ↓ ${below} more` : ''} (↑/↓ PgUp/PgDn scroll) ──`}
        </Text>
      )}
    </Box>
  );
}
