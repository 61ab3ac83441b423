import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_TTFT_MODEL_CONFIG,
  KvRouter,
  Rng,
  TTFT_FEATURES,
  TtftModel,
  computeBlockHashes,
  computeSequenceHashes,
  mockerPrior,
  ttftFeatures,
  type RouterEvent,
  type TtftModelConfig,
} from '../../src/router/index.js';

const B = 8192;

function cfg(over: Partial<TtftModelConfig> = {}): TtftModelConfig {
  return { ...DEFAULT_TTFT_MODEL_CONFIG, ...over };
}

/** Random (queued, own, usage) features over the range a worker sees, under and over capacity. */
function randomFeatures(rng: Rng): Float64Array {
  const queued = rng.next() < 0.3 ? 0 : rng.int(60_000);
  const own = rng.int(40_000);
  const usage = rng.next() * 1.6;
  return ttftFeatures(queued, own, usage, { maxBatchedTokens: B }, undefined, rng.next() < 0.5);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

test('features follow the chunked-prefill pass structure', () => {
  const x = ttftFeatures(8192, 4096, 0.5, { maxBatchedTokens: B });
  assert.deepEqual(Array.from(x), [2, 1.5, 1 + 0.25, 1, 0.5, 0, 0]);
  assert.equal(ttftFeatures(0, 10, 0, { maxBatchedTokens: B }, undefined, true)[6], 1, 'a busy worker finishes its running pass first');
  const idle = ttftFeatures(0, 0, 0, { maxBatchedTokens: B });
  assert.equal(idle[0], 1, 'a fully cached prompt still takes one pass to emit the first token');
  assert.equal(ttftFeatures(0, 100, 1.25, { maxBatchedTokens: B })[5], 0.25);
  // With the prior (mocker polynomial), a lone 8192-token prompt on an idle engine costs what
  // the mocker charges: prefill_ms(8192) + decode_ms(0) = 16.50 + 124.38 + 28.25 + 5.74 ms.
  const m = new TtftModel(cfg());
  const t = m.predict(ttftFeatures(0, 8192, 0, { maxBatchedTokens: B }));
  assert.ok(Math.abs(t - (16.50142 + 1.518344e-2 * 8192 + 4.209989e-7 * 8192 * 8192 + 5.74)) < 1e-6, `got ${t}`);
});

test('the fitted model recovers known coefficients from synthetic observations (an engine 10x faster than the prior)', () => {
  const truth = mockerPrior(B).map((c) => c / 10);
  truth[5] = 2500; // overload term: 2.5 s per capacity of excess
  truth[6] = 7; // the running pass on a busy worker
  // Least squares proper (a negligible prior): every coefficient is recovered.
  const weak = new TtftModel(cfg({ forgetting: 1, priorStrength: [1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6] }));
  // The default prior: the prefill quadratic is nearly collinear with the pass count and the
  // linear term (it only shows in the last, partial pass), so the prior holds that direction;
  // what the fit must get right is the predicted TTFT.
  const dflt = new TtftModel(cfg({ forgetting: 1 }));
  const rng = new Rng(42);
  for (let i = 0; i < 5000; i++) {
    const x = randomFeatures(rng);
    const noise = (rng.next() - 0.5) * 0.2; // ±0.1 ms
    const y = Math.max(0, dot(truth, x) + noise);
    weak.observe(x, y);
    dflt.observe(x, y);
  }
  const got = weak.coefficients();
  for (let i = 0; i < truth.length; i++) {
    const tol = Math.max(0.05 * Math.abs(truth[i]!), 0.05);
    assert.ok(Math.abs(got[i]! - truth[i]!) <= tol, `${TTFT_FEATURES[i]}: fitted ${got[i]} vs true ${truth[i]}`);
  }
  const prior = new TtftModel(cfg());
  for (let i = 0; i < 200; i++) {
    const x = randomFeatures(rng);
    const y = dot(truth, x);
    assert.ok(Math.abs(weak.predict(x) - y) <= Math.max(0.5, 0.01 * y), `least squares: ${weak.predict(x)} vs ${y}`);
    assert.ok(Math.abs(dflt.predict(x) - y) <= Math.max(2, 0.05 * y), `with the prior: ${dflt.predict(x)} vs ${y}`);
    if (x[5] === 0) assert.ok(prior.predict(x) > 5 * y, 'the unfitted prior is 10x off, so the fit did the work');
  }
  assert.equal(dflt.observations, 5000);
});

test('with no observations the model is the prior; a few observations move it part of the way', () => {
  const m = new TtftModel(cfg());
  assert.deepEqual(Array.from(m.coefficients()), mockerPrior(B));
  const x = ttftFeatures(0, 16_000, 0.1, { maxBatchedTokens: B });
  const before = m.predict(x);
  for (let i = 0; i < 3; i++) m.observe(x, before * 3);
  const after = m.predict(x);
  assert.ok(after > before * 1.3 && after < before * 3, `after 3 slow observations: ${before} -> ${after}`);
});

test('coefficients that must not be negative are clamped at 0', () => {
  const m = new TtftModel(cfg({ forgetting: 1, priorStrength: [1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6] }));
  const rng = new Rng(3);
  // TTFT falling with the prompt length is impossible for an engine: the fit must not say so.
  for (let i = 0; i < 500; i++) {
    const x = randomFeatures(rng);
    m.observe(x, Math.max(0, 500 - 100 * x[1]!));
  }
  const c = m.coefficients();
  for (const i of [0, 1, 2, 5, 6]) assert.ok(c[i]! >= 0, `${TTFT_FEATURES[i]} = ${c[i]}`);
});

test('a worker model leans on the pooled model and moves with its own data', () => {
  const pooled = new TtftModel(cfg());
  const a = new TtftModel(cfg(), pooled, 20);
  const b = new TtftModel(cfg(), pooled, 20);
  const rng = new Rng(9);
  for (let i = 0; i < 400; i++) {
    const x = randomFeatures(rng);
    const slow = dot(mockerPrior(B), x) * 4; // worker a is 4x slower than the prior
    pooled.observe(x, slow);
    a.observe(x, slow);
  }
  const x = ttftFeatures(0, 20_000, 0.1, { maxBatchedTokens: B });
  const prior = new TtftModel(cfg()).predict(x);
  assert.ok(Math.abs(a.predict(x) / prior - 4) < 0.2, `a: ${a.predict(x) / prior}x the prior`);
  // b has no data of its own: it follows the pooled model (here: a's), not the stale prior.
  assert.ok(Math.abs(b.predict(x) - pooled.predict(x)) < 1e-6 * pooled.predict(x));
  assert.ok(b.predict(x) > 3 * prior);
});

const BS = 64;

function tokens(n: number, start = 1): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

function storedFor(workerId: string, toks: number[], eventId: number): RouterEvent {
  const local = computeBlockHashes(toks, BS);
  const seq = computeSequenceHashes(local);
  return {
    workerId,
    dpRank: 0,
    eventId,
    data: { type: 'stored', parentHash: null, blocks: local.map((l, i) => ({ blockHash: seq[i]!, tokensHash: l })) },
  };
}

/** Worker a holds 70 of the prompt's 80 blocks and decodes one long unrelated request; b is idle. */
function cachedBusyScenario(mode: 'kv' | 'kv-ttft', ttftModel: Partial<TtftModelConfig> = {}): KvRouter {
  const r = new KvRouter({ blockSize: BS, mode, seed: 1, ttftModel });
  r.addWorker('a');
  r.addWorker('b');
  assert.equal(r.applyEvent(storedFor('a', tokens(70 * BS), 0)).status, 'ok');
  // An unrelated 300-block request routed to a, past its prefill (decoding).
  const other = r.route({ requestId: 'other', tokens: tokens(300 * BS, 900_000), nowMs: 0, allowedWorkers: ['a'] });
  assert.equal(other.chosen, 'a');
  r.markPrefillCompleted('other', 1);
  return r;
}

test('kv-ttft takes the cached busy worker that Dynamo kv passes over (decode blocks booked as cost)', () => {
  const prompt = tokens(80 * BS);
  const kv = cachedBusyScenario('kv').route({ requestId: 'q', tokens: prompt, nowMs: 2 });
  assert.equal(kv.chosen, 'b', 'Dynamo kv: 10 + 380 blocks on a vs 80 + 80 on b');
  const r = cachedBusyScenario('kv-ttft');
  const d = r.route({ requestId: 'q', tokens: prompt, nowMs: 2 });
  assert.equal(d.chosen, 'a');
  const wa = d.workers.find((w) => w.id === 'a')!;
  const wb = d.workers.find((w) => w.id === 'b')!;
  // No prefill queued on a: its queue time is only the running (decode) pass it must wait for.
  assert.equal(wa.predicted_queue_ms, wa.ttft_model!.coefficients.busy_wait_ms);
  assert.equal(wb.predicted_queue_ms, 0);
  assert.ok(wa.predicted_ttft_ms! < wb.predicted_ttft_ms!);
  // No prefill queued anywhere: no prefill penalty; cost = predicted TTFT + the KV-footprint term.
  assert.ok(Math.abs(wa.cost - (wa.predicted_ttft_ms! + DEFAULT_TTFT_MODEL_CONFIG.decodeBlockMs * wa.potential_decode_blocks)) < 1e-9);
  assert.ok(wa.ttft_model && wa.ttft_model.coefficients.pass_ms > 0);
  // ★ fields of kv are still there.
  for (const k of [
    'overlap_blocks',
    'active_prefill_tokens',
    'active_blocks',
    'potential_prefill_blocks',
    'potential_decode_blocks',
    'cost',
  ] as const)
    assert.equal(typeof wa[k], 'number');
  assert.equal(wa.overlap_blocks, 70);
});

test("kv-ttft keeps Dynamo kv's choice unless its own is predicted to be cheaper by more than kvDeferMargin", () => {
  const prompt = tokens(80 * BS);
  const own = cachedBusyScenario('kv-ttft').route({ requestId: 'q', tokens: prompt, nowMs: 2 });
  const wa = own.workers.find((w) => w.id === 'a')!;
  const wb = own.workers.find((w) => w.id === 'b')!;
  const gain = wb.cost / wa.cost - 1;
  assert.equal(own.chosen, 'a');
  assert.ok(gain > DEFAULT_TTFT_MODEL_CONFIG.kvDeferMargin, `predicted gain ${gain} beats the default margin`);
  // A margin above the predicted gain: kv's choice (b) stands; the costs shown are unchanged.
  const deferred = cachedBusyScenario('kv-ttft', { kvDeferMargin: gain * 1.01 }).route({ requestId: 'q', tokens: prompt, nowMs: 2 });
  assert.equal(deferred.chosen, 'b');
  assert.deepEqual(
    deferred.workers.map((w) => w.cost),
    own.workers.map((w) => w.cost),
  );
  // The absolute band does the same.
  const byMs = cachedBusyScenario('kv-ttft', { kvDeferMargin: 1e-9, kvDeferMs: wb.cost - wa.cost + 1 }).route({
    requestId: 'q',
    tokens: prompt,
    nowMs: 2,
  });
  assert.equal(byMs.chosen, 'b');
  // Margin 0 turns the deferral off.
  assert.equal(
    cachedBusyScenario('kv-ttft', { kvDeferMargin: 0, kvDeferMs: 1e9 }).route({ requestId: 'q', tokens: prompt, nowMs: 2 }).chosen,
    'a',
  );
});

test('kv-ttft leaves the cached worker when its queued prefill costs more than the prefix saves', () => {
  const r = new KvRouter({ blockSize: BS, mode: 'kv-ttft', seed: 1 });
  r.addWorker('a');
  r.addWorker('b');
  r.applyEvent(storedFor('a', tokens(70 * BS), 0));
  for (let i = 0; i < 4; i++) r.route({ requestId: `long${i}`, tokens: tokens(8192, 100_000 * (i + 1)), nowMs: 0, allowedWorkers: ['a'] });
  const d = r.route({ requestId: 'q', tokens: tokens(80 * BS), nowMs: 1 });
  assert.equal(d.chosen, 'b');
  const wa = d.workers.find((w) => w.id === 'a')!;
  assert.ok(wa.predicted_queue_ms! > 400, `4 x 8192 queued tokens: ${wa.predicted_queue_ms} ms`);
  assert.equal(d.workers.find((w) => w.id === 'b')!.predicted_queue_ms, 0);
});

test('observeTtft feeds the chosen worker: a worker that turns out slow is avoided', () => {
  const r = new KvRouter({ blockSize: BS, mode: 'kv-ttft', seed: 5 });
  r.addWorker('fast');
  r.addWorker('slow');
  let n = 0;
  // Force traffic onto both and report what each really took: slow is 5x the prediction.
  for (let i = 0; i < 60; i++) {
    const w = i % 2 === 0 ? 'fast' : 'slow';
    const id = `w${n++}`;
    const d = r.route({ requestId: id, tokens: tokens(4096, 1_000_000 + i * 5000), nowMs: i, allowedWorkers: [w] });
    const pred = d.workers[0]!.predicted_ttft_ms!;
    assert.equal(r.observeTtft(id, w === 'slow' ? pred * 5 : pred), true);
    assert.equal(r.observeTtft(id, 1), false, 'a request is observed once');
    r.markPrefillCompleted(id, i);
    r.free(id, i);
  }
  assert.ok(r.ttftModel('slow')!.coefficients.prefill_ms_per_batch > 2 * r.ttftModel('fast')!.coefficients.prefill_ms_per_batch);
  const picks = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const d = r.route({ requestId: `q${i}`, tokens: tokens(4096, 5_000_000 + i * 5000), nowMs: 100 + i });
    picks.add(d.chosen);
    r.free(`q${i}`, 100 + i);
  }
  assert.deepEqual([...picks], ['fast']);
  // kv mode records nothing to observe.
  const kv = new KvRouter({ blockSize: BS });
  kv.addWorker('a');
  kv.route({ requestId: 'k', tokens: tokens(128), nowMs: 0 });
  assert.equal(kv.observeTtft('k', 10), false);
});

