/**
 * Bench workloads: the Mooncake loader's validation, deterministic prompt synthesis, hashing
 * memoised per prefix equals hashing the tokens, the oracle (36.64 % inherent reuse of the
 * real conversation trace with an infinite cache), and the generators.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeBlockHashPairs, computeSequenceHashPairs } from '../../src/router/hashing.js';
import { generateWorkload, parseSpec, SpecError } from '../../src/bench/generators.js';
import { DenseLru, engineOracle, segmentOracle } from '../../src/bench/oracle.js';
import { PromptHasher } from '../../src/bench/prompt-hashes.js';
import { tempDir } from '../helpers/temp.js';
import { fillSegment, promptTokenArray, promptTokens, TOKEN_ID_MIN, TOKEN_ID_SPAN } from '../../src/bench/synth.js';
import type { Segment } from '../../src/bench/workload.js';

/** The tokens of one segment. */
function segmentTokens(seed: number, seg: Segment): Uint32Array {
  const out = new Uint32Array(seg.len);
  fillSegment(seed, seg.id, seg.len, out, 0);
  return out;
}
import { loadMooncakeTrace, parseMooncakeTrace, TraceError } from '../../src/bench/trace.js';
import { summarizeWorkload } from '../../src/bench/workload.js';

// From test/bench (tsx) or dist/test/bench (built): the repository's sibling shared/ folder.
const TRACE = fileURLToPath(
  new URL(
    `${import.meta.url.includes('/dist/test/') ? '../../../../' : '../../../'}shared/data/traces/conversation_trace.jsonl`,
    import.meta.url,
  ),
);

const line = (o: Record<string, unknown>) => JSON.stringify(o);

test('loader: valid lines, partial last block, blank lines skipped', () => {
  const w = parseMooncakeTrace(
    [
      line({ timestamp: 0, input_length: 1000, output_length: 5, hash_ids: [0, 1] }),
      '',
      line({ timestamp: 3000, input_length: 512, output_length: 1, hash_ids: [0] }),
    ].join('\n'),
  );
  assert.equal(w.requests.length, 2);
  assert.deepEqual(w.requests[0]!.segments, [
    { id: 0, len: 512 },
    { id: 1, len: 488 },
  ]);
  assert.equal(w.requests[1]!.arrivalMs, 3000);
  assert.equal(w.requests[1]!.line, 3);
});

test('loader: errors name the line and say what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['{"timestamp": 0, "input_length": 10', /line 2: not valid JSON/],
    [line({ timestamp: 0, input_length: 0, output_length: 1, hash_ids: [1] }), /line 2: "input_length" must be an integer >= 1/],
    [line({ timestamp: 0, input_length: 10, output_length: 1.5, hash_ids: [1] }), /line 2: "output_length"/],
    [
      line({ timestamp: 0, input_length: 2000, output_length: 1, hash_ids: [1, 2] }),
      /line 2: input_length 2000 does not fit 2 hash ids of 512 tokens/,
    ],
    [line({ timestamp: 0, input_length: 10, output_length: 1, hash_ids: [-1] }), /line 2: hash_ids\[0\] must be a non-negative integer/],
    [line({ timestamp: -5, input_length: 10, output_length: 1, hash_ids: [1] }), /line 2: "timestamp"/],
    [line({ input_length: 10, output_length: 1, hash_ids: [1] }), /line 2: needs a "timestamp"/],
    [line({ timestamp: 0, input_length: 10, output_length: 1, hash_ids: [1], foo: 1 }), /line 2: unknown field "foo"/],
    ['[1,2]', /line 2: expected a JSON object/],
  ];
  const good = line({ timestamp: 0, input_length: 10, output_length: 1, hash_ids: [7] });
  for (const [bad, re] of cases) {
    assert.throws(
      () => parseMooncakeTrace(`${good}\n${bad}\n`, { name: 't.jsonl' }),
      (e: unknown) => e instanceof TraceError && re.test(e.message) && e.message.startsWith('t.jsonl line 2') && e.line === 2,
      bad,
    );
  }
  assert.throws(() => parseMooncakeTrace('\n\n'), /no requests/);
});

