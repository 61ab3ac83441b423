import { test } from 'node:test';
import assert from 'node:assert/strict';
import { render } from 'ink-testing-library';
import { LabApp } from '../../src/ui/LabApp.js';
import { LabScreen } from '../../src/ui/LabScreen.js';
import { HintBar } from '../../src/ui/HintBar.js';
import { ResultView } from '../../src/ui/ResultView.js';
import { FinishedStep } from '../../src/ui/StepView.js';
import { Box } from 'ink';
import { bindingsFor, commandFor, KEY_BINDINGS } from '../../src/ui/keys.js';
import { LabController } from '../../src/lab/controller.js';
import { LocalRunner } from '../../src/lab/runner.js';
import { LocalSession } from '../../src/lab/session.js';
import { flattenSteps, type LabDefinition } from '../../src/lab/types.js';
import { initialState, reduce } from '../../src/lab/state.js';

const lab: LabDefinition = {
  format_version: 1,
  id: 'ui-test',
  title: 'UI test lab',
  summary: 'for component tests',
  version: 1,
  sections: [
    {
      id: 'one',
      title: 'First section',
      steps: [{ id: 'intro', type: 'explain', title: 'Read this first', body: 'Some explanation.', diagram: 'A ──▶ B' }],
    },
    {
      id: 'two',
      title: 'Second section',
      steps: [
        { id: 'noted', type: 'command', title: 'A step with a note', local: { note: 'Nothing to run locally.' } },
        { id: 'last', type: 'command', title: 'Last step', hint: 'Try turning it off and on.', local: { note: 'done' } },
      ],
    },
  ],
};

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

/** Poll until `cond` holds (no fixed sleeps: the tests must pass on a loaded machine). */
async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(10);
  }
}

/** ink reads keys once useInput has put stdin in raw mode and listens for 'readable'. */
const inputReady = (app: { stdin: { listenerCount(e: string): number } }) =>
  until(() => app.stdin.listenerCount('readable') > 0, 'the app to listen for keys');

/** Poll the last frame until it contains `text` (ink renders asynchronously). */
async function waitForFrame(lastFrame: () => string | undefined, text: string | RegExp, ms = 20_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const f = lastFrame() ?? '';
    if (typeof text === 'string' ? f.includes(text) : text.test(f)) return f;
    if (Date.now() > end) throw new Error(`frame never showed ${String(text)}; last frame:\n${f}`);
    await tick();
  }
}

test('the hint bar is generated from the key table and hides keys that do not apply', () => {
  const { lastFrame } = render(<HintBar bindings={bindingsFor('ready', { hasHint: true })} />);
  assert.match(lastFrame() ?? '', /Enter run · s skip · h hint · q quit/);
  const noHint = render(<HintBar bindings={bindingsFor('ready', { hasHint: false, canScroll: true })} />);
  assert.match(noHint.lastFrame() ?? '', /Enter run · s skip · ↑↓ scroll · q quit/);
  assert.ok(!(noHint.lastFrame() ?? '').includes('hint'), 'no hint key where the step has no hint');
  assert.equal(commandFor('ready', 'h', {}, { hasHint: false }), undefined, 'h does nothing without a hint');
  assert.equal(commandFor('ready', '', { downArrow: true }, { canScroll: true }), 'scroll-down');
  const confirm = render(<HintBar bindings={bindingsFor('confirm')} />);
  assert.match(confirm.lastFrame() ?? '', /y yes, run it · n no · q quit/);
  assert.ok(!(confirm.lastFrame() ?? '').includes('skip'));
  assert.equal(commandFor('ready', '', { return: true }), 'run');
  assert.equal(commandFor('running', 's', {}), undefined, 'no skipping while a step runs');
  assert.ok(KEY_BINDINGS.every((b) => b.description.length > 0));
});

test('the hint bar fits 80 columns with every key: short descriptions instead of squeezed words', () => {
  const all = bindingsFor('ready', { hasHint: true, canExpand: true, canScroll: true });
  const wide = render(<HintBar bindings={all} width={200} />).lastFrame() ?? '';
  assert.match(wide, /e show hidden output · ↑↓ scroll · q quit \(progress is saved\)/);
  const narrow = render(<HintBar bindings={all} width={80} />).lastFrame() ?? '';
  assert.equal(narrow, 'Enter run · s skip · h hint · e hidden output · ↑↓ scroll · q quit');
  const confirm = render(<HintBar bindings={bindingsFor('confirm', { canScroll: true })} width={40} />).lastFrame() ?? '';
  assert.equal(confirm, '↑↓ scroll · y yes · n no · q quit');
});

