import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimEngine, SimRequestError, type EngineResult, type FirstTokenInfo } from '../../src/sim/engine.js';
import { RealClock, VirtualClock } from '../../src/sim/clock.js';

// Dynamo mocker's polynomial (dynamo-facts §5), written out here independently of src/sim/timing.ts.
const polyPrefill = (t: number) => (t === 0 ? 0 : 4.209989e-7 * t * t + 1.518344e-2 * t + 16.50142);
const polyDecode = (u: number) => Math.max(1.0, -25.74 * Math.min(1, u) ** 2 + 54.01 * Math.min(1, u) + 5.74);

function prompt(n: number, base = 10_000): number[] {
  return Array.from({ length: n }, (_, i) => base + (i % 50_000));
}

function runOne(tokens: number[], opts: ConstructorParameters<typeof SimEngine>[0] = {}, maxTokens = 1) {
  const clock = new VirtualClock();
  const engine = new SimEngine(opts, clock);
  let first: FirstTokenInfo | undefined;
  let done: EngineResult | undefined;
  engine.submit({ requestId: 'a', tokens, maxTokens, onFirstToken: (f) => (first = f), onDone: (r) => (done = r) });
  clock.runUntilIdle();
  return { engine, clock, first: first!, done: done! };
}

for (const isl of [1000, 8000, 32_000]) {
  test(`virtual-time TTFT of a lone ${isl}-token prompt equals the polynomial within 1%`, () => {
    const { first, engine } = runOne(prompt(isl));
    // Chunks of at most 8192 tokens, one pass each; the last one emits the first token (no
    // request is decoding, so no pass has a decode term).
    let expected = 0;
    for (let left = isl; left > 0; left -= 8192) expected += polyPrefill(Math.min(left, 8192));
    assert.ok(Math.abs(first.ttftMs - expected) / expected < 0.01, `ttft ${first.ttftMs} vs polynomial ${expected}`);
    assert.equal(engine.stats().passes, Math.ceil(isl / 8192));
  });
}

test('speedup divides pass times; speedup 0 means no delay at all', () => {
  const base = runOne(prompt(1000)).first.ttftMs;
  const fast = runOne(prompt(1000), { speedup: 10 }).first.ttftMs;
  assert.ok(Math.abs(fast - base / 10) < 1e-9);
  assert.equal(runOne(prompt(1000), { speedup: 0 }).first.ttftMs, 0);
});

test('decode steps follow the polynomial and a repeated prompt reports cached tokens', () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({ blockSize: 16 }, clock);
  const times: number[] = [];
  const res: EngineResult[] = [];
  const tokens = prompt(100);
  engine.submit({ requestId: 'a', tokens, maxTokens: 4, onToken: (_t, at) => times.push(at), onDone: (r) => res.push(r) });
  clock.runUntilIdle();
  assert.equal(times.length, 4);
  assert.ok(Math.abs(times[0]! - polyPrefill(100)) < 1e-9, `first token after the prefill alone: ${times[0]}`);
  // The pass that computes the 3rd token decodes a sequence of 100 + 2 tokens.
  const itl = times[2]! - times[1]!;
  assert.ok(Math.abs(itl - polyDecode(102 / (16384 * 16))) < 1e-9, `itl ${itl}`);
  assert.equal(res[0]!.cachedTokens, 0);
  assert.equal(res[0]!.outputTokens.length, 4);
  assert.ok(res[0]!.outputTokens.every((t) => t >= 1000 && t < 2000));

  const t0 = clock.now();
  engine.submit({ requestId: 'b', tokens, maxTokens: 1, onDone: (r) => res.push(r) });
  clock.runUntilIdle();
  assert.equal(res[1]!.cachedTokens, 96); // 6 full blocks of 16 out of 100 tokens
  assert.equal(res[1]!.cachedBlocks, 6);
  // Only 4 tokens are computed, in one prefill pass.
  assert.ok(Math.abs(res[1]!.ttftMs! - polyPrefill(4)) < 1e-9);
  assert.equal(res[1]!.arrivalMs, t0);
});

