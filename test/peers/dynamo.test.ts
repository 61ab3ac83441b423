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
 * - dynamo-lab's router in place of Dynamo's, same mocker workers: the frontend runs with
 *   `--router-mode direct` and forwards to the worker each request names; `dynamo-lab router
 *   --dynamo-direct` indexes the mocker's KV events from NATS and chooses. Its decisions equal the
 *   workers that served (the frontend's log and the response's worker id) and its predicted cached
 *   tokens equal the mocker's reported ones.
 * - The `--router-policy-config` file `dynamo-lab deploy` mounts for 1.6+ starts the frontend,
 *   and its prefill_load_scale reaches the cost (the Selected worker logit); the first shape we
 *   shipped (an instance named "default") makes the frontend exit.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { $ } from 'zx';
import OpenAI from 'openai';
import { cliArgv, getJson, startDaemon, stopDaemon, waitFor } from '../../scripts/peers/common.js';
import { checkLoopback, describeOffenders } from '../../scripts/peers/loopback.js';
import { buildModelDir, type ModelDir } from '../../scripts/peers/model.js';
import { startDynamo, SYSTEMS, type Running } from '../../scripts/peers/systems.js';
import { loadChatTokenizer, tokenizeChat } from '../../src/tokenizer/index.js';
import { stripVTControlCharacters } from 'node:util';
import { stringify } from 'yaml';
import { routerPolicyConfig } from '../../src/cluster/releases.js';
import { peersVenv } from '../helpers/peers-venv.js';
import { withTmpdir } from '../helpers/temp.js';

