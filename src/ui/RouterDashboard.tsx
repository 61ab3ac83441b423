/**
 * Live view of `dynamo-lab router` (props in, elements out): per-worker health, cached blocks,
 * active load and hit rates as bars, then the last routing decisions with each worker's
 * overlap and cost. The command re-renders it from RouterServer.dashboardState().
 */
import React from 'react';
import { Box, Text } from 'ink';
import { bar } from '../base/bar.js';

export interface DashboardWorker {
  readonly id: string;
  readonly url: string;
  readonly healthy: boolean;
  readonly health_error?: string;
  readonly circuit: 'closed' | 'open' | 'half-open';
  readonly busy: boolean;
  readonly cached_blocks: number;
  readonly active_blocks: number;
  readonly active_prefill_tokens: number;
  readonly active_requests: number;
  readonly requests: number;
  readonly errors: number;
  readonly predicted_hit_rate: number | null;
  readonly achieved_hit_rate: number | null;
}

export interface DashboardDecision {
  readonly request_id: string;
  readonly chosen: string;
  readonly mode: string;
  readonly isl_tokens: number;
  readonly block_size: number;
  readonly overlap_blocks: number;
  readonly attempt?: number;
  readonly pinned?: boolean;
  readonly status?: string;
  readonly achieved_cached_tokens?: number;
  readonly workers: ReadonlyArray<{ readonly id: string; readonly overlap_blocks: number; readonly cost: number }>;
}

export interface RouterDashboardProps {
  readonly url: string;
  readonly mode: string;
  readonly events: string;
  readonly workers: readonly DashboardWorker[];
  readonly decisions: readonly DashboardDecision[];
  readonly totals: {
    readonly requests: number;
    readonly errors: number;
    readonly rejected: number;
    readonly predicted_hit_rate: number | null;
    readonly achieved_hit_rate: number | null;
  };
  /** Recent log lines (worker up/down, retries), newest last. */
  readonly notices?: readonly string[];
  /** Bar width in cells (default: what fits in `columns`, 4 to 12). */
  readonly barWidth?: number;
  /** Terminal width: the worker table is sized to fit it (default 100). */
  readonly columns?: number;
  /** Terminal height: only the newest decisions that fit are shown (default: all given). */
  readonly rows?: number;
}

const pct = (x: number | null) => (x === null ? '  –' : `${Math.round(x * 100)}%`.padStart(4));
const pad = (s: string | number, n: number) => String(s).padEnd(n);
const lpad = (s: string | number, n: number) => String(s).padStart(n);

function health(w: DashboardWorker): { text: string; color: string } {
  if (!w.healthy) return { text: '✗ down', color: 'red' };
  if (w.circuit === 'open') return { text: '⚡ open', color: 'red' };
  if (w.circuit === 'half-open') return { text: '◐ trial', color: 'yellow' };
  if (w.busy) return { text: '● busy', color: 'yellow' };
  return { text: '● up', color: 'green' };
}

/** Cells of a worker row besides its two load bars: id, health, counts, the hit-rate bar and figures. */
const fixedCells = (idW: number) => idW + 9 + 8 + 7 + 8 + 6 + HIT_BAR + 1 + 13;
const HIT_BAR = 8;

/** A decision's per-worker overlap / cost, as indented lines that fit in `columns`. */
function costLines(d: DashboardDecision, columns: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const w of d.workers) {
    const item = `${w.id}: ${w.overlap_blocks}/${Math.round(w.cost * 10) / 10}`;
    if (line && 4 + line.length + 2 + item.length > columns - 1) {
      lines.push(line);
      line = item;
    } else line = line ? `${line}  ${item}` : item;
  }
  if (line) lines.push(line);
  return lines.map((l) => `    ${l}`);
}

/**
 * The newest decisions that fit in `rows` lines beside everything else on screen (a taller frame
 * scrolls the title and the worker table out of an 80x24 terminal).
 */
function fittingDecisions(props: RouterDashboardProps, columns: number): readonly DashboardDecision[] {
  if (props.rows === undefined) return props.decisions;
  const errorLines = props.workers.filter((w) => !w.healthy && w.health_error).length;
  const noticeLines = props.notices?.length ? 2 + props.notices.length : 0;
  // title, totals, blank, table header, workers, blank, decisions title, blank, footer; one row spare.
  let left = props.rows - 1 - (8 + Math.max(1, props.workers.length) + errorLines + noticeLines);
  const out: DashboardDecision[] = [];
  for (const d of props.decisions) {
    left -= 1 + Math.max(1, costLines(d, columns).length);
    if (left < 0) break;
    out.push(d);
  }
  return out;
}

