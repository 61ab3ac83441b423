import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvRouter, PolicyConfigError, configFromFlags, parsePolicyConfig } from '../../src/router/index.js';

test('policy config: Dynamo 1.6 parameter names map onto the router config', () => {
  const flags = parsePolicyConfig(
    [
      '# same file as for python -m dynamo.frontend --router-policy-config',
      'overlap_score_credit: 2.5',
      'overlap_score_credit_decay: 1',
      'prefill_load_scale: 0.5',
      'decode_active_request_weight: 3',
      'router_temperature: 0.25',
      '',
    ].join('\n'),
    'p.yaml',
  );
  const c = configFromFlags(flags);
  assert.equal(c.overlapScoreCredit, 2.5);
  assert.equal(c.overlapScoreCreditDecay, 1);
  assert.equal(c.prefillLoadScale, 0.5);
  assert.equal(c.decodeActiveRequestWeight, 3);
  assert.equal(c.temperature, 0.25);
  // The router uses them: decode_active_request_weight shows in the cost.
  const r = new KvRouter({ blockSize: 4, config: { ...c, temperature: 0 } });
  r.addWorker('a');
  r.route({ requestId: 'x', tokens: [1, 2, 3, 4, 5, 6, 7, 8], nowMs: 0 });
  const d = r.route({ requestId: 'y', tokens: [9, 10, 11, 12], nowMs: 1 });
  const w = d.workers[0]!;
  assert.equal(w.cost, 0.5 * Math.max(0, w.potential_prefill_blocks - 0) + w.potential_decode_blocks + 3 * 1);
  // An empty file changes nothing.
  assert.deepEqual(parsePolicyConfig('', 'empty.yaml'), {});
  assert.deepEqual(configFromFlags(parsePolicyConfig('# nothing\n')), configFromFlags({}));
});

test('policy config: unknown keys, bad values and bad YAML are clear errors', () => {
  const err = (text: string, re: RegExp, hint?: RegExp) => {
    assert.throws(
      () => parsePolicyConfig(text, 'p.yaml'),
      (e: unknown) => {
        assert.ok(e instanceof PolicyConfigError);
        assert.match(e.message, re);
        if (hint) assert.match(e.hint, hint);
        return true;
      },
    );
  };
  err(
    'overlap_score_weight: 1\n',
    /p\.yaml: unknown key "overlap_score_weight"/,
    /overlap_score_credit, overlap_score_credit_decay, prefill_load_scale, decode_active_request_weight, router_temperature/,
  );
  err('router_temperature: -1\n', /router_temperature must be a finite number >= 0, got -1/);
  err('prefill_load_scale: "high"\n', /prefill_load_scale must be a finite number >= 0, got "high"/);
  err('- overlap_score_credit: 1\n', /expected a mapping/);
  err('overlap_score_credit: [1\n', /invalid YAML/);
  err('policy_classes:\n  - name: default\n', /"policy_classes".*not supported/);
});