test('the first token ends the prefill pass: a lone TTFT does not depend on the decode speed', () => {
  const slow = runOne(prompt(3000), { decodeSpeedup: 0.05 }, 3);
  const fast = runOne(prompt(3000), {}, 3);
  assert.equal(slow.first.ttftMs, polyPrefill(3000));
  assert.equal(fast.first.ttftMs, polyPrefill(3000));
  // The two later tokens each take one (slow) decode pass.
  assert.ok(Math.abs(slow.done.finishMs - slow.first.timeMs - 20 * (polyDecode(3001 / 262144) + polyDecode(3002 / 262144))) < 1e-9);
});

test('a prompt that completes beside decoding requests gets its first token at the end of that pass', () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({ decodeSpeedup: 0.05 }, clock);
  const aTimes: number[] = [];
  let bFirst: FirstTokenInfo | undefined;
  engine.submit({ requestId: 'a', tokens: prompt(32, 1), maxTokens: 8, onToken: (_t, at) => aTimes.push(at) });
  clock.runUntil(polyPrefill(32)); // a's prefill pass is over: a decodes from now on
  assert.equal(aTimes.length, 1);
  engine.submit({ requestId: 'b', tokens: prompt(3000, 50_000), maxTokens: 1, onFirstToken: (f) => (bFirst = f) });
  clock.runUntilIdle();
  // b waits for a's decode pass in flight (33 tokens), then shares a pass: b's prefill plus the
  // decode of a alone (34 tokens; b's prompt is not decoding). Both tokens end that pass.
  const decodeA = (len: number) => polyDecode(len / 262144) / 0.05;
  const passStart = polyPrefill(32) + decodeA(33);
  assert.ok(Math.abs(bFirst!.timeMs - (passStart + polyPrefill(3000) + decodeA(34))) < 1e-9, `b first ${bFirst!.timeMs}`);
  assert.equal(aTimes[2], bFirst!.timeMs);
});

test("decode time grows with the decoding requests' summed lengths, a shared prefix counted per request", () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({}, clock);
  const shared = prompt(8000, 7);
  engine.submit({ requestId: 'warm', tokens: [...shared, 1, 2, 3], maxTokens: 1 });
  clock.runUntilIdle();
  const times: Record<string, number[]> = { a: [], b: [] };
  for (const id of ['a', 'b'] as const)
    engine.submit({
      requestId: id,
      tokens: [...shared, id === 'a' ? 11 : 21, 12, 13],
      maxTokens: 4,
      onToken: (_t, at) => times[id]!.push(at),
    });
  clock.runUntilIdle();
  // Both prompts (8,003 tokens, 8,000 cached) prefill in one pass; then both decode together.
  assert.equal(times.a![0], times.b![0]);
  const itl = times.a![2]! - times.a![1]!;
  assert.ok(Math.abs(itl - polyDecode((2 * 8005) / 262144)) < 1e-9, `itl ${itl} vs two sequences of 8,005 tokens`);
});

test('a fully cached prompt still computes its last block: cached tokens stop one token short', () => {
  const cachedOf = (n: number) => {
    const clock = new VirtualClock();
    const engine = new SimEngine({}, clock);
    const res: EngineResult[] = [];
    for (const id of ['x', 'y']) {
      engine.submit({ requestId: id, tokens: prompt(n, 3), maxTokens: 1, onDone: (r) => res.push(r) });
      clock.runUntilIdle();
    }
    return [res[1]!.cachedTokens, Math.round(res[1]!.ttftMs! * 1e6) / 1e6];
  };
  const r6 = (x: number) => Math.round(x * 1e6) / 1e6;
  assert.deepEqual(cachedOf(4096), [4080, r6(polyPrefill(16))]);
  assert.deepEqual(cachedOf(4097), [4096, r6(polyPrefill(1))]);
  assert.deepEqual(cachedOf(32), [16, r6(polyPrefill(16))]);
  assert.deepEqual(cachedOf(15), [0, r6(polyPrefill(15))]);
});