test('finished results wrap at their width without a row that starts with the space it broke at', () => {
  // A word that ends exactly at the edge: ink's own wrapping puts the space after it at the start of the next row.
  const edge = 'x'.repeat(23);
  const results = [
    { kind: 'check' as const, ok: true, text: `${edge} then the rest of the check` },
    {
      kind: 'table' as const,
      title: `${'t'.repeat(30)} a title`,
      columns: [{ header: 'mode' }, { header: 'n', align: 'right' as const }],
      rows: [['kv', '3']],
      notes: [`${'n'.repeat(30)} a note that goes on`],
    },
  ];
  for (const result of results) {
    const frame =
      render(
        <Box width={30}>
          <ResultView result={result} width={30} />
        </Box>,
      ).lastFrame() ?? '';
    const lines = frame.split('\n').filter((l) => l.trim());
    assert.ok(lines.length >= 2, frame);
    assert.deepEqual(
      lines.filter((l) => l.startsWith(' ')),
      [],
      `no row starts with a space:\n${frame}`,
    );
    assert.ok(
      lines.every((l) => l.length <= 30),
      frame,
    );
  }
  const check = render(<ResultView result={results[0]!} width={30} />).lastFrame() ?? '';
  assert.match(check, /^✓ PASS x{23}\nthen the rest of the check$/);
});

test('a finished step wraps its output as the step box does: an indented line continues under its indent', () => {
  const step = flattenSteps(lab)[1]!;
  const state = {
    id: step.step.id,
    status: 'done' as const,
    output: ['    [worker-0] request chatcmpl-1 prefix cache hit: 1/2 blocks (16/33 tokens)'],
  };
  const frame =
    render(
      <Box width={40}>
        <FinishedStep step={step} state={state} width={40} />
      </Box>,
    ).lastFrame() ?? '';
  const rows = frame.split('\n').slice(1);
  assert.ok(rows.length >= 2, frame);
  assert.ok(
    rows.every((r) => r.startsWith('      ') && r.length <= 40),
    `every row under the 2-column step indent and the line's own 4:\n${frame}`,
  );
});

test('LabScreen shows the current step, its diagram, what will run, and the sections', () => {
  const steps = flattenSteps(lab);
  const state = initialState(steps);
  const { lastFrame } = render(
    <LabScreen
      title={lab.title}
      target="local"
      runnerKind="local"
      steps={steps}
      state={state}
      preview={['local: something']}
      sections={lab.sections.map((s) => ({ id: s.id, title: s.title, status: 'pending' }))}
    />,
  );
  const f = lastFrame() ?? '';
  assert.match(f, /UI test lab/);
  assert.match(f, /Read this first/);
  assert.match(f, /A ──▶ B/);
  assert.match(f, /Will run:/);
  assert.match(f, /section 1\/2: First section/);
  assert.match(f, /step 1\/3/);
});

test('a failed step shows the error and, with h, its hint', () => {
  const steps = flattenSteps(lab);
  let state = initialState(steps, { intro: 'done', noted: 'done' });
  state = reduce(reduce(state, { type: 'start' }), { type: 'fail', error: 'port 8000 is taken', at: 'now' });
  const { lastFrame } = render(
    <LabScreen title="t" target="local" runnerKind="local" steps={steps} state={state} preview={[]} sections={[]} />,
  );
  assert.match(lastFrame() ?? '', /Failed: port 8000 is taken/);
  assert.match(lastFrame() ?? '', /Hint: Try turning it off and on\./);
});

test('LabApp: Enter runs a step, s skips one, the lab finishes, progress is kept in state', async () => {
  const controller = new LabController({
    lab,
    target: 'local',
    runner: new LocalRunner(new LocalSession(), flattenSteps(lab)),
    signal: new AbortController().signal,
  });
  let interrupted = false;
  const app = render(<LabApp controller={controller} title={lab.title} target="local" onInterrupt={() => (interrupted = true)} />);
  await waitForFrame(app.lastFrame, 'Read this first');
  await inputReady(app);
  app.stdin.write('\r');
  await waitForFrame(app.lastFrame, 'A step with a note');
  assert.equal(controller.state.steps[0]!.status, 'done');
  app.stdin.write('s');
  await waitForFrame(app.lastFrame, 'Last step');
  assert.equal(controller.state.steps[1]!.status, 'skipped');
  app.stdin.write('\r');
  await waitForFrame(app.lastFrame, /Lab complete|✓.*Last step/);
  assert.equal(controller.state.phase, 'finished');
  assert.equal(interrupted, false);
  app.unmount();
});

test('LabApp: q quits and Ctrl+C calls the interrupt handler', async () => {
  const controller = new LabController({
    lab,
    target: 'local',
    runner: new LocalRunner(new LocalSession(), flattenSteps(lab)),
    signal: new AbortController().signal,
  });
  let interrupted = false;
  const app = render(<LabApp controller={controller} title={lab.title} target="local" onInterrupt={() => (interrupted = true)} />);
  await waitForFrame(app.lastFrame, 'Read this first');
  await inputReady(app);
  app.stdin.write('\u0003');
  await until(() => interrupted, 'Ctrl+C to reach the interrupt handler');
  app.stdin.write('q');
  await until(() => controller.state.phase === 'quit', 'q to quit the lab');
  app.unmount();
});
