/**
 * Result tables laid out for a terminal width lose nothing: no line is wider than the width,
 * every cell can be read back whole from its column (cells wrap, never "…"), a bar column that
 * only pictures another is left out with a note saying so, and a table too wide even for that
 * is printed row by row as `header: value` pairs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { tableLayout, tableText, type TableResult } from '../../src/lab/results.js';
import { demoTable, workerTable } from '../../src/lab/format.js';

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

/** Read each cell of each row back from the laid-out lines (column slices), whitespace-normalised. */
function readBack(t: TableResult, width: number): string[][] {
  const layout = tableLayout(t, width);
  assert.equal(layout.kind, 'columns');
  if (layout.kind !== 'columns') return [];
  const text = tableText(t, width);
  const starts: number[] = [];
  let x = 0;
  for (const i of layout.keep) {
    starts.push(x);
    x += layout.widths[i]! + 2;
  }
  return text.rows.map((lines) =>
    layout.keep.map((i, j) => norm(lines.map((l) => l.slice(starts[j], starts[j]! + layout.widths[i]!)).join(' '))),
  );
}

const cell = fc.stringMatching(/^[a-z0-9/.-]{1,9}( [a-z0-9/.-]{1,9}){0,6}$/);

test('any table at any width from 40 columns: lines fit, every kept cell reads back whole, visual columns dropped only with a note', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 7 }).chain((n) =>
        fc.record({
          columns: fc.array(
            fc.record({
              header: fc.stringMatching(/^[a-z]{1,6}( [a-z]{1,5})?$/),
              align: fc.constantFrom<'left' | 'right'>('left', 'right'),
              visual: fc.boolean(),
            }),
            { minLength: n, maxLength: n },
          ),
          rows: fc.array(fc.array(cell, { minLength: n, maxLength: n }), { maxLength: 6 }),
          width: fc.integer({ min: 40, max: 220 }),
        }),
      ),
      ({ columns, rows, width }) => {
        // Right-aligned columns hold numbers: short, never wrapped.
        const t: TableResult = {
          kind: 'table',
          columns,
          rows: rows.map((r) => r.map((c, i) => (columns[i]!.align === 'right' ? c.replaceAll(' ', '').slice(0, 6) : c))),
        };
        const text = tableText(t, width);
        for (const l of [...(text.header ?? []), ...text.rows.flat()]) assert.ok(l.length <= width, `${l.length} > ${width}: ${l}`);
        const layout = tableLayout(t, width);
        if (layout.kind === 'stacked') {
          text.rows.forEach((lines, r) => {
            const shown = norm(lines.join(' '));
            for (const c of t.rows[r]!) assert.ok(shown.includes(norm(c)) || norm(c) === '', `stacked row ${r}: ${c} in ${shown}`);
          });
          return;
        }
        if (layout.dropped.length) {
          assert.ok(layout.dropped.every((i) => columns[i]!.visual));
          assert.match(text.note ?? '', /left out at this width/);
        } else assert.equal(text.note, undefined);
        const back = readBack(t, width);
        back.forEach((r, ri) => {
          for (const [j, i] of layout.keep.entries()) assert.equal(r[j], norm(t.rows[ri]![i]!), `row ${ri}, column ${i}`);
        });
      },
    ),
    { numRuns: 400 },
  );
});

test('the demo table at 76 columns (the step box at 80x24): the bar is left out with a note, prompts wrap, nothing is cut', () => {
  const results = [
    '[8k-token system prompt] What does a KV event carry?',
    '[same system prompt] Why does round-robin waste prefill?',
    'Explain quantum computing',
  ].map((prompt, i) => ({
    mode: 'kv',
    group: 'g',
    prompt,
    reuses_prefix: i > 0,
    worker: `worker-${i % 2}`,
    cached_tokens: i * 7000,
    prompt_tokens: 7069,
    ttft_ms: 5829.04 / (i + 1),
    latency_ms: 6000,
    overlap_blocks: null,
    output_text: '',
    messages: [],
  }));
  const t = demoTable(results, ['worker-0', 'worker-1'], 'kv routing: one row per request');
  const wide = tableText(t, 200);
  assert.equal(wide.note, undefined, 'at 200 columns the bar stays');
  assert.match(wide.header![0]!, /cached share/);
  const narrow = tableText(t, 76);
  assert.match(narrow.note ?? '', /the cached share column is left out at this width/);
  assert.doesNotMatch([...narrow.header!, ...narrow.rows.flat()].join('\n'), /…/);
  const back = readBack(t, 76);
  assert.deepEqual(
    back.map((r) => r[1]),
    results.map((r) => r.prompt),
  );
  // The worker table's bar has no header; the note names it.
  const w = workerTable([{ id: 'worker-0', cached_blocks: 96, active_blocks: 0, active_prefill_tokens: 0, active_requests: 0 }]);
  assert.match(tableText(w, 76).note ?? '', /bar chart column is left out/);
  assert.equal(tableText(w, 120).note, undefined);
});

test('a table too wide for its columns is stacked: one block per row with header: value pairs', () => {
  const t: TableResult = {
    kind: 'table',
    columns: [{ header: 'mode' }, ...Array.from({ length: 8 }, (_, i) => ({ header: `metric number ${i}`, align: 'right' as const }))],
    rows: [['kv', ...Array.from({ length: 8 }, (_, i) => String(1000 + i))]],
  };
  const s = tableText(t, 40);
  assert.equal(s.header, undefined);
  assert.equal(s.rows[0]![0], 'mode: kv');
  const body = norm(s.rows[0]!.join(' '));
  for (let i = 0; i < 8; i++) assert.ok(body.includes(`metric number ${i}: ${1000 + i}`), body);
  for (const l of s.rows.flat()) assert.ok(l.length <= 40, l);
});