const { venv, skip } = await peersVenv();

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

  it("dynamo-lab's router in place of Dynamo's: a frontend in --router-mode direct forwards to the worker the router chose", {
    timeout: 240_000,
  }, async () => {
    const direct = await startDynamo(
      { id: 'dynamo-direct', family: 'dynamo', policy: 'direct', label: 'Dynamo direct' },
      {
        venv: venv!,
        model,
        shape: { workers: 2, gpuBlocks: 1024, blockSize: 16, speedup: 1 },
        dir: join(dir, 'direct'),
      },
    );
    let router: ReturnType<typeof startDaemon> | undefined;
    try {
      const ids = direct.workerIds();
      assert.equal(ids.length, 2);
      router = startDaemon(
        'dynamo-lab-router-direct',
        [
          ...cliArgv(),
          'router',
          ...ids.flatMap((id, i) => ['--worker', `id=w${i},url=${direct.url},worker_id=${id}`]),
          '--dynamo-direct',
          '--events',
          direct.dynamo!.natsUrl,
          '--nats-namespace',
          direct.dynamo!.namespace,
          '--port',
          '0',
          '--json',
          '--health-interval',
          '0',
          '--seed',
          '1',
        ],
        { logDir: join(dir, 'direct') },
      );
      const url = await waitFor(
        'dynamo-lab router',
        async () => {
          const l = router!
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
      const loop = await checkLoopback([...direct.daemons, router].map((d) => d.proc.pid!));
      assert.ok(loop.ok, `sockets off loopback:\n${describeOffenders(loop)}`);

      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused' });
      const rows: Array<{ requestId: string; chose: string; served: string; cached: number }> = [];
      for (const prefix of [
        'A design review of the cache-aware router, section by section. '.repeat(10),
        'Notes on river boats. '.repeat(20),
      ]) {
        for (const q of ['Summarize it.', 'List the risks.', 'Who owns it?']) {
          const prompt = prefix + q;
          const raw = await client.completions
            .create({
              model: model.name,
              prompt,
              max_tokens: 4,
              nvext: { extra_fields: ['worker_id'] },
            } as unknown as OpenAI.CompletionCreateParamsNonStreaming)
            .asResponse();
          const text = await raw.text(); // instance ids exceed 2^53: read them as text
          const served = /"decode_worker_id":(\d+)/.exec(text)?.[1];
          assert.ok(served, `the frontend named no worker: ${text.slice(0, 300)}`);
          const chose = raw.headers.get('x-dynamo-lab-worker')!;
          rows.push({
            requestId: raw.headers.get('x-request-id')!,
            chose,
            served,
            cached: Number(/"cached_tokens":(\d+)/.exec(text)?.[1]),
          });
          // The next decision must see this request's blocks: wait until the router indexed them
          // from the mocker's KV events (they travel over NATS, not with the response).
          await waitFor(
            `the router indexed the prompt's blocks on ${chose}`,
            async () => {
              const r = await fetch(`${url}/debug/overlap`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ prompt }),
              });
              const o = (await r.json()) as { prompt_blocks: number; workers: Record<string, number> };
              return o.workers[chose] === o.prompt_blocks ? true : undefined;
            },
            { timeoutMs: 20_000, daemons: [router] },
          );
        }
      }
      // The router's choice is where the request went: the response's worker id and the frontend's log.
      for (const r of rows)
        assert.equal(r.served, ids[Number(r.chose.slice(1))], `request ${r.requestId}: router chose ${r.chose}, served by ${r.served}`);
      const log = stripVTControlCharacters(direct.daemons.find((d) => d.name === 'dynamo-frontend')!.output());
      for (const r of rows) {
        const uuid = r.requestId.replace(/^cmpl-/, '');
        const m = new RegExp(`Selected worker router_mode="direct" worker_id=(\\d+).*?x_request_id="${uuid}"`).exec(log);
        assert.ok(m, `no direct-mode Selected worker line for ${uuid}`);
        assert.equal(m[1], r.served);
      }
      // Each series stays on one worker, and the router predicted exactly the cached tokens the mocker reported.
      assert.equal(new Set(rows.slice(0, 3).map((r) => r.chose)).size, 1, rows.map((r) => r.chose).join(','));
      assert.equal(new Set(rows.slice(3).map((r) => r.chose)).size, 1, rows.map((r) => r.chose).join(','));
      const decisions = (
        (await getJson(`${url}/debug/decisions?limit=50`)) as {
          decisions: Array<{ request_id: string; chosen: string; cached_tokens: number; achieved_cached_tokens?: number }>;
        }
      ).decisions;
      for (const r of rows) {
        const d = decisions.find((x) => x.request_id === r.requestId);
        assert.ok(d, `decision ${r.requestId}`);
        assert.equal(d.chosen, r.chose);
        assert.equal(d.achieved_cached_tokens, r.cached);
        assert.equal(
          d.cached_tokens,
          r.cached,
          `request ${r.requestId}: predicted ${d.cached_tokens} cached tokens, the mocker reported ${r.cached}`,
        );
      }
      for (const i of [1, 2, 4, 5])
        assert.ok(rows[i]!.cached >= 16 * 5, `later requests reuse their prefix: ${rows.map((r) => r.cached).join(', ')}`);
      assert.deepEqual([rows[0]!.cached, rows[3]!.cached], [0, 0], 'first requests of a series find nothing cached');
    } finally {
      if (router) await stopDaemon(router);
      await direct.stop();
    }
  });
  it('the 1.6 policy file deploy renders is accepted by the real frontend and its knobs reach the cost', { timeout: 600_000 }, async () => {
    const spec = SYSTEMS.find((s) => s.id === 'dynamo-kv')!;
    const shape = { workers: 2, gpuBlocks: 1024, blockSize: 16, speedup: 0 };
    const prompt = 'Explain the history of the printing press in Europe, with dates and the people involved. '.repeat(4);
    const policyFile = (name: string, doc: unknown) => {
      const f = join(dir, `${name}.yaml`);
      writeFileSync(f, stringify(doc));
      return f;
    };
    // The first request on idle workers: its logit is the cost of the prompt on an empty worker.
    const logitWith = async (scale: number): Promise<number> => {
      const f = policyFile(`scale-${scale}`, routerPolicyConfig({ overlapWeight: scale, temperature: 0 }));
      const run = await startDynamo(spec, { venv: venv!, model, shape, dir: join(dir, `policy-${scale}`) }, ['--router-policy-config', f]);
      try {
        const client = new OpenAI({ baseURL: `${run.url}/v1`, apiKey: 'unused' });
        await client.chat.completions.create({ model: model.name, messages: [{ role: 'user', content: prompt }], max_tokens: 2 });
        const fe = run.daemons.find((d) => d.name === 'dynamo-frontend')!;
        const line = await waitFor(
          'the frontend logs its decision',
          async () =>
            stripVTControlCharacters(fe.output())
              .split('\n')
              .find((l) => /Selected worker router_mode="kv"/.test(l)),
          { timeoutMs: 30_000, daemons: run.daemons },
        );
        const logit = /logit=([\d.]+)/.exec(line)?.[1];
        assert.ok(logit, line);
        return Number(logit);
      } finally {
        await run.stop();
      }
    };
    const l1 = await logitWith(1);
    const l3 = await logitWith(3);
    assert.ok(l3 > l1, `prefill_load_scale 3 must raise the cost of the same prompt: logit ${l3} vs ${l1}`);
    // The shape shipped before (instance and type "default") is refused at start-up.
    const old = policyFile('old-shape', {
      worker_selection: { aggregated: 'default', instances: [{ name: 'default', type: 'default', parameters: { prefill_load_scale: 1 } }] },
    });
    await assert.rejects(
      startDynamo(spec, { venv: venv!, model, shape, dir: join(dir, 'policy-old') }, ['--router-policy-config', old]),
      /reserved for Dynamo's built-in selector/,
    );
    // The flat form (dynamo-lab's shorthand, README) is refused by the real frontend, as the README says.
    const flat = policyFile('flat', { overlap_score_credit: 1, prefill_load_scale: 1 });
    await assert.rejects(
      startDynamo(spec, { venv: venv!, model, shape, dir: join(dir, 'policy-flat') }, ['--router-policy-config', flat]),
      /unknown field `overlap_score_credit`/,
    );
  });
  it('its processes leave nothing in the temp directory (Dynamo writes a logging .json there per process)', {
    timeout: 300_000,
  }, async () => {
    // The test process's own TMPDIR, fresh: Dynamo's processes would inherit it without dynamoEnv's.
    const temp = join(dir, 'system-temp');
    mkdirSync(temp);
    const runDir = join(dir, 'temp-run');
    const run = await withTmpdir(temp, () =>
      startDynamo(SYSTEMS.find((s) => s.id === 'dynamo-kv')!, {
        venv: venv!,
        model,
        shape: { workers: 1, gpuBlocks: 256, blockSize: 16, speedup: 0 },
        dir: runDir,
      }),
    );
    await run.stop();
    assert.deepEqual(readdirSync(temp), [], 'files Dynamo left in the temp directory');
    assert.equal(existsSync(join(runDir, 'dynamo-tmp')), false, "the run's dynamo-tmp/ is removed when Dynamo stops");
  });
});
