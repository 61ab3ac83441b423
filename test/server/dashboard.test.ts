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
