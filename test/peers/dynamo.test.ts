/**
 * The real Dynamo 1.6.1 from the peers venv (scripts/peers): runs only when the venv exists
 * (`npm run bench:peers` creates it); DYNAMO_LAB_REQUIRE_DYNAMO=1 turns a missing venv into a
 * failure. Off in CI (no Python packages there).
 *
 * - The model directory makes Dynamo's tokenizer and chat template produce exactly the token
 *   ids dynamo-lab's tokenizer produces.
 * - Dynamo's frontend + mocker come up on loopback only (every socket checked with ss), route a
 *   shared-prefix series to the worker holding the prefix (the frontend's `Selected worker` log
 *   line and nvext worker_id agree), and report the cached tokens.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { $ } from 'zx';
import OpenAI from 'openai';
import { cliArgv, getJson, startDaemon, stopDaemon, waitFor } from '../../scripts/peers/common.js';
import { checkLoopback, describeOffenders } from '../../scripts/peers/loopback.js';
import { buildModelDir, type ModelDir } from '../../scripts/peers/model.js';
import { startDynamo, SYSTEMS, type Running } from '../../scripts/peers/systems.js';
import { ensureVenv, type Venv } from '../../scripts/peers/venv.js';
import { loadChatTokenizer, tokenizeChat } from '../../src/tokenizer/index.js';
import { stripVTControlCharacters } from 'node:util';

let venv: Venv | undefined;
let skip: string | false = false;
try {
  venv = await ensureVenv({ create: false });
} catch (e) {
  if (process.env.DYNAMO_LAB_REQUIRE_DYNAMO === '1') throw new Error(`DYNAMO_LAB_REQUIRE_DYNAMO=1 but ${(e as Error).message}`);
  skip = `no peers venv (run npm run bench:peers once to create it): ${(e as Error).message.split('\n')[0]}`;
}
// DYNAMO_LAB_REQUIRE_DYNAMO=0 turns this tier off even where a venv exists (CI: a venv left on the
// machine by hand must not decide what CI runs).
if (process.env.DYNAMO_LAB_REQUIRE_DYNAMO === '0') skip = 'the real-Dynamo tier is off (DYNAMO_LAB_REQUIRE_DYNAMO=0)';

describe('real Dynamo 1.6.1 (peers venv)', { skip }, () => {
  let dir: string;
  let model: ModelDir;
  let dyn: Running | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-peers-'));
    model = await buildModelDir(dir);
  });
  after(async () => {
    await dyn?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("tokenizes chat exactly like dynamo-lab's tokenizer", async () => {
    const conversations = [
      [{ role: 'user', content: "Explain quantum computing in simple terms. It's fine if it's long." }],
      [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Hi!\n\nWhat is 2+2?' },
        { role: 'assistant', content: '4' },
        { role: 'user', content: 'and ünïcödé – “quotes”?' },
      ],
    ];
    const code = [
      'import json, sys',
      'from transformers import AutoTokenizer',
      't = AutoTokenizer.from_pretrained(sys.argv[1])',
      'for conv in json.loads(sys.argv[2]):',
      '    ids = t.apply_chat_template(conv, add_generation_prompt=True, tokenize=True)',
      '    ids = ids if isinstance(ids, list) else ids["input_ids"]',
      '    print(json.dumps(ids))',
    ].join('\n');
    const out = await $({
      env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
    })`${venv!.python} -c ${code} ${model.path} ${JSON.stringify(conversations)}`;
    const theirs = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as number[]);
    for (let i = 0; i < conversations.length; i++) assert.deepEqual(theirs[i], await tokenizeChat(conversations[i]!), `conversation ${i}`);
  });

  it('serves on loopback only and routes a shared prefix to the worker that holds it', async () => {
    dyn = await startDynamo(SYSTEMS.find((s) => s.id === 'dynamo-kv')!, {
      venv: venv!,
      model,
      shape: { workers: 2, gpuBlocks: 1024, blockSize: 16, speedup: 0 },
      dir: join(dir, 'run'),
    });
    const loop = await checkLoopback(dyn.daemons.map((d) => d.proc.pid!));
    assert.ok(loop.ok, `sockets off loopback:\n${describeOffenders(loop)}`);
    assert.ok(loop.listening >= 2, `expected the frontend and the request plane listening, saw ${loop.listening}`);

    const client = new OpenAI({ baseURL: `${dyn.url}/v1`, apiKey: 'unused' });
    const prefix = 'You are reviewing a long design document about KV-aware routing. '.repeat(12);
    const workers: string[] = [];
    const cached: number[] = [];
    for (const q of ['Summarize it.', 'List the risks.', 'Who owns it?']) {
      const raw = await client.completions
        .create({
          model: model.name,
          prompt: prefix + q,
          max_tokens: 4,
          temperature: 0,
          nvext: { extra_fields: ['worker_id'] },
        } as unknown as OpenAI.CompletionCreateParamsNonStreaming)
        .asResponse();
      const text = await raw.text(); // instance ids exceed 2^53: read them as text
      const w = /"decode_worker_id":(\d+)/.exec(text)?.[1];
      assert.ok(w, `nvext.worker_id missing: ${text.slice(0, 200)}`);
      workers.push(w);
      cached.push(Number(/"cached_tokens":(\d+)/.exec(text)?.[1] ?? -1));
    }
    assert.equal(new Set(workers).size, 1, `the series should stay on one worker, went to ${workers.join(', ')}`);
    assert.equal(cached[0], 0);
    // The shared text prefix is this many whole 16-token blocks (the last one may merge with the question).
    const prefixBlocks = Math.floor((await (await loadChatTokenizer()).encode(prefix)).length / 16);
    assert.ok(prefixBlocks >= 8, `prefix too short for the test (${prefixBlocks} blocks)`);
    for (const c of cached.slice(1))
      assert.ok(c >= 16 * (prefixBlocks - 1), `later requests should reuse the ${prefixBlocks}-block prefix, cached ${cached.join(', ')}`);
    assert.ok(dyn.workerIds().includes(workers[0]!), `chosen ${workers[0]} not among the mocker's workers ${dyn.workerIds().join(', ')}`);
    const log = stripVTControlCharacters(dyn.daemons.find((d) => d.name === 'dynamo-frontend')!.output());
    const selected = [...log.matchAll(/Selected worker .*?worker_id=(\d+)/g)].map((m) => m[1]);
    assert.deepEqual(selected.slice(-3), workers, 'the frontend log names the same workers');
  });

  it("dynamo-lab's router indexes the real mocker workers' KV events from Dynamo's NATS event plane", async () => {
    assert.ok(dyn?.dynamo, 'needs the Dynamo of the previous test');
    const ids = dyn.workerIds();
    const router = startDaemon(
      'dynamo-lab-router',
      [
        ...cliArgv(),
        'router',
        ...ids.flatMap((id, i) => ['--worker', `id=w${i},url=${dyn!.url},worker_id=${id}`]),
        '--events',
        dyn.dynamo.natsUrl,
        '--nats-namespace',
        dyn.dynamo.namespace,
        '--nats-component',
        'backend',
        '--port',
        '0',
        '--json',
        '--health-interval',
        '0',
      ],
      { logDir: join(dir, 'run') },
    );
    try {
      const url = await waitFor(
        'dynamo-lab router',
        async () => {
          const l = router
            .output()
            .split('\n')
            .find((x) => x.startsWith('{'));
          return l ? (JSON.parse(l) as { url: string }).url : undefined;
        },
        { timeoutMs: 60_000, daemons: [router] },
      );
      await waitFor(
        'the router subscribed to NATS',
        async () => (((await getJson(`${url}/debug/workers`)) as { nats?: { connected?: boolean } }).nats?.connected ? true : undefined),
        { timeoutMs: 20_000, daemons: [router] },
      );
      // A new prefix, sent to Dynamo's frontend: the mocker worker it lands on stores blocks and publishes them.
      const text = await (
        await fetch(`${dyn.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: model.name,
            prompt: 'An unrelated note about river boats and their engines. '.repeat(8),
            max_tokens: 2,
            nvext: { extra_fields: ['worker_id'] },
          }),
        })
      ).text();
      const chosen = /"decode_worker_id":(\d+)/.exec(text)?.[1];
      assert.ok(chosen && ids.includes(chosen), `Dynamo chose ${chosen}`);
      const view = await waitFor(
        "the chosen worker's blocks in dynamo-lab's index",
        async () => {
          const v = (await getJson(`${url}/debug/workers`)) as { workers: Array<{ dynamo_worker_id?: string; cached_blocks: number }> };
          const w = v.workers.find((x) => x.dynamo_worker_id === chosen);
          return w && w.cached_blocks > 0 ? v : undefined;
        },
        { timeoutMs: 20_000, daemons: [router] },
      );
      for (const w of view.workers)
        if (w.dynamo_worker_id !== chosen)
          assert.ok(
            w.cached_blocks <= view.workers.find((x) => x.dynamo_worker_id === chosen)!.cached_blocks,
            'the other worker holds no more of it',
          );
    } finally {
      await stopDaemon(router);
    }
  });
});