export function RouterDashboard(props: RouterDashboardProps): React.ReactElement {
  const columns = props.columns ?? 100;
  const decisions = fittingDecisions(props, columns);
  const idW = Math.max(6, ...props.workers.map((w) => w.id.length)) + 1;
  // Two bars share what the row leaves of the terminal (one column spare: a full line wraps in some terminals).
  const width = props.barWidth ?? Math.max(4, Math.min(12, Math.floor((columns - 1 - fixedCells(idW)) / 2)));
  const maxCached = Math.max(1, ...props.workers.map((w) => w.cached_blocks));
  const maxActive = Math.max(1, ...props.workers.map((w) => w.active_blocks));
  const t = props.totals;
  return (
    <Box flexDirection="column">
      <Text>
        <Text bold color="cyan">
          dynamo-lab router
        </Text>
        {` ${props.url}  mode `}
        <Text bold>{props.mode}</Text>
        {'  events '}
        <Text bold>{props.events}</Text>
      </Text>
      <Text dimColor>
        {`requests ${t.requests}  errors ${t.errors}  rejected ${t.rejected}  hit rate predicted ${pct(t.predicted_hit_rate).trim()} / achieved ${pct(t.achieved_hit_rate).trim()}`}
      </Text>
      <Text> </Text>
      <Text bold>
        {pad('WORKER', idW)}
        {pad('HEALTH', 9)}
        {pad(width + 8 > 13 ? 'CACHED BLOCKS' : 'CACHED', width + 8)}
        {pad(width + 7 > 13 ? 'ACTIVE BLOCKS' : 'ACTIVE', width + 7)}
        {pad('PREFILL', 8)}
        {pad('REQS', 6)}
        {pad('HIT RATE', HIT_BAR + 1)}
        pred / actual
      </Text>
      {props.workers.length === 0 ? <Text dimColor>no workers registered (POST /admin/workers to add one)</Text> : null}
      {props.workers.map((w) => {
        const h = health(w);
        return (
          <Box key={w.id} flexDirection="column">
            <Text>
              {pad(w.id, idW)}
              <Text color={h.color}>{pad(h.text, 9)}</Text>
              <Text color="blue">{bar(w.cached_blocks, maxCached, width)}</Text>
              {lpad(w.cached_blocks, 7)} <Text color="magenta">{bar(w.active_blocks, maxActive, width)}</Text>
              {lpad(w.active_blocks, 6)} {lpad(w.active_prefill_tokens, 7)} {lpad(w.requests, 5)}{' '}
              <Text color="green">{bar(w.achieved_hit_rate ?? 0, 1, HIT_BAR)}</Text> {pct(w.predicted_hit_rate)} /{' '}
              {pct(w.achieved_hit_rate)}
            </Text>
            {!w.healthy && w.health_error ? (
              <Text dimColor>
                {'  '}
                {w.health_error}
              </Text>
            ) : null}
          </Box>
        );
      })}
      <Text> </Text>
      <Text bold>Last decisions (overlap blocks / cost per worker; lower cost wins)</Text>
      {props.decisions.length === 0 ? <Text dimColor>no requests yet: point an OpenAI client at {props.url}/v1</Text> : null}
      {decisions.map((d, i) => (
        <Box key={`${d.request_id}-${d.attempt ?? 1}-${i}`} flexDirection="column">
          <Text>
            <Text dimColor>{d.request_id.slice(-8)}</Text> →{' '}
            <Text bold color="cyan">
              {d.chosen}
            </Text>{' '}
            overlap {d.overlap_blocks}/{Math.floor(d.isl_tokens / d.block_size)}
            {d.pinned ? <Text color="yellow"> session</Text> : null}
            {d.attempt && d.attempt > 1 ? <Text color="yellow"> retry {d.attempt}</Text> : null}
            {d.status && d.status !== 'ok' ? <Text color="red"> {d.status}</Text> : null}
            {d.achieved_cached_tokens !== undefined ? <Text dimColor> cached {d.achieved_cached_tokens}</Text> : null}
          </Text>
          <Text dimColor>{costLines(d, columns).join('\n')}</Text>
        </Box>
      ))}
      {props.notices?.length ? (
        <Box flexDirection="column" marginTop={1}>
          <Text bold>Recent events</Text>
          {props.notices.map((n, i) => (
            <Text key={i} color="yellow">
              {n}
            </Text>
          ))}
        </Box>
      ) : null}
      <Text> </Text>
      <Text dimColor>Ctrl+C to stop · more at /debug/decisions, /debug/workers, /metrics</Text>
    </Box>
  );
}