test('a constant overhead seen on one worker does not push a cached prefix elsewhere (fleet-shared per-pass term)', () => {
  // Real time: the router's TTFT includes HTTP and tokenisation, ~80 ms here, which the
  // mocker prior does not know. Only worker a has observations, and it holds the prompt's prefix.
  const r = new KvRouter({ blockSize: 16, mode: 'kv-ttft', seed: 3 });
  for (const w of ['a', 'b', 'c', 'd']) r.addWorker(w);
  const prompt = tokens(37, 7);
  const local = computeBlockHashes(prompt.slice(0, 16), 16);
  r.applyEvent({
    workerId: 'a',
    dpRank: 0,
    eventId: 0,
    data: {
      type: 'stored',
      parentHash: null,
      blocks: local.map((l, i) => ({ blockHash: computeSequenceHashes(local)[i]!, tokensHash: l })),
    },
  });
  for (let i = 0; i < 3; i++) {
    const id = `warm${i}`;
    r.route({ requestId: id, tokens: [...prompt.slice(0, 16), ...tokens(21, 5000 + 100 * i)], nowMs: i * 1000, allowedWorkers: ['a'] });
    assert.ok(r.observeTtft(id, 80));
    r.markPrefillCompleted(id, i * 1000 + 80);
    r.free(id, i * 1000 + 90);
  }
  const d = r.route({ requestId: 'q', tokens: prompt, nowMs: 10_000 });
  assert.equal(d.overlap_blocks, 1);
  assert.equal(d.chosen, 'a', JSON.stringify(d.workers.map((w) => [w.id, w.predicted_ttft_ms, w.cost])));
  const a = d.workers.find((w) => w.id === 'a')!;
  const b = d.workers.find((w) => w.id === 'b')!;
  assert.equal(a.ttft_model!.coefficients.pass_ms, b.ttft_model!.coefficients.pass_ms);
  assert.ok(a.ttft_model!.coefficients.pass_ms > 40, 'the fleet learned the overhead');
});