test('loader: sessions with delay, and lines without hash_ids get unique blocks', async () => {
  const dir = tempDir('bench-trace-');
  const p = join(dir, 's.jsonl');
  writeFileSync(
    p,
    [
      line({ session_id: 'a', timestamp: 10, input_length: 600, output_length: 3, hash_ids: [5, 6] }),
      line({ session_id: 'a', delay: 250, input_length: 1100, output_length: 3, hash_ids: [5, 6, 9] }),
      line({ timestamp: 20, input_length: 700, output_length: 2 }),
    ].join('\n'),
  );
  const w = await loadMooncakeTrace(p);
  assert.equal(w.requests[1]!.delayMs, 250);
  assert.equal(w.requests[1]!.sessionId, 'a');
  assert.deepEqual(w.requests[2]!.segments, [
    { id: 10, len: 512 },
    { id: 11, len: 188 },
  ]);
  await assert.rejects(loadMooncakeTrace(join(dir, 'missing.jsonl')), /does not exist/);
});

test('synthesis: equal hash ids give equal token blocks, different ids different blocks, deterministic per seed', () => {
  const a = segmentTokens(0, { id: 42, len: 512 });
  const b = segmentTokens(0, { id: 42, len: 512 });
  const c = segmentTokens(0, { id: 43, len: 512 });
  const d = segmentTokens(1, { id: 42, len: 512 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.notDeepEqual(a, d);
  for (const t of a) assert.ok(t >= TOKEN_ID_MIN && t < TOKEN_ID_MIN + TOKEN_ID_SPAN);
  // A partial use of an id is a prefix of the full block.
  assert.deepEqual(segmentTokens(0, { id: 42, len: 100 }), a.subarray(0, 100));
  // Two requests sharing their first ids share exactly that many tokens, and their engine blocks.
  const r1 = {
    segments: [
      { id: 0, len: 512 },
      { id: 1, len: 512 },
      { id: 2, len: 300 },
    ],
    inputLength: 1324,
  };
  const r2 = {
    segments: [
      { id: 0, len: 512 },
      { id: 1, len: 512 },
      { id: 7, len: 512 },
    ],
    inputLength: 1536,
  };
  const t1 = promptTokens(0, r1);
  const t2 = promptTokens(0, r2);
  assert.deepEqual(t1.subarray(0, 1024), t2.subarray(0, 1024));
  assert.notDeepEqual(t1.subarray(1024, 1088), t2.subarray(1024, 1088));
  assert.deepEqual(promptTokenArray(0, r1), Array.from(t1));
  const h1 = computeBlockHashPairs(t1, 64);
  const h2 = computeBlockHashPairs(t2, 64);
  // one hash id = 8 engine blocks of 64 tokens
  assert.deepEqual(h1.subarray(0, 32), h2.subarray(0, 32));
  assert.notDeepEqual(h1.subarray(32, 34), h2.subarray(32, 34));
});

test('PromptHasher gives exactly the hashes of the tokens (aligned, partial, misaligned segments)', () => {
  const hasher = new PromptHasher(3, 64, 512);
  const reqs = [
    {
      segments: [
        { id: 0, len: 512 },
        { id: 1, len: 512 },
        { id: 2, len: 300 },
      ],
      inputLength: 1324,
    },
    {
      segments: [
        { id: 0, len: 512 },
        { id: 1, len: 200 },
      ],
      inputLength: 712,
    }, // id 1 shorter after the same prefix
    {
      segments: [
        { id: 0, len: 512 },
        { id: 1, len: 512 },
        { id: 2, len: 512 },
      ],
      inputLength: 1536,
    },
    {
      segments: [
        { id: 5, len: 100 },
        { id: 6, len: 512 },
        { id: 7, len: 90 },
      ],
      inputLength: 702,
    }, // misaligned after the first
    { segments: [{ id: 9, len: 30 }], inputLength: 30 },
  ];
  for (const r of reqs) {
    const b = hasher.blocks(r);
    const tokens = promptTokens(3, r);
    const local = computeBlockHashPairs(tokens, 64);
    assert.deepEqual(b.localPairs, local);
    assert.deepEqual(b.seqPairs, computeSequenceHashPairs(local));
    assert.equal(b.n, Math.floor(r.inputLength / 64));
  }
  // Equal blocks get equal oracle ids, also across a shorter use of the same segment.
  const k0 = hasher.blocks(reqs[0]!).keys;
  const k1 = hasher.blocks(reqs[1]!).keys;
  const k2 = hasher.blocks(reqs[2]!).keys;
  assert.deepEqual(k1, k0.subarray(0, k1.length));
  assert.deepEqual(k2.subarray(0, k0.length), k0);
});

test('DenseLru evicts the least recently touched id', () => {
  const l = new DenseLru(2);
  l.touch(1);
  l.touch(2);
  l.touch(1);
  l.touch(3);
  assert.ok(l.has(1) && l.has(3) && !l.has(2));
  assert.equal(l.size, 2);
});

test('oracle: infinite cache reproduces the conversation trace inherent reuse of 36.64 %', {
  skip: !existsSync(TRACE) && 'conversation trace not found',
}, async () => {
  const w = await loadMooncakeTrace(TRACE);
  assert.equal(w.requests.length, 12031);
  const inf = segmentOracle(w);
  assert.equal(inf.cached_blocks, 105710);
  assert.equal(inf.prompt_blocks, 288500);
  assert.equal(inf.block_hit_rate.toFixed(4), '0.3664');
  assert.equal(summarizeWorkload(w).inherent_reuse.toFixed(4), '0.3664');
  // All workers' capacity (8 x 16384 x 64 tokens = 8 x 1M tokens) as one LRU: about 26.6 %.
  const eightM = segmentOracle(w, (8 * 16384 * 64) / 512);
  assert.ok(Math.abs(eightM.block_hit_rate - 0.266) < 0.005, `8 x 1M tokens: ${eightM.block_hit_rate}`);
});

test('oracle in engine blocks: infinite >= finite, tiny capacity ~ 0, hand-checked example', () => {
  const w = parseMooncakeTrace(
    [
      line({ timestamp: 0, input_length: 1024, output_length: 1, hash_ids: [0, 1] }),
      line({ timestamp: 1, input_length: 1024, output_length: 1, hash_ids: [0, 2] }),
      line({ timestamp: 2, input_length: 1024, output_length: 1, hash_ids: [0, 1] }),
    ].join('\n'),
  );
  const h = new PromptHasher(0, 64, 512);
  const inf = engineOracle(w, h, Infinity);
  // request 2: 8 of 16 blocks cached; request 3: all 16
  assert.equal(inf.cached_blocks, 24);
  assert.equal(inf.prompt_blocks, 48);
  assert.equal(inf.hit_rate, 0.5);
  // Capacity 16 blocks: request 2 evicts request 1's tail, so request 3 only finds block 0's 8.
  assert.equal(engineOracle(w, h, 16).cached_blocks, 16);
  assert.equal(segmentOracle(w).block_hit_rate, 3 / 6);
});

test('generators: seeded, prefix structure as specified, spec errors', () => {
  const a = generateWorkload('shared-prefix:groups=4,prompts=5,system=1024,question=128,output=16,rate=10', 7);
  const b = generateWorkload('shared-prefix:groups=4,prompts=5,system=1024,question=128,output=16,rate=10', 7);
  assert.deepEqual(a, b);
  assert.notDeepEqual(
    generateWorkload('shared-prefix:groups=4,prompts=5', 8).requests,
    generateWorkload('shared-prefix:groups=4,prompts=5', 7).requests,
  );
  assert.equal(a.requests.length, 20);
  const firsts = new Set(a.requests.map((r) => r.segments[0]!.id));
  assert.equal(firsts.size, 4);
  for (const r of a.requests) assert.equal(r.inputLength, 1152);
  for (let i = 1; i < a.requests.length; i++) assert.ok(a.requests[i]!.arrivalMs >= a.requests[i - 1]!.arrivalMs);

  const pr = generateWorkload('prefix-ratio:ratio=0.5,isl=2000,requests=50,groups=5', 1);
  assert.equal(pr.requests.length, 50);
  for (const r of pr.requests)
    assert.equal(
      r.segments.slice(0, 2).reduce((s, x) => s + x.len, 0),
      1000,
    );

  const mt = generateWorkload('multi-turn:sessions=3,turns=3,system=512,user=64,output=64,delay=100', 2);
  assert.equal(mt.requests.length, 9);
  const s0 = mt.requests.filter((r) => r.sessionId === 'session-0');
  assert.equal(s0.length, 3);
  assert.equal(s0[1]!.delayMs, 100);
  // Turn 2 extends turn 1's prompt (plus its reply).
  assert.deepEqual(s0[1]!.segments.slice(0, s0[0]!.segments.length), s0[0]!.segments);
  assert.equal(s0[1]!.inputLength, s0[0]!.inputLength + 64 + 64);

  assert.throws(() => parseSpec('nope'), SpecError);
  assert.throws(() => parseSpec('shared-prefix:groups=0'), /whole number >= 1/);
  assert.throws(() => parseSpec('shared-prefix:colour=3'), /no parameter "colour"/);
  assert.throws(() => parseSpec('prefix-ratio:ratio=1.5'), /\[0, 1\)/);
});
