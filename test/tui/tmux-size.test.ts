/**
 * The lab screen at 80x24 and at 160x48 in a real terminal (tmux): the step box is exactly as
 * wide as the terminal, no line runs past its border, diagrams are not re-wrapped into
 * fragments, and the screen re-lays out when the terminal is resized. (Every lab walked through
 * at both sizes, with every result on screen: tmux-labs.test.ts.)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempStateDir } from '../helpers/cli.js';
import { LabSession, TmuxServer, tmuxSkip } from '../helpers/tmux.js';

const server = new TmuxServer();
after(() => server.kill());

for (const [cols, rows] of [
  [80, 24],
  [160, 48],
] as const) {
  test(`${cols}x${rows}: title and keys visible together, text wrapped to the width, re-layout on resize`, {
    skip: tmuxSkip,
    timeout: 120_000,
  }, async () => {
    const s = new LabSession(server, `size-${cols}`, { cols, rows, stateDir: tempStateDir() });
    try {
      const titleAndKeys = (title: RegExp) => (x: string) => title.test(x) && /q quit/.test(x) && /╭─/.test(x) && /╰─/.test(x);
      const first = await s.waitFor(titleAndKeys(/○ Why route by cache contents\?/), 'the first step with its keys');
      const top = first.split('\n').find((l) => l.startsWith('╭'))!;
      assert.equal([...top].length, cols, `box top border: ${top}`);
      for (const l of first.split('\n').filter((x) => x.startsWith('│')))
        assert.ok(l.trimEnd().endsWith('│'), `a box line runs past the border: ${JSON.stringify(l)}`);
      // Diagram rows are never re-wrapped into fragments.
      assert.doesNotMatch(first, /^│\s+│\s*[A-Za-z]{0,8}\s*│\s*$/m, 'a diagram was wrapped into fragments');
      await s.waitForRawMode();
      s.keys('Enter');
      await s.waitFor(titleAndKeys(/How the router learns what is cached/), 'the second step with its keys');

      // Resize: the box follows the new width.
      const [c2, r2] = cols === 80 ? [100, 30] : [120, 40];
      s.resize(c2, r2);
      await s.waitFor(
        (x) => x.split('\n').some((l) => l.startsWith('╭') && [...l.trimEnd()].length === c2),
        `a ${c2}-column box after resize`,
      );
      s.keys('q');
      const end = await s.waitFor(
        (x) => /EXIT=\d+/.test(x),
        'the exit',
        60_000,
        () => s.history(),
      );
      assert.match(end, /EXIT=0/);
    } finally {
      server.run('kill-session', '-t', s.name);
    }
  });
}
