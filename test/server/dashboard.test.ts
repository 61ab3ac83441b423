/** The router dashboard component (ink-testing-library; .ts with createElement so the test/server/*.test.ts glob includes it). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import React from 'react';
import { render } from 'ink-testing-library';
import { bar } from '../../src/base/bar.js';
import { RouterDashboard, type RouterDashboardProps } from '../../src/ui/RouterDashboard.js';

const base: RouterDashboardProps = {
  url: 'http://127.0.0.1:8000',
  mode: 'kv',
  events: 'zmq',
  totals: { requests: 12, errors: 1, rejected: 2, predicted_hit_rate: 0.5, achieved_hit_rate: 0.25 },
  workers: [
    {
      id: 'worker-0',
      url: 'http://a',
      healthy: true,
      circuit: 'closed',
      busy: false,
      cached_blocks: 100,
      active_blocks: 10,
      active_prefill_tokens: 320,
      active_requests: 1,
      requests: 9,
      errors: 0,
      predicted_hit_rate: 0.9,
      achieved_hit_rate: 0.8,
    },
    {
      id: 'worker-1',
      url: 'http://b',
      healthy: false,
      health_error: 'connect ECONNREFUSED',
      circuit: 'open',
      busy: false,
      cached_blocks: 50,
      active_blocks: 0,
      active_prefill_tokens: 0,
      active_requests: 0,
      requests: 3,
      errors: 3,
      predicted_hit_rate: null,
      achieved_hit_rate: null,
    },
  ],
  decisions: [
    {
      request_id: 'chatcmpl-0123456789abcdef',
      chosen: 'worker-0',
      mode: 'kv',
      isl_tokens: 400,
      block_size: 16,
      overlap_blocks: 24,
      attempt: 2,
      pinned: true,
      status: 'ok',
      achieved_cached_tokens: 384,
      workers: [
        { id: 'worker-0', overlap_blocks: 24, cost: 1.5 },
        { id: 'worker-1', overlap_blocks: 0, cost: 25.25 },
      ],
    },
  ],
};

test('bars scale to the largest value', () => {
  assert.equal(bar(5, 10, 4), '██░░');
  assert.equal(bar(0, 0, 3), '░░░');
  assert.equal(bar(20, 10, 2), '██');
});

test('the dashboard shows workers with health, bars and hit rates, and the last decisions with overlap / cost', () => {
  const { lastFrame, unmount } = render(React.createElement(RouterDashboard, { ...base, barWidth: 10 }));
  const f = lastFrame() ?? '';
  unmount();
  assert.match(f, /dynamo-lab router http:\/\/127\.0\.0\.1:8000 {2}mode kv {2}events zmq/);
  assert.match(f, /requests 12 {2}errors 1 {2}rejected 2 {2}hit rate predicted 50% \/ achieved 25%/);
  const w0 = f.split('\n').find((l) => l.startsWith('worker-0'))!;
  assert.match(w0, /● up/);
  assert.match(w0, /██████████ +100/, 'largest cache fills the bar');
  assert.match(w0, /90% \/  80%/);
  const w1 = f.split('\n').find((l) => l.startsWith('worker-1'))!;
  assert.match(w1, /✗ down/);
  assert.match(w1, /█████░░░░░ +50/);
  assert.match(f, /worker-1 .*\n +connect ECONNREFUSED/);
  assert.match(f, /89abcdef → worker-0 overlap 24\/25 session retry 2 cached 384\n +worker-0: 24\/1\.5 {2}worker-1: 0\/25\.3/);
});

test('recent notices are listed', () => {
  const { lastFrame, unmount } = render(
    React.createElement(RouterDashboard, { ...base, notices: ['worker worker-1 failed 2 health checks: taken out of routing'] }),
  );
  const f = lastFrame() ?? '';
  unmount();
  assert.match(f, /Recent events\nworker worker-1 failed 2 health checks: taken out of routing/);
});

test('empty states explain what to do', () => {
  const { lastFrame, unmount } = render(React.createElement(RouterDashboard, { ...base, workers: [], decisions: [] }));
  const f = lastFrame() ?? '';
  unmount();
  assert.match(f, /no workers registered \(POST \/admin\/workers/);
  assert.match(f, /no requests yet: point an OpenAI client at http:\/\/127\.0\.0\.1:8000\/v1/);
});

test('the worker table fits the terminal: 80 columns shrink the bars, a wide terminal gets full ones', () => {
  const eight = Array.from({ length: 8 }, (_, i) => ({ ...base.workers[0]!, id: `worker-${i}`, cached_blocks: 1000 * (i + 1) }));
  const rows = (columns: number) => {
    const { lastFrame, unmount } = render(React.createElement(RouterDashboard, { ...base, workers: eight, columns }));
    const f = lastFrame() ?? '';
    unmount();
    return f.split('\n').filter((l) => /^(WORKER|worker-\d)/.test(l));
  };
  const narrow = rows(80);
  assert.equal(narrow.length, 9, 'header and 8 workers, each on one line');
  for (const l of narrow) assert.ok(l.length <= 79, `${l.length} columns: ${l}`);
  assert.match(narrow[0]!, /HIT RATE +pred \/ actual$/);
  assert.match(narrow.at(-1)!, /█████ +8000 .* 90% \/  80%$/, 'the largest cache fills its (5-cell) bar');
  const wide = rows(160);
  assert.match(wide.at(-1)!, /█{12} +8000 /, 'full 12-cell bars');
});

test('at 80x24 with 8 workers the frame fits: title and worker table stay on screen, only the newest decisions that fit are listed', () => {
  const eight = Array.from({ length: 8 }, (_, i) => ({ ...base.workers[0]!, id: `worker-${i}` }));
  const decision = (i: number) => ({
    ...base.decisions[0]!,
    request_id: `req-0000000${i}`,
    workers: eight.map((w, k) => ({ id: w.id, overlap_blocks: k, cost: 4.5 + k })),
  });
  const props = { ...base, workers: eight, decisions: Array.from({ length: 8 }, (_, i) => decision(i)), notices: ['tokenizer: x'] };
  const frame = (rows?: number) => {
    const { lastFrame, unmount } = render(React.createElement(RouterDashboard, { ...props, columns: 80, rows }));
    const f = lastFrame() ?? '';
    unmount();
    return f;
  };
  const f = frame(24);
  assert.ok(f.split('\n').length <= 23, `${f.split('\n').length} lines:\n${f}`);
  assert.match(f, /^dynamo-lab router /);
  assert.match(f, /^WORKER /m);
  assert.match(f, /^00000000 → worker-0/m, 'the newest decision is shown');
  assert.doesNotMatch(f, /00000007 →/, 'the oldest does not fit');
  assert.match(f, /Recent events\ntokenizer: x/);
  for (const l of f.split('\n')) assert.ok(l.length <= 79, `${l.length} columns: ${l}`);
  assert.match(f, /\n {4}worker-0: 0\/4\.5 .*\n {4}worker-\d: /, 'the cost list wraps onto indented lines');
  assert.match(frame(), /^00000007 →/m, 'without a height every decision given is listed');
});
