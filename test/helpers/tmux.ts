/**
 * The lab in a real terminal: one private tmux server (its own socket, a large scrollback),
 * sessions of a given size running `dynamo-lab start`, keys sent, screens read. Every wait polls
 * the screen for a condition; nothing sleeps for a fixed time.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_ARGV } from './cli.js';
import { tempDir } from './temp.js';
import { quoteArg } from '../../src/base/shell.js';

export const hasTmux = spawnSync('tmux', ['-V']).status === 0;
export const requireTmux = process.env.DYNAMO_LAB_REQUIRE_TMUX === '1';
export const tmuxSkip = !hasTmux && !requireTmux ? 'tmux is not installed' : false;

/** A step that removes things asks first; its keys are then y / n. */
const CONFIRM = /(^|\s)y yes\b/m;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TmuxServer {
  private readonly socket = `dl-test-${process.pid}`;
  private readonly conf: string;

  constructor() {
    this.conf = join(tempDir('dl-tmux-'), 'tmux.conf');
    // Enough scrollback for a whole lab; no status line, so the pane is the whole window. The
    // server stays up when its last session ends (exit-empty off) until kill(): otherwise a test
    // that killed its sessions leaves a server on its way out, and the next test's new-session
    // can reach it and fail with "server exited unexpectedly" (seen once under a CPU hog).
    writeFileSync(this.conf, 'set -g history-limit 200000\nset -g status off\nset -s exit-empty off\n');
  }

  run(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, '-f', this.conf, ...args], { encoding: 'utf8' });
  }

  /** Stop the server (every session on it) and remove its socket file, which kill-server leaves behind. */
  kill(): void {
    spawnSync('tmux', ['-L', this.socket, 'kill-server']);
    // Where tmux puts -L sockets (the server may already have exited with its last session).
    rmSync(join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid?.() ?? 0}`, this.socket), { force: true });
  }
}

export interface LabRun {
  readonly lab?: string;
  readonly cols: number;
  readonly rows: number;
  readonly stateDir: string;
  readonly args?: readonly string[];
}

export class LabSession {
  readonly name: string;

  constructor(
    private readonly server: TmuxServer,
    name: string,
    readonly run: LabRun,
  ) {
    this.name = name;
    // tmux runs a shell command line; every piece is quoted from a fixed argv.
    const cmd = [
      'env',
      'CI=false',
      'FORCE_COLOR=0',
      `DYNAMO_LAB_STATE_DIR=${run.stateDir}`,
      process.execPath,
      ...CLI_ARGV,
      'start',
      ...(run.lab ? ['--lab', run.lab] : []),
      '--target',
      'local',
      ...(run.args ?? []),
    ]
      .map(quoteArg)
      .join(' ');
    server.run('new-session', '-d', '-s', name, '-x', String(run.cols), '-y', String(run.rows), `${cmd}; echo "EXIT=$?"; sleep 600`);
  }

  /** The visible pane (what a person sees now), trailing spaces removed. */
  visible(): string {
    return this.server.run('capture-pane', '-p', '-t', this.name);
  }

  /** Every line the pane ever showed: the whole scrollback and the screen. */
  history(): string {
    return this.server.run('capture-pane', '-p', '-S', '-', '-E', '-', '-t', this.name);
  }

  keys(...keys: string[]): void {
    this.server.run('send-keys', '-t', this.name, ...keys);
  }

  resize(cols: number, rows: number): void {
    this.server.run('resize-window', '-t', this.name, '-x', String(cols), '-y', String(rows));
  }

  async waitFor(ok: (screen: string) => boolean, what: string, ms = 120_000, read: () => string = () => this.visible()): Promise<string> {
    const end = performance.now() + ms;
    for (;;) {
      const s = read();
      if (ok(s)) return s;
      if (performance.now() > end) throw new Error(`${this.name}: the screen never showed ${what}:\n${s}`);
      await pause(150);
    }
  }

  /**
   * Wait until the app has put its terminal in raw mode (ink does so after the first render). A
   * key sent before that goes through the line discipline (Enter arrives as a line feed) and is lost.
   */
  async waitForRawMode(ms = 60_000): Promise<void> {
    const tty = this.server.run('display-message', '-p', '-t', this.name, '#{pane_tty}').trim();
    const end = performance.now() + ms;
    while (!/(^|\s)-icanon(\s|$)/.test(execFileSync('stty', ['-F', tty, '-a'], { encoding: 'utf8' }))) {
      if (performance.now() > end) throw new Error(`${this.name}: the app never put ${tty} in raw mode`);
      await pause(50);
    }
  }

  /**
   * Go through the whole lab as a person would: Enter on every step, y when a step asks first.
   * Throws with the screen when a step fails. Resolves with the scrollback once the program exited.
   */
  async walk(stepMs = 300_000): Promise<string> {
    await this.waitFor((s) => /step \d+\/\d+/.test(s) && /Enter run/.test(s), 'the first step and its keys');
    await this.waitForRawMode();
    for (;;) {
      const s = this.visible();
      if (/EXIT=\d+/.test(s)) break;
      const failed = /^│ ✗ .*$/m.exec(s);
      if (failed) throw new Error(`${this.name}: a step failed (${failed[0]}):\n${s}`);
      const pos = /step (\d+\/\d+)/.exec(s)?.[1];
      if (CONFIRM.test(s)) {
        this.keys('y');
        await this.waitFor((x) => !CONFIRM.test(x), 'the confirmation accepted', 30_000);
      } else if (/Enter run/.test(s) && pos) {
        // The live area fits the terminal: the whole step box (both borders, the title) and the keys.
        if (!/^╭─/m.test(s) || !/^╰─/m.test(s) || !/^│ ○ \S/m.test(s))
          throw new Error(`${this.name}: step ${pos} does not fit the screen (box border or title missing):\n${s}`);
        this.keys('Enter');
        await this.waitFor(
          (x) => /EXIT=\d+/.test(x) || CONFIRM.test(x) || /^│ ✗ /m.test(x) || /step (\d+\/\d+)/.exec(x)?.[1] !== pos,
          `the step after ${pos}`,
          stepMs,
        );
      } else {
        await pause(150);
      }
    }
    return this.history();
  }
}
