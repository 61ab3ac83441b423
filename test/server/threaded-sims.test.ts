/**
 * `router --sim N` runs the simulated engines on worker threads: KV events still reach the
 * router's indexer in-process (posted across the thread boundary), and the router hands the
 * prompt's token ids over so the worker does not tokenize the text again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { RouterServer } from '../../src/server/router-server.js';
import { ThreadedSimWorker } from '../../src/sim/threads.js';
import { fromWire, toWire } from '../../src/sim/thread-events.js';
import { fromPairs, type RouterEvent } from '../../src/router/index.js';
import { loadChatTokenizer } from '../../src/tokenizer/index.js';
import { cachedBlocks, chat, SYSTEM_PROMPT, waitFor } from './helpers.js';

let sims: ThreadedSimWorker[] = [];
let router: RouterServer;

before(async () => {
  const tok = await loadChatTokenizer();
  const ids = Array.from({ length: 1000 }, (_, i) => 1000 + i);
  await tok.warmTokenTexts(ids);
  const tokenTexts = new Map(ids.map((id) => [id, tok.tokenText(id)]));
  sims = await Promise.all(
    [0, 1].map((i) => ThreadedSimWorker.start({ id: `worker-${i}`, blockSize: 16, port: 0, speedup: 0, tokenTexts })),
  );
  router = await RouterServer.start({
    workers: sims.map((w) => ({
      id: w.id,
      url: w.url,
      onKvEvent: (l) => w.onKvEvent(l),
      provideTokens: (id, t) => w.provideTokens(id, t),
      totalKvBlocks: w.numGpuBlocks,
    })),
    blockSize: 16,
    port: 0,
    events: 'inproc',
    health: false,
  });
});

after(async () => {
  await router?.close();
  await Promise.all(sims.map((w) => w.close()));
});

test('KV events cross the thread boundary into the indexer; the second request is routed to the cache', async () => {
  const first = await chat(router.url, 'Which trains run on Sundays?', { system: SYSTEM_PROMPT });
  assert.equal(first.status, 200);
  const w1 = first.headers.get('x-dynamo-lab-worker')!;
  await waitFor(() => cachedBlocks(router, w1) > 0, 'KV events from the worker thread');
  const second = await chat(router.url, 'And on holidays?', { system: SYSTEM_PROMPT });
  assert.equal(second.status, 200);
  assert.equal(second.headers.get('x-dynamo-lab-worker'), w1, 'routed to the worker holding the shared prefix');
  assert.ok(Number(second.headers.get('x-dynamo-lab-overlap-blocks')) > 0, 'the router predicted a prefix hit');
});

test('Stored events cross the boundary as u32 pairs and keep every hash', async () => {
  // The wire form through a structured clone (what postMessage does), both ways.
  const ev: RouterEvent = {
    workerId: 'w',
    dpRank: 1,
    eventId: 7,
    data: {
      type: 'stored',
      parentHash: 0xffff_ffff_0000_0001n,
      blocks: [
        { blockHash: 0x8000_0000_0000_0000n, tokensHash: 1n },
        { blockHash: 2n ** 64n - 1n, tokensHash: 0x1234_5678_9abc_def0n },
      ],
    },
  };
  const back = fromWire(structuredClone(toWire(ev)));
  assert.equal(back.workerId, 'w');
  assert.equal(back.dpRank, 1);
  assert.equal(back.eventId, 7);
  assert.equal(back.data.type, 'stored');
  if (back.data.type !== 'stored' || ev.data.type !== 'stored') return;
  assert.equal(back.data.parentHash, ev.data.parentHash);
  assert.ok(back.data.pairs, 'arrives with its pairs');
  assert.deepEqual(
    back.data.blocks.map((b) => [b.blockHash, b.tokensHash]),
    ev.data.blocks.map((b) => [b.blockHash, b.tokensHash]),
  );
  const removed: RouterEvent = { workerId: 'w', dpRank: 0, eventId: 8, data: { type: 'removed', blockHashes: [5n] } };
  assert.deepEqual(fromWire(structuredClone(toWire(removed))), removed);
  // And from a real worker thread: the events the router receives carry pairs.
  const seen: RouterEvent[] = [];
  const offs = sims.map((w) => w.onKvEvent((e) => seen.push(e)));
  try {
    const before = seen.length;
    const r = await chat(router.url, 'Pairs across threads?', { system: `A fresh prefix, ${'not cached anywhere yet. '.repeat(8)}` });
    assert.equal(r.status, 200);
    await waitFor(() => seen.slice(before).some((e) => e.data.type === 'stored'), 'a Stored event from the thread');
    for (const e of seen) {
      if (e.data.type !== 'stored') continue;
      assert.ok(e.data.pairs, 'Stored events from a thread carry pairs');
      assert.equal(e.data.pairs.block.length, e.data.blocks.length * 2);
      assert.deepEqual(
        fromPairs(e.data.pairs.block),
        e.data.blocks.map((b) => b.blockHash),
      );
    }
  } finally {
    for (const off of offs) off();
  }
});

test("the worker takes the router's token ids and does not tokenize the prompt again", async () => {
  const before = await Promise.all(
    sims.map(async (w) => (await (await fetch(`${w.url}/debug/sim`)).json()) as { promptsHandedOver: number; promptsTokenized: number }),
  );
  const r = await chat(router.url, 'Tokenize me once, please.', { stream: true, maxTokens: 3 });
  assert.equal(r.status, 200);
  await r.text();
  const after = await Promise.all(
    sims.map(async (w) => (await (await fetch(`${w.url}/debug/sim`)).json()) as { promptsHandedOver: number; promptsTokenized: number }),
  );
  const handed = after.reduce((a, s, i) => a + s.promptsHandedOver - before[i]!.promptsHandedOver, 0);
  const tokenized = after.reduce((a, s, i) => a + s.promptsTokenized - before[i]!.promptsTokenized, 0);
  assert.equal(handed, 1);
  assert.equal(tokenized, 0);
  // The same worker, asked directly with text, tokenizes natively (loaded on demand in its thread).
  const direct = await chat(sims[0]!.url, 'Direct text request.');
  assert.equal(direct.status, 200);
  const s0 = (await (await fetch(`${sims[0]!.url}/debug/sim`)).json()) as { promptsTokenized: number };
  assert.equal(s0.promptsTokenized, after[0]!.promptsTokenized + 1);
});

test('on Linux the engine threads run at nice 19, so the router thread wins the CPU whenever both are runnable', {
  skip: process.platform !== 'linux',
}, () => {
  const nice = (tid: string) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]); // field 19: nice
  };
  const nices = readdirSync('/proc/self/task').map(nice);
  assert.equal(nices.filter((n) => n === 19).length, sims.length, `one nice-19 thread per engine (thread nices: ${nices.join(' ')})`);
  assert.ok(nice(String(process.pid)) < 19, 'the main thread keeps its priority');
});