test('chunked prefill: a long prompt is split by max_num_batched_tokens and decodes keep running', () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({ maxNumBatchedTokens: 512 }, clock);
  const tokTimes: number[] = [];
  let longFirst = 0;
  engine.submit({ requestId: 'short', tokens: prompt(10, 1), maxTokens: 10, onToken: (_t, at) => tokTimes.push(at) });
  clock.runUntil(0);
  engine.submit({ requestId: 'long', tokens: prompt(2000, 90_000), maxTokens: 1, onFirstToken: (f) => (longFirst = f.ttftMs) });
  clock.runUntilIdle();
  assert.equal(tokTimes.length, 10);
  // The short request keeps decoding while the long prompt prefills 511/512 tokens a pass.
  assert.ok(tokTimes[3]! < longFirst, 'decode interleaves with the chunked prefill');
  assert.ok(engine.stats().promptTokens === 2010);
  assert.ok(engine.stats().passes >= 4);
});

test('max_num_seqs bounds the running batch; the rest waits FCFS', () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({ maxNumSeqs: 2 }, clock);
  const order: string[] = [];
  for (const id of ['a', 'b', 'c', 'd'])
    engine.submit({ requestId: id, tokens: prompt(20, id.charCodeAt(0) * 100), maxTokens: 3, onDone: (r) => order.push(r.requestId) });
  clock.runUntil(0);
  clock.step();
  assert.equal(engine.stats().running, 2);
  assert.equal(engine.stats().waiting, 2);
  clock.runUntilIdle();
  assert.deepEqual(order, ['a', 'b', 'c', 'd']);
});

test('preemption (LIFO): when blocks run out the newest running request loses its blocks and restarts', () => {
  const clock = new VirtualClock();
  // 10 blocks of 4 tokens. Two requests of 12 prompt tokens each need 3 blocks + growth.
  const engine = new SimEngine({ blockSize: 4, numGpuBlocks: 10, preemptionMode: 'lifo' }, clock);
  const done: EngineResult[] = [];
  engine.submit({ requestId: 'old', tokens: prompt(12, 1), maxTokens: 20, onDone: (r) => done.push(r) });
  engine.submit({ requestId: 'new', tokens: prompt(12, 500), maxTokens: 20, onDone: (r) => done.push(r) });
  clock.runUntilIdle();
  assert.equal(done.length, 2);
  const byId = Object.fromEntries(done.map((r) => [r.requestId, r]));
  assert.ok(byId.new!.preemptions > 0, 'the newest request was preempted');
  assert.equal(byId.old!.preemptions, 0);
  assert.equal(byId.new!.completionTokens, 20);
  assert.ok(engine.stats().preemptions > 0);
  assert.equal(engine.stats().usedBlocks, 0);
});

test('preemption (FIFO) preempts the oldest running request instead', () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({ blockSize: 4, numGpuBlocks: 10, preemptionMode: 'fifo' }, clock);
  const done: EngineResult[] = [];
  engine.submit({ requestId: 'old', tokens: prompt(12, 1), maxTokens: 20, onDone: (r) => done.push(r) });
  engine.submit({ requestId: 'new', tokens: prompt(12, 500), maxTokens: 20, onDone: (r) => done.push(r) });
  clock.runUntilIdle();
  const byId = Object.fromEntries(done.map((r) => [r.requestId, r]));
  assert.ok(byId.old!.preemptions > 0, 'the oldest request was preempted');
  assert.equal(byId.old!.completionTokens, 20);
  assert.equal(byId.new!.completionTokens, 20);
});

test('abort frees the blocks of a running request and reports it once', () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({ blockSize: 16 }, clock);
  const done: EngineResult[] = [];
  engine.submit({ requestId: 'a', tokens: prompt(100), maxTokens: 1000, onDone: (r) => done.push(r) });
  clock.runUntil(200);
  assert.ok(engine.stats().usedBlocks > 0);
  assert.equal(engine.abort('a'), true);
  assert.equal(engine.abort('a'), false);
  assert.equal(engine.stats().usedBlocks, 0);
  clock.runUntilIdle();
  assert.equal(done.length, 1);
  assert.equal(done[0]!.status, 'aborted');
  assert.ok(done[0]!.completionTokens > 0 && done[0]!.completionTokens < 1000);
});

