import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, reduce, sectionStatus, OUTPUT_LINES_KEPT, type LabState } from '../../src/lab/state.js';
import { flattenSteps, type LabDefinition } from '../../src/lab/types.js';

const lab: LabDefinition = {
  format_version: 1,
  id: 't',
  title: 'T',
  summary: 's',
  version: 1,
  sections: [
    {
      id: 'a',
      title: 'A',
      steps: [
        { id: 'a1', type: 'explain', title: 'a1' },
        { id: 'a2', type: 'command', title: 'a2' },
      ],
    },
    { id: 'b', title: 'B', steps: [{ id: 'b1', type: 'command', title: 'b1' }] },
  ],
};
const steps = flattenSteps(lab);
const at = '2026-01-01T00:00:00.000Z';

test('a fresh lab starts at the first step, ready', () => {
  const s = initialState(steps);
  assert.equal(s.current, 0);
  assert.equal(s.phase, 'ready');
  assert.deepEqual(
    s.steps.map((x) => x.status),
    ['pending', 'pending', 'pending'],
  );
});

test('saved progress resumes at the first step that is not done; running becomes pending', () => {
  const s = initialState(steps, { a1: 'done', a2: 'running' as never });
  assert.equal(s.current, 1);
  assert.equal(s.steps[1]!.status, 'pending');
});

test('--from re-opens the chosen step and everything after it', () => {
  const s = initialState(steps, { a1: 'done', a2: 'done', b1: 'done' }, 1);
  assert.equal(s.current, 1);
  assert.deepEqual(
    s.steps.map((x) => x.status),
    ['done', 'pending', 'pending'],
  );
});

test('start -> output -> succeed advances and skips finished steps', () => {
  let s: LabState = initialState(steps, { a2: 'done' });
  s = reduce(s, { type: 'start' });
  assert.equal(s.phase, 'running');
  s = reduce(s, { type: 'output', lines: ['hello'] });
  assert.deepEqual(s.steps[0]!.output, ['hello']);
  s = reduce(s, { type: 'succeed', at });
  assert.equal(s.steps[0]!.status, 'done');
  assert.equal(s.current, 2, 'a2 was already done, so the next step is b1');
  s = reduce(reduce(s, { type: 'start' }), { type: 'succeed', at });
  assert.equal(s.phase, 'finished');
});

test('a failed step stays current, shows its hint, and can be retried', () => {
  let s = reduce(initialState(steps), { type: 'start' });
  s = reduce(s, { type: 'fail', error: 'boom', at });
  assert.equal(s.current, 0);
  assert.equal(s.phase, 'ready');
  assert.equal(s.steps[0]!.status, 'failed');
  assert.equal(s.showHint, true);
  s = reduce(s, { type: 'start' });
  assert.equal(s.steps[0]!.status, 'running');
  assert.equal(s.steps[0]!.error, undefined);
});

test('skip marks the step skipped; quit is refused while running', () => {
  let s = reduce(initialState(steps), { type: 'skip', at });
  assert.equal(s.steps[0]!.status, 'skipped');
  assert.equal(s.current, 1);
  s = reduce(s, { type: 'start' });
  assert.equal(reduce(s, { type: 'quit' }).phase, 'running');
  assert.equal(reduce(s, { type: 'skip', at }), s, 'skip while running is ignored');
});

test('interrupt during a step fails it and ends the lab', () => {
  const s = reduce(reduce(initialState(steps), { type: 'start' }), { type: 'interrupt' });
  assert.equal(s.phase, 'interrupted');
  assert.equal(s.steps[0]!.status, 'failed');
});

test('output is bounded', () => {
  let s = reduce(initialState(steps), { type: 'start' });
  s = reduce(s, { type: 'output', lines: Array.from({ length: OUTPUT_LINES_KEPT + 50 }, (_, i) => `l${i}`) });
  assert.equal(s.steps[0]!.output.length, OUTPUT_LINES_KEPT);
  assert.equal(s.steps[0]!.output.at(-1), `l${OUTPUT_LINES_KEPT + 49}`);
});

test('confirmation phase for dangerous steps', () => {
  let s = reduce(initialState(steps), { type: 'ask-confirm' });
  assert.equal(s.phase, 'confirm');
  s = reduce(s, { type: 'cancel-confirm' });
  assert.equal(s.phase, 'ready');
});

test('section status summarises its steps', () => {
  const st = (status: 'done' | 'failed' | 'skipped' | 'pending') => ({ id: 'x', status, output: [] });
  assert.equal(sectionStatus([st('done'), st('skipped')]), 'done');
  assert.equal(sectionStatus([st('done'), st('failed')]), 'failed');
  assert.equal(sectionStatus([st('skipped')]), 'skipped');
  assert.equal(sectionStatus([st('done'), st('pending')]), 'partial');
  assert.equal(sectionStatus([st('pending')]), 'pending');
});
