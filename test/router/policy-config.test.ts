import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { routerPolicyConfig } from '../../src/cluster/releases.js';
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
  err('unknown_thing: 1\n', /p\.yaml: unknown key "unknown_thing"/, /worker_selection/);
});

test("policy config: Dynamo 1.6.1's worker_selection file (the one `deploy` mounts for the frontend) sets the same knobs", () => {
  // The shape the ai-dynamo 1.6.1 frontend accepts (tested against it in test/peers/dynamo.test.ts).
  const rendered = stringify(routerPolicyConfig({ overlapWeight: 0.5, overlapCredit: 2, temperature: 0.25 }));
  const c = configFromFlags(parsePolicyConfig(rendered, 'deploy.yaml'));
  assert.equal(c.prefillLoadScale, 0.5);
  assert.equal(c.overlapScoreCredit, 2);
  assert.equal(c.temperature, 0.25);
  // aggregated, else decode, else prefill: the instance that serves the workers.
  const two = (role: string) =>
    [
      'worker_selection:',
      `  ${role}: b`,
      '  instances:',
      '    - name: a',
      '      type: dynamo-default-cost-fn',
      '      parameters: { prefill_load_scale: 7 }',
      '    - name: b',
      '      type: dynamo-default-cost-fn',
      '      parameters: { prefill_load_scale: 3, decode_active_request_weight: 1.5, host_cache_hit_weight: 0.5 }',
      '',
    ].join('\n');
  for (const role of ['aggregated', 'decode', 'prefill']) {
    assert.deepEqual(parsePolicyConfig(two(role)), { prefillLoadScale: 3, decodeActiveRequestWeight: 1.5, hostCacheHitWeight: 0.5 });
  }
  // An instance without parameters leaves the defaults.
  assert.deepEqual(parsePolicyConfig('worker_selection:\n  aggregated: a\n  instances: [{ name: a, type: dynamo-default-cost-fn }]\n'), {});
});

test("policy config: what Dynamo's file may hold but this router does not implement is refused by name", () => {
  const err = (text: string, re: RegExp) =>
    assert.throws(
      () => parsePolicyConfig(text, 'p.yaml'),
      (e: unknown) => e instanceof PolicyConfigError && re.test(e.message),
    );
  const ws = (inst: string, extra = '') => `worker_selection:\n  aggregated: a\n  instances:\n    - ${inst}\n${extra}`;
  err(
    ws('{ name: a, type: dynamo-two-tier-cost-fn }'),
    /type "dynamo-two-tier-cost-fn"; dynamo-lab's router implements only dynamo-default-cost-fn/,
  );
  err(ws('{ name: a, type: dynamo-default-cost-fn, parameters: { nope: 1 } }'), /worker_selection: unknown parameter "nope"/);
  err(
    ws('{ name: a, type: dynamo-default-cost-fn, parameters: { shared_cache_multiplier: 1 } }'),
    /"shared_cache_multiplier" is not supported/,
  );
  err(
    ws('{ name: a, type: dynamo-default-cost-fn, parameters: { router_temperature: -1 } }'),
    /router_temperature must be a finite number >= 0/,
  );
  err(ws('{ name: a, type: dynamo-default-cost-fn, weight: 1 }'), /instance "a": unknown key "weight"/);
  err(ws('{ name: x, type: dynamo-default-cost-fn }'), /aggregated is "a", which no instance is named \(instances: x\)/);
  err(ws('{ name: a, type: dynamo-default-cost-fn }', 'request_classifier: {}\n'), /"request_classifier" .* not supported/);
  err('worker_selection:\n  instances: []\n', /names no instance for the workers/);
  err('worker_selection:\n  aggregated: a\n  instances: {}\n', /instances must be a list/);
  err('worker_selection:\n  chooser: a\n', /worker_selection: unknown key "chooser"/);
  err('worker_selection: 3\n', /worker_selection must be a mapping/);
  err('models: {}\n', /"models" .* not supported/);
});