test('requests that can never fit are rejected up front', () => {
  const engine = new SimEngine({ blockSize: 4, numGpuBlocks: 4 }, new VirtualClock());
  assert.throws(() => engine.submit({ requestId: 'x', tokens: prompt(10), maxTokens: 10 }), SimRequestError);
  assert.throws(() => engine.submit({ requestId: 'y', tokens: [], maxTokens: 1 }), SimRequestError);
  assert.throws(() => engine.submit({ requestId: 'z', tokens: [1], maxTokens: 0 }), SimRequestError);
});

test('the same scheduler runs on the real clock (sleeps until pass end)', async () => {
  const engine = new SimEngine({ speedup: 2 }, new RealClock());
  const t0 = performance.now();
  const res = await new Promise<EngineResult>((resolve) =>
    engine.submit({ requestId: 'a', tokens: prompt(1000), maxTokens: 3, onDone: resolve }),
  );
  const elapsed = performance.now() - t0;
  // The pass that completes the prompt emits the first token; the other two are decode passes.
  const model = (polyPrefill(1000) + 2 * polyDecode(63 / 16384)) / 2;
  assert.equal(res.completionTokens, 3);
  assert.ok(elapsed >= model * 0.9, `elapsed ${elapsed} ms >= model ${model} ms`);
  // Only a gross bound above (a unit slip would be 1000x): a loaded machine wakes timers late.
  assert.ok(elapsed < model + 2000, `elapsed ${elapsed} ms not far above ${model} ms`);
  engine.close();
});

test('VirtualClock runs callbacks in time order (ties in insertion order) without sleeping', () => {
  const c = new VirtualClock();
  const seen: string[] = [];
  c.schedule(5, () => seen.push('b'));
  c.schedule(1, () => seen.push('a'));
  const cancel = c.schedule(3, () => seen.push('x'));
  c.schedule(5, () => seen.push('c'));
  cancel();
  const t0 = performance.now();
  c.schedule(1e9, () => seen.push('late'));
  assert.equal(c.runUntilIdle(), 1e9);
  assert.ok(performance.now() - t0 < 100);
  assert.deepEqual(seen, ['a', 'b', 'c', 'late']);
});

test('without chunked prefill a prompt waits until it fits the token budget whole', () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({ maxNumBatchedTokens: 100, enableChunkedPrefill: false }, clock);
  const first: Record<string, number> = {};
  engine.submit({ requestId: 'a', tokens: prompt(60, 1), maxTokens: 2, onFirstToken: (f) => (first.a = f.timeMs) });
  engine.submit({ requestId: 'b', tokens: prompt(60, 900), maxTokens: 2, onFirstToken: (f) => (first.b = f.timeMs) });
  clock.runUntilIdle();
  // b does not fit next to a in the first pass (60 + 60 > 100), so it is not split: it runs in pass 2.
  assert.ok(Math.abs(first.a! - polyPrefill(60)) < 1e-9, `a ${first.a}`);
  assert.ok(first.b! > first.a!);
  assert.throws(() => engine.submit({ requestId: 'c', tokens: prompt(101), maxTokens: 1 }), SimRequestError);
});

test('with prefix caching off nothing is reused and freed blocks are removed at once', () => {
  const clock = new VirtualClock();
  const engine = new SimEngine({ enablePrefixCaching: false }, clock);
  const kinds: string[] = [];
  engine.onKvEvent((e) => kinds.push(e.data.type));
  const done: EngineResult[] = [];
  for (const id of ['a', 'b']) {
    engine.submit({ requestId: id, tokens: prompt(64), maxTokens: 1, onDone: (r) => done.push(r) });
    clock.runUntilIdle();
  }
  assert.deepEqual(
    done.map((r) => r.cachedTokens),
    [0, 0],
  );
  assert.deepEqual(kinds, ['stored', 'removed', 'stored', 'removed']);
  assert.equal(engine.cachedBlockCount(), 0);
});
