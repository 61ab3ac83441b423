/**
 * kv-ttft in the virtual-time replay: on a prefix-heavy load where Dynamo's kv sends cached
 * continuations to idle workers (it books a cached worker's in-flight blocks as decode cost),
 * the predicted-TTFT policy keeps more hits and a lower TTFT, deterministically.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateWorkload } from '../../src/bench/generators.js';
import { summarize } from '../../src/bench/stats.js';
import { runVirtual } from '../../src/bench/virtual.js';

const SPEC = 'prefix-ratio:ratio=0.9,isl=14000,osl=200,groups=20,requests=120,rate=8';

test('kv-ttft beats kv on a prefix-ratio 0.9 load (hit rate and TTFT), and is deterministic', async () => {
  const w = generateWorkload(SPEC, 0);
  const opts = { workers: 8, seed: 0 } as const;
  const kv = summarize((await runVirtual(w, { ...opts, mode: 'kv' })).records).result;
  const a = await runVirtual(w, { ...opts, mode: 'kv-ttft' });
  const ttft = summarize(a.records).result;
  assert.equal(kv.errors, 0);
  assert.equal(ttft.errors, 0);
  assert.ok(ttft.prefix_hit_rate > kv.prefix_hit_rate + 0.03, `hit rate kv-ttft ${ttft.prefix_hit_rate} vs kv ${kv.prefix_hit_rate}`);
  assert.ok(ttft.ttft_ms.avg < 0.9 * kv.ttft_ms.avg, `TTFT avg kv-ttft ${ttft.ttft_ms.avg} vs kv ${kv.ttft_ms.avg}`);
  // The policy learned from the TTFTs fed back: its predictions on the chosen workers track them.
  let err = 0;
  let n = 0;
  for (const r of a.records) {
    if (r.predictedTtftMs === undefined || r.ttftMs === undefined) continue;
    err += Math.abs(r.predictedTtftMs - r.ttftMs);
    n++;
  }
  assert.equal(n, w.requests.length);
  assert.ok(err / n < 0.25 * ttft.ttft_ms.avg, `mean abs prediction error ${err / n} ms vs TTFT avg ${ttft.ttft_ms.avg}`);
  const b = await runVirtual(w, { ...opts, mode: 'kv-ttft' });
  assert.deepEqual(
    b.records.map((r) => [r.worker, r.ttftMs]),
    a.records.map((r) => [r.worker, r.ttftMs]),
  );
});
