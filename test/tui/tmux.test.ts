/**
 * Drives the real TUI in a real terminal (tmux): start the lab, press keys, read the screen.
 * CI=false because ink (and our own check) treat CI as non-interactive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { CLI_ARGV, tempStateDir } from '../helpers/cli.js';
import { shellQuote } from '../../src/base/shell.js';

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const requireTmux = process.env.DYNAMO_LAB_REQUIRE_TMUX === '1';

function tmux(...args: string[]): string {
  return execFileSync('tmux', args, { encoding: 'utf8' });
}

function screen(session: string): string {
  return tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', session);
}

async function waitFor(session: string, re: RegExp, ms = 30_000): Promise<string> {
  const end = performance.now() + ms;
  for (;;) {
    const s = screen(session);
    if (re.test(s)) return s;
    if (performance.now() > end) throw new Error(`screen never matched ${re}:\n${s}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/**
 * Wait until the app has put its terminal in raw mode (ink does so after the first render). A key
 * sent before that goes through the line discipline (Enter arrives as a line feed) and is lost.
 */
async function waitForRawMode(session: string, ms = 30_000): Promise<void> {
  const tty = tmux('display-message', '-p', '-t', session, '#{pane_tty}').trim();
  const end = performance.now() + ms;
  while (!/(^|\s)-icanon(\s|$)/.test(execFileSync('stty', ['-F', tty, '-a'], { encoding: 'utf8' }))) {
    if (performance.now() > end) throw new Error(`the app never put ${tty} in raw mode`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startLab(session: string, stateDir: string): void {
  // tmux runs a shell command line; every piece is quoted from a fixed argv.
  const cmd = shellQuote([
    'env',
    'CI=false',
    'FORCE_COLOR=0',
    `DYNAMO_LAB_STATE_DIR=${stateDir}`,
    process.execPath,
    ...CLI_ARGV,
    'start',
    '--target',
    'local',
  ]);
  tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '50', `${cmd}; echo "EXIT=$?"; sleep 30`);
}

test('a full kv-routing run with keys: Enter runs, s skips, q quits and resumes, y confirms cleanup, Ctrl+C exits 130', {
  skip: !hasTmux && !requireTmux ? 'tmux is not installed' : false,
  timeout: 900_000,
}, async () => {
  const state = tempStateDir();
  const s1 = `dl-tui-${process.pid}-a`;
  startLab(s1, state);
  try {
    await waitFor(s1, /Why route by cache contents\?/);
    assert.match(screen(s1), /Enter run · s skip · q quit \(progress is saved\)/);
    assert.doesNotMatch(screen(s1), /h hint/, 'the first step has no hint, so no hint key');
    await waitForRawMode(s1);
    tmux('send-keys', '-t', s1, 'Enter');
    await waitFor(s1, /How the router learns what is cached/);
    tmux('send-keys', '-t', s1, 's'); // skip the second explanation
    await waitFor(s1, /Check that two GPUs are free/);
    tmux('send-keys', '-t', s1, 'Enter');
    await waitFor(s1, /Provide the event bus/);
    tmux('send-keys', '-t', s1, 'Enter');
    await waitFor(s1, /Start two workers/);
    tmux('send-keys', '-t', s1, 'Enter');
    const afterWorkers = await waitFor(s1, /Start the router in kv mode/);
    assert.match(afterWorkers, /worker-0\s+http:\/\/127\.0\.0\.1:\d+/);
    assert.match(afterWorkers, /↷ .*How the router learns what is cached \(skipped\)/);
    tmux('send-keys', '-t', s1, 'q');
    const quit = await waitFor(s1, /EXIT=\d+/);
    assert.match(quit, /EXIT=0/);
    assert.match(quit, /worker-0 stopped/);
    assert.match(quit, /Progress saved: 5 of \d+ steps done/);
    assert.match(quit, /Resume with: dynamo-lab start --lab kv-routing --target local/);
  } finally {
    spawnSync('tmux', ['kill-session', '-t', s1]);
  }

  // A new process resumes at the router step, brings the workers back first, and finishes the lab.
  const s2 = `dl-tui-${process.pid}-b`;
  startLab(s2, state);
  try {
    await waitFor(s2, /Start the router in kv mode/);
    await waitForRawMode(s2);
    tmux('send-keys', '-t', s2, 'Enter');
    const resumed = await waitFor(s2, /Send prompts that share a prefix/);
    assert.match(resumed, /re-running "Start two workers" first/);
    assert.match(resumed, /router\s+http:\/\/127\.0\.0\.1:\d+/);
    tmux('send-keys', '-t', s2, 'Enter');
    const demo = await waitFor(s2, /What the router believes is cached/);
    assert.match(demo, /Explain quantum computing in simple ter/);
    assert.match(demo, /requests per worker/);
    for (const next of [
      /Our router in place of Dynamo's router/,
      /The same prompts with round-robin/,
      /Compare kv and round-robin/,
      /Find the prefix-cache lines/,
      /Four workers with a larger model/,
      /Long prefixes with kv routing/,
      /The same long prefixes with round-robin/,
      /Long prefixes: kv against round-robin/,
      /Stop the router and workers/,
    ]) {
      tmux('send-keys', '-t', s2, 'Enter');
      await waitFor(s2, next, 180_000);
    }
    tmux('send-keys', '-t', s2, 'Enter'); // a dangerous step asks first
    await waitFor(s2, /removes what the lab started\. Run it\? \(y\/n\)/);
    tmux('send-keys', '-t', s2, 'y');
    const end = await waitFor(s2, /EXIT=\d+/);
    assert.match(end, /Lab kv-routing complete/);
    assert.match(end, /PASS\s+long-document: kv/);
    assert.match(end, /ports (\d+, )+\d+ are free/);
    assert.match(end, /EXIT=0/);
  } finally {
    spawnSync('tmux', ['kill-session', '-t', s2]);
  }

  // A finished lab starts over; Ctrl+C in the middle stops everything and exits 130.
  const s3 = `dl-tui-${process.pid}-c`;
  startLab(s3, state);
  try {
    await waitFor(s3, /Why route by cache contents\?/);
    await waitForRawMode(s3);
    for (const next of [
      /How the router learns/,
      /Check that two GPUs/,
      /Provide the event bus/,
      /Start two workers/,
      /Start the router in kv mode/,
    ]) {
      tmux('send-keys', '-t', s3, 'Enter');
      await waitFor(s3, next);
    }
    tmux('send-keys', '-t', s3, 'C-c');
    const end = await waitFor(s3, /EXIT=\d+/);
    assert.match(end, /EXIT=130/);
    assert.match(end, /worker-1 stopped/);
  } finally {
    spawnSync('tmux', ['kill-session', '-t', s3]);
  }
});
