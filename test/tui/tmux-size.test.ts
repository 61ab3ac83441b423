/**
 * The lab screen at 80x24 and at 200x60 in a real terminal (tmux): the step title and the keys
 * are on screen together, the text is wrapped to the width (no line of the step box is wider
 * than the terminal), the demo's per-request table keeps its header and every row once the step
 * is done, and the screen re-lays out when the terminal is resized.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { CLI_ARGV, tempStateDir } from '../helpers/cli.js';
import { quoteArg as shellQuote } from '../../src/base/shell.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const requireTmux = process.env.DYNAMO_LAB_REQUIRE_TMUX === '1';

function tmux(...args: string[]): string {
  return execFileSync('tmux', args, { encoding: 'utf8' });
}

/** The visible pane only (what a person sees now). */
const visible = (s: string) => tmux('capture-pane', '-p', '-t', s);
/** Visible pane plus scrollback, wrapped lines joined. */
const history = (s: string) => tmux('capture-pane', '-p', '-J', '-S', '-300', '-t', s);

async function waitFor(read: () => string, ok: (screen: string) => boolean, what: string, ms = 90_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = read();
    if (ok(s)) return s;
    if (Date.now() > end) throw new Error(`screen never showed ${what}:\n${s}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

for (const [cols, rows] of [
  [80, 24],
  [200, 60],
] as const) {
  test(`${cols}x${rows}: title and keys visible together, text wrapped to the width, the demo table whole, re-layout on resize`, {
    skip: !hasTmux && !requireTmux ? 'tmux is not installed' : false,
    timeout: 300_000,
  }, async () => {
    const state = tempStateDir();
    const session = `dl-size-${process.pid}-${cols}`;
    const cmd = [
      'env',
      'CI=false',
      'FORCE_COLOR=0',
      `DYNAMO_LAB_STATE_DIR=${state}`,
      process.execPath,
      ...CLI_ARGV,
      'start',
      '--target',
      'local',
    ]
      .map(shellQuote)
      .join(' ');
    tmux('new-session', '-d', '-s', session, '-x', String(cols), '-y', String(rows), `${cmd}; echo "EXIT=$?"; sleep 30`);
    try {
      const titleAndKeys = (title: RegExp) => (s: string) => title.test(s) && /q quit/.test(s) && /╭─/.test(s) && /╰─/.test(s);
      const first = await waitFor(() => visible(session), titleAndKeys(/○ Why route by cache contents\?/), 'the first step with its keys');
      // The box is exactly as wide as the terminal, and no line of the pane is cut mid-box.
      const top = first.split('\n').find((l) => l.startsWith('╭'))!;
      assert.equal([...top].length, cols, `box top border: ${top}`);
      for (const l of first.split('\n').filter((x) => x.startsWith('│')))
        assert.ok(l.trimEnd().endsWith('│'), `a box line runs past the border: ${JSON.stringify(l)}`);
      // Diagram rows are never re-wrapped into fragments.
      assert.doesNotMatch(first, /^│\s+│\s*[A-Za-z]{0,8}\s*│\s*$/m, 'a diagram was wrapped into fragments');

      // Walk to the kv demo and run it; each next title must appear with the keys.
      for (const next of [
        /How the router learns what is cached/,
        /Check that two GPUs are free/,
        /Provide the event bus/,
        /Start two workers/,
        /Start the router in kv mode/,
        /Send prompts that share a prefix/,
        /What the router believes is cached/,
      ]) {
        tmux('send-keys', '-t', session, 'Enter');
        await waitFor(() => visible(session), titleAndKeys(next), String(next));
      }
      // The finished demo step kept its whole table: header, five rows, the per-worker line, the check.
      const h = history(session);
      assert.match(h, /#\s+prompt\s+worker\s+cached\/prompt\s+cached share\s+TTFT ms/);
      for (let i = 1; i <= 5; i++)
        assert.match(h, new RegExp(`^\\s+${i}\\s+\\S.*worker-[01]\\s+\\d+/\\d+`, 'm'), `row ${i} of the demo table`);
      assert.match(h, /requests per worker: worker-0/);
      assert.match(h, /✓ PASS every request after the first/);

      // Resize: the box follows the new width.
      const [c2, r2] = cols === 80 ? [100, 30] : [120, 40];
      tmux('resize-window', '-t', session, '-x', String(c2), '-y', String(r2));
      await waitFor(
        () => visible(session),
        (s) => s.split('\n').some((l) => l.startsWith('╭') && [...l.trimEnd()].length === c2),
        `a ${c2}-column box after resize`,
      );
      tmux('send-keys', '-t', session, 'q');
      const end = await waitFor(
        () => history(session),
        (s) => /EXIT=\d+/.test(s),
        'the exit',
      );
      assert.match(end, /EXIT=0/);
    } finally {
      spawnSync('tmux', ['kill-session', '-t', session]);
    }
  });
}
