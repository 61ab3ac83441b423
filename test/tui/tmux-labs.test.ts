/**
 * Every lab, interactively, in a real terminal (tmux) at 80x24 and at 160x48: Enter through
 * every step (y where a step asks first) until the lab is complete, then read the whole
 * scrollback and require every result the run produced, as the run's results file records it
 * (`<log>.results.jsonl`): each table's title, its header and every row line for line as laid
 * out for the width (nothing cut, no "…" the data did not have), every word of every cell on
 * that row's lines, its notes, and every PASS/FAIL check line. The two sizes of a lab run at the
 * same time in one tmux server; the labs one after the other.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempStateDir } from '../helpers/cli.js';
import { LabSession, TmuxServer, tmuxSkip } from '../helpers/tmux.js';
import { tableText, type StepResult } from '../../src/lab/results.js';

const LABS = ['kv-routing', 'distributed', 'grove', 'kv-demo', 'router-ab'] as const;
const SIZES = [
  [80, 24],
  [160, 48],
] as const;

const server = new TmuxServer();
after(() => server.kill());

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

function countOf(hay: string, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + 1)) n++;
  return n;
}

/** The results a run recorded, in the order the steps emitted them. */
function recordedResults(stateDir: string): Array<{ step: string; result: StepResult }> {
  const dir = join(stateDir, 'logs');
  const files = readdirSync(dir).filter((f) => f.endsWith('.results.jsonl'));
  assert.equal(files.length, 1, `one results file in ${dir}: ${files.join(', ')}`);
  return readFileSync(join(dir, files[0]!), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step: string; result: StepResult });
}

/** Every result in the scrollback, whole. Finished steps print their results indented by 2 in a width of cols - 2. */
function assertResultsShown(where: string, capture: string, results: Array<{ step: string; result: StepResult }>, cols: number): void {
  const lines = capture.split('\n').map((l) => l.trimEnd());
  for (const l of lines) assert.ok([...l].length <= cols, `${where}: a line wider than ${cols}: ${l}`);
  const flat = norm(lines.join(' '));
  const wanted = new Map<string, number>();
  const want = (s: string) => wanted.set(norm(s), (wanted.get(norm(s)) ?? 0) + 1);
  let from = 0;
  let tables = 0;
  for (const { step, result } of results) {
    if (result.kind === 'check') {
      want(`${result.ok ? '✓ PASS' : '✗ FAIL'} ${result.text}`);
      continue;
    }
    tables++;
    const t = tableText(result, cols - 2);
    const header = (t.header ?? []).map((l) => `  ${l}`.trimEnd());
    const rows = t.rows.map((r) => r.map((l) => `  ${l}`.trimEnd()));
    const block = [...header, ...rows.flat()];
    const at = (start: number) => {
      for (let i = start; i + block.length <= lines.length; i++) if (block.every((b, k) => lines[i + k] === b)) return i;
      return -1;
    };
    let i = at(from);
    if (i < 0) i = at(0);
    const near = lines.findIndex((l) => header[0] !== undefined && l.includes(header[0].trim()));
    assert.ok(
      i >= 0,
      `${where}, step ${step}: the table ${JSON.stringify(result.title ?? result.columns.map((c) => c.header).join(' | '))} is not on screen as laid out for ${cols - 2} columns.\nExpected:\n${block.join('\n')}\nNear its header:\n${lines.slice(Math.max(0, near - 2), near + block.length + 2).join('\n')}`,
    );
    // Independently of the layout: every header (but a left-out bar) and every word of every cell is on its row's lines.
    const headerText = norm(lines.slice(i, i + header.length).join(' '));
    if (header.length)
      for (const c of result.columns)
        if (!(c.visual && t.note))
          assert.ok(headerText.includes(norm(c.header)), `${where}, step ${step}: the header "${c.header}" is not on screen`);
    let k = i + header.length;
    result.rows.forEach((row, r) => {
      const shown = lines.slice(k, k + rows[r]!.length).join(' ');
      k += rows[r]!.length;
      const words = new Set(shown.split(/\s+/));
      row.forEach((cell, c) => {
        if (result.columns[c]!.visual && t.note) return;
        for (const w of cell.split(/\s+/).filter(Boolean))
          assert.ok(
            words.has(w) || shown.includes(w),
            `${where}, step ${step}, row ${r + 1}: "${w}" of ${result.columns[c]!.header || `column ${c + 1}`} is not on screen:\n${shown}`,
          );
      });
    });
    from = k;
    if (result.title) want(result.title);
    for (const n of [...(t.note ? [t.note] : []), ...(result.notes ?? [])]) want(n);
  }
  for (const [s, n] of wanted) assert.ok(countOf(flat, s) >= n, `${where}: not on screen${n > 1 ? ` ${n} times` : ''}: ${s}`);
  assert.ok(tables > 0, `${where}: the lab showed no table`);
}

for (const lab of LABS) {
  test(`${lab}: the whole lab at 80x24 and at 160x48, every result table and check on screen, none cut`, {
    skip: tmuxSkip,
    timeout: 1_200_000,
  }, async () => {
    await Promise.all(
      SIZES.map(async ([cols, rows]) => {
        const where = `${lab} at ${cols}x${rows}`;
        const state = tempStateDir();
        const s = new LabSession(server, `${lab}-${cols}`, { lab, cols, rows, stateDir: state });
        try {
          // The first screen: the step box is exactly as wide as the terminal, nothing runs past its border.
          const first = await s.waitFor((x) => /Enter run/.test(x) && /╰─/.test(x), 'the first step with its keys');
          const top = first.split('\n').find((l) => l.startsWith('╭'))!;
          assert.equal([...top].length, cols, `${where}: box top border: ${top}`);
          for (const l of first.split('\n').filter((x) => x.startsWith('│')))
            assert.ok(l.trimEnd().endsWith('│'), `${where}: a box line runs past the border: ${JSON.stringify(l)}`);
          assert.match(first, /q quit/, `${where}: the quit key is on screen`);
          const capture = await s.walk();
          assert.match(capture, new RegExp(`Lab ${lab} complete`), `${where}: the lab finished`);
          assert.match(capture, /EXIT=0/, where);
          assertResultsShown(where, capture, recordedResults(state), cols);
        } finally {
          server.run('kill-session', '-t', s.name);
        }
      }),
    );
  });
}
