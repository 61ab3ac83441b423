import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { listLabIds, loadLab, validateLab, LabFormatError } from '../../src/lab/load.js';
import { loadProgress, saveProgress, progressPath } from '../../src/lab/progress.js';
import { displayCommand, substitute, MASK } from '../../src/lab/commands.js';
import { quoteArg, shellQuote } from '../../src/base/shell.js';
import { actionFor } from '../../src/lab/actions/index.js';
import { flattenSteps } from '../../src/lab/types.js';
import { tempDir } from '../helpers/temp.js';
import { loadScenarios } from '../../src/lab/scenarios.js';

test('every lab in labs/ loads, and every local action it names exists', () => {
  const ids = listLabIds();
  assert.ok(ids.includes('kv-routing'), `labs found: ${ids.join(', ')}`);
  for (const id of ids) {
    const lab = loadLab(id);
    for (const { step } of flattenSteps(lab)) {
      for (const a of [step.local?.run, step.verify?.local]) {
        if (a) assert.ok(actionFor(a.action), `${id}/${step.id}: unknown action ${a.action}`);
      }
    }
  }
});

test('the kv-routing lab has the skeleton sections in order', () => {
  const lab = loadLab('kv-routing');
  assert.deepEqual(
    lab.sections.map((s) => s.id),
    ['understand', 'start-workers', 'start-router', 'demo', 'inspect-logs', 'long-prefix', 'cleanup'],
  );
});

test('scenarios hold the seed prompts', () => {
  const sc = loadScenarios();
  assert.deepEqual(
    sc['shared-prefix']!.requests.map((r) => r.prompt),
    ['Explain quantum computing', 'Explain quantum computing in simple terms', 'Explain quantum computing briefly'],
  );
  assert.equal(sc['system-prompt']!.requests.length, 2);
});

test('long-prefix scenarios: deterministic, thousands of tokens, four requests sharing the prefix', async () => {
  const { fillerText } = await import('../../src/lab/filler.js');
  assert.equal(fillerText('x', 500), fillerText('x', 500), 'the same name and size give the same text');
  assert.notEqual(fillerText('x', 500), fillerText('y', 500));
  const sc = loadScenarios();
  for (const name of ['long-system-prompt', 'long-document', 'long-chat']) {
    const s = sc[name]!;
    assert.equal(s.long, true, name);
    assert.equal(s.requests.length, 4, name);
    const first = s.requests[0]!;
    const text = (first.system ?? '') + first.prompt;
    assert.ok(text.split(/\s+/).length > 5000, `${name}: the shared part is thousands of words`);
    assert.doesNotMatch(text, /\{\{filler/, `${name}: placeholder left`);
    assert.ok(
      s.requests.every((r) => (r.label ?? '').length > 0 && (r.label ?? '').length < 80),
      `${name}: every request has a short label for the tables`,
    );
  }
});

test('bad lab definitions fail with the file and the field named', () => {
  const base = {
    format_version: 1,
    id: 'x',
    title: 't',
    summary: 's',
    version: 1,
    sections: [{ id: 's', title: 'S', steps: [{ id: 'a', type: 'explain', title: 'A' }] }],
  };
  assert.doesNotThrow(() => validateLab(base, 'f.yaml'));
  const bad = (patch: unknown, re: RegExp) =>
    assert.throws(
      () => validateLab(patch, 'f.yaml'),
      (e: Error) => e instanceof LabFormatError && re.test(e.message) && e.message.startsWith('f.yaml'),
    );
  bad({ ...base, format_version: 2 }, /format_version must be 1/);
  bad({ ...base, sections: [] }, /sections/);
  bad({ ...base, sections: [{ id: 's', title: 'S', steps: [{ id: 'a', type: 'shell', title: 'A' }] }] }, /type must be one of/);
  bad(
    {
      ...base,
      sections: [
        {
          id: 's',
          title: 'S',
          steps: [
            { id: 'a', type: 'explain', title: 'A' },
            { id: 'a', type: 'explain', title: 'B' },
          ],
        },
      ],
    },
    /used twice/,
  );
  bad(
    {
      ...base,
      sections: [
        { id: 's', title: 'S', steps: [{ id: 'a', type: 'command', title: 'A', cluster: { commands: [{ argv: 'kubectl get pods' }] } }] },
      ],
    },
    /argv arrays, not shell strings/,
  );
});

test('progress round-trips, drops unknown steps, and heals a corrupt file', () => {
  const dir = tempDir('dl-progress-');
  const p = progressPath('kv-routing', 'local', dir);
  saveProgress(p, {
    lab: 'kv-routing',
    labVersion: 1,
    target: 'local',
    steps: { a: { status: 'done' }, gone: { status: 'done' }, b: { status: 'failed' } },
  });
  const loaded = loadProgress(p, 'kv-routing', ['a', 'b', 'c']);
  assert.deepEqual(loaded.statuses, { a: 'done' });
  assert.equal(JSON.parse(readFileSync(p, 'utf8')).formatVersion, 1);

  writeFileSync(p, '{ not json');
  const healed = loadProgress(p, 'kv-routing', ['a']);
  assert.deepEqual(healed.statuses, {});
  assert.match(healed.notice ?? '', /could not be used/);
  assert.ok(
    readdirSync(dirname(p)).some((f) => f.includes('.broken-')),
    'the bad file is kept aside',
  );

  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, JSON.stringify({ formatVersion: 1, lab: 'other-lab', steps: {} }));
  assert.match(loadProgress(p, 'kv-routing', ['a']).notice ?? '', /not a progress file of this lab/);
});

test('commands are shown shell-quoted with variables substituted and secrets masked', () => {
  assert.equal(quoteArg('plain-arg'), 'plain-arg');
  assert.equal(quoteArg('two words'), "'two words'");
  assert.equal(quoteArg("it's"), "'it'\\''s'");
  assert.equal(quoteArg(''), "''");
  assert.equal(shellQuote(['helm', 'a b', '']), "helm 'a b' ''");
  assert.equal(substitute('ns=${NAMESPACE} ${UNKNOWN}', { NAMESPACE: 'dynamo' }), 'ns=dynamo ${UNKNOWN}');
  const shown = displayCommand(
    { argv: ['kubectl', 'create', 'secret', 'generic', 'hf', '--from-literal=HF_TOKEN=hf_secret123'] },
    { HF_TOKEN: 'hf_secret123' },
  );
  assert.ok(!shown.includes('hf_secret123'), shown);
  assert.ok(shown.includes(MASK));
  const withEnv = displayCommand({ argv: ['run'], env: { TOKEN: 'abcdef' }, secretEnv: ['TOKEN'] }, {});
  assert.equal(withEnv, `TOKEN=${MASK} run`);
});

test('router.in-place names a bad scenario list before it sends anything', async () => {
  const action = actionFor('router.in-place')!;
  const ctx = { session: {}, out: () => {}, emit: () => {}, signal: new AbortController().signal } as never;
  const unknown = await action.run({ scenarios: ['no-such-scenario'] }, ctx);
  assert.equal(unknown.ok, false);
  assert.match(String(unknown.error), /unknown scenario "no-such-scenario" \(known: .*shared-prefix/);
  const none = await action.run({}, ctx);
  assert.equal(none.ok, false);
  assert.match(String(none.error), /needs "scenarios"/);
});
