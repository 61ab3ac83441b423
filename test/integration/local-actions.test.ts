/**
 * Every built-in local action, run through the real LocalRunner against real simulated
 * workers and the real router, the way a lab runs them.
 */
import { resultLines } from '../../src/lab/results.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LabController } from '../../src/lab/controller.js';
import { LocalRunner } from '../../src/lab/runner.js';
import { LocalSession } from '../../src/lab/session.js';
import { flattenSteps, type LabDefinition, type Step } from '../../src/lab/types.js';
import { portIsFree } from '../helpers/cli.js';

const step = (id: string, action: string, withParams: Record<string, unknown> = {}, verify?: string): Step => ({
  id,
  type: 'command',
  title: id,
  local: { run: { action, with: withParams } },
  ...(verify ? { verify: { local: { action: verify } } } : {}),
});

const lab: LabDefinition = {
  format_version: 1,
  id: 'actions',
  title: 'all actions',
  summary: 'test',
  version: 1,
  sections: [
    {
      id: 'all',
      title: 'All',
      steps: [
        step('nats', 'nats.start'),
        step('workers', 'sim.start', { workers: 3, block_size: 16 }, 'workers.healthy'),
        step('router', 'router.start', { mode: 'kv' }, 'router.healthy'),
        step('multi-turn', 'demo.run', { mode: 'kv', reset_cache: true, expect: 'same-worker', scenarios: ['multi-turn'] }),
        step('spread', 'demo.run', { mode: 'round-robin', reset_cache: true, expect: 'alternate', scenarios: ['load-spread'] }),
        step('in-place', 'router.in-place', { reset_cache: true, expect: 'same-worker', scenarios: ['multi-turn'] }),
        step('retune', 'router.start', { mode: 'kv', kv_overlap_score_weight: 0, router_temperature: 0.5 }),
        step('traffic', 'traffic.run', { requests: 12, concurrency: 4, max_tokens: 4 }),
        step('status', 'workers.status'),
        step('metrics', 'metrics.show', { pattern: 'dynamo_component_router_requests_total|vllm:num_requests_running' }),
        step('health', 'health.check'),
        step('compare', 'demo.compare'),
        step('logs', 'logs.grep', { pattern: 'prefix cache hit', tail: 5 }),
        step('stop', 'session.stop', {}, 'ports.free'),
      ],
    },
  ],
};

test('every local action works end to end and cleanup frees every port', { timeout: 90_000 }, async () => {
  const session = new LocalSession();
  const lines: string[] = [];
  const controller = new LabController({
    lab,
    target: 'local',
    runner: new LocalRunner(session, flattenSteps(lab)),
    signal: new AbortController().signal,
  });
  controller.subscribe(() => {
    const cur = controller.state.steps[controller.state.current];
    if (cur) lines.splice(0, lines.length, ...cur.output);
  });
  let ok = false;
  try {
    ok = await controller.runAll();
  } finally {
    await session.stop();
  }
  const failed = controller.state.steps.find((s) => s.status === 'failed');
  assert.ok(ok, `failed at ${failed?.id}: ${failed?.error}\n${failed?.output.join('\n')}`);

  // Progress lines and the structured results (tables, checks) as text.
  const out = (id: string) => {
    const st = controller.state.steps.find((s) => s.id === id)!;
    return [...st.output, ...(st.results ?? []).flatMap((r) => resultLines(r))].join('\n');
  };
  // multi-turn: the follow-ups resend the conversation, so they reuse its blocks on the same worker.
  const mt = session.demo.filter((d) => d.group === 'multi-turn');
  assert.equal(mt.length, 3);
  assert.ok(
    mt[2]!.prompt_tokens! > mt[1]!.prompt_tokens! && mt[1]!.prompt_tokens! > mt[0]!.prompt_tokens!,
    'each turn carries the history',
  );
  assert.ok(mt[1]!.cached_tokens! > 16 && mt[2]!.cached_tokens! > mt[1]!.cached_tokens!, JSON.stringify(mt.map((m) => m.cached_tokens)));
  // round-robin spread over three workers.
  assert.equal(new Set(session.demo.filter((d) => d.group === 'load-spread').map((d) => d.worker)).size, 3);
  assert.match(out('retune'), /restarting the router/);
  assert.match(out('retune'), /overlap credit=0 prefill load scale=0 temperature=0\.5/);
  assert.match(out('traffic'), /12 requests in/);
  assert.match(out('traffic'), /requests per worker/);
  assert.match(out('status'), /cached blocks/);
  assert.match(out('metrics'), /dynamo_component_router_requests_total/);
  assert.match(out('metrics'), /vllm:num_requests_running/);
  assert.match(out('health'), /✓ router/);
  assert.match(out('compare'), /latest run per mode on the same scenarios, all requests/);
  assert.match(out('router'), /router healthy; serving \S+/);
  assert.match(out('logs'), /prefix cache hit/);
  assert.match(out('logs'), /^=== \S+ \(\d+ matching lines?\)$/m);
  assert.match(out('nats'), /nats-server|in-process/);
  assert.equal(session.workers.length, 0);
  assert.equal(session.router, undefined);
  for (const e of session.endpoints) assert.ok(await portIsFree(Number(new URL(e.url).port)), `${e.id} ${e.url}`);
});
