/**
 * Sim-vs-mocker fidelity: the same request sequence (the trace slice's prompts as token ids, one
 * request at a time, alternating between the two) to ONE Dynamo mocker worker (behind Dynamo's
 * frontend, the only way in) and ONE dynamo-lab sim worker (directly), same block size, blocks
 * and speedup. Per request: TTFT, ITL and cached tokens side by side, with the polynomial model's
 * own TTFT for a lone request (src/sim/timing.ts) as the reference both should meet.
 *
 * The last two requests probe the prefix cache: the first prompt again, and its whole blocks
 * alone (fully cached: vLLM and the mocker still compute its last block).
 *
 * Pass: every cached-token count equal, and the sim's median TTFT and ITL within 5 % of the
 * mocker's. Otherwise the report names the requests and the part (prefill, decode, cache) that
 * differs.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promptTokens } from '../../src/bench/synth.js';
import { parseMooncakeTrace } from '../../src/bench/trace.js';
import { singleRequestItlMs, singleRequestTtftMs } from '../../src/sim/timing.js';
import { machineLoad, round, say, stopDaemon } from './common.js';
import type { ModelDir } from './model.js';
import { buildSlice } from './slice.js';
import { startDynamo, startSims, SYSTEMS, type EngineShape } from './systems.js';
import type { Venv } from './venv.js';

interface Sample {
  ttftMs: number;
  itlMs: number;
  e2eMs: number;
  outputTokens: number;
  cachedTokens: number | null;
  promptTokens: number | null;
}

/** One streaming /v1/completions request, timed on the client like aiperf (first content chunk = TTFT). */
async function timed(url: string, model: string, prompt: number[], maxTokens: number): Promise<Sample> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({
      model,
      prompt,
      max_tokens: maxTokens,
      min_tokens: maxTokens,
      ignore_eos: true,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!r.ok || !r.body) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  let ttft = NaN;
  let chunks = 0;
  let usage: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | undefined;
  let buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') continue;
      const o = JSON.parse(data) as { choices?: Array<{ text?: string }>; usage?: typeof usage };
      if (o.usage) usage = o.usage;
      if (o.choices?.some((c) => typeof c.text === 'string' && c.text !== '')) {
        if (!Number.isFinite(ttft)) ttft = performance.now() - t0;
        chunks++;
      }
    }
  }
  const e2e = performance.now() - t0;
  // Tokens from usage: Dynamo's detokenizer holds back a token whose text is an incomplete
  // character and sends it with the next one, so chunks can be fewer than tokens.
  const out = usage?.completion_tokens ?? chunks;
  return {
    ttftMs: ttft,
    e2eMs: e2e,
    itlMs: out > 1 ? (e2e - ttft) / (out - 1) : NaN,
    outputTokens: out,
    cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? null,
    promptTokens: usage?.prompt_tokens ?? null,
  };
}

interface Row {
  i: number;
  isl: number;
  osl: number;
  mocker: Sample;
  sim: Sample;
  model_ttft_ms: number;
  model_itl_ms: number;
  ttft_ratio: number;
  itl_ratio: number;
}

const median = (xs: number[]) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length ? (v.length % 2 ? v[v.length >> 1]! : (v[(v.length >> 1) - 1]! + v[v.length >> 1]!) / 2) : NaN;
};

export async function runFidelity(o: {
  venv: Venv;
  model: ModelDir;
  shape: EngineShape;
  out: string;
  requests: number;
  trace?: string;
  maxInput: number;
  json: boolean;
  maxTokens?: number;
}): Promise<number> {
  const slice = await buildSlice({
    trace: o.trace,
    requests: o.requests,
    maxInput: o.maxInput,
    timeScale: 1,
    out: join(o.out, 'fidelity-slice.jsonl'),
  });
  const w = parseMooncakeTrace(await readFile(slice.path, 'utf8'), { name: slice.path });
  const prompts = w.requests.map((r) => Array.from(promptTokens(w.seed, r)));
  const osls = w.requests.map((r) => r.outputLength);
  // Two cache probes at the end: the first prompt again, and its first whole blocks alone (a
  // prompt that is entirely cached, where the engine still computes the last block).
  if (prompts.length > 0) {
    const p0 = prompts[0]!;
    prompts.push(p0, p0.slice(0, Math.floor(p0.length / o.shape.blockSize) * o.shape.blockSize));
    osls.push(osls[0]!, osls[0]!);
  }
  const maxTokens = (i: number) => Math.max(2, Math.min(o.maxTokens ?? 64, osls[i]!));
  const shape = { ...o.shape, workers: 1 };
  const loadBefore = await machineLoad();
  say(
    `fidelity: ${prompts.length} requests one at a time (mean ${Math.round(slice.meanInput)} tokens, up to ${o.maxTokens ?? 64} output tokens), 1 mocker worker vs 1 sim worker, ${shape.gpuBlocks} blocks of ${shape.blockSize}, speedup ${shape.speedup}`,
  );
  const dyn = await startDynamo(SYSTEMS.find((s) => s.id === 'dynamo-rr')!, {
    venv: o.venv,
    model: o.model,
    shape,
    dir: join(o.out, 'fidelity', 'dynamo'),
  });
  let sims: Awaited<ReturnType<typeof startSims>> | undefined;
  try {
    sims = await startSims({ model: o.model, shape, dir: join(o.out, 'fidelity', 'sim') }, { zmq: false });
    const simUrl = sims.workers[0]!.url;
    const rows: Row[] = [];
    for (let i = 0; i < prompts.length; i++) {
      const m = await timed(dyn.url, o.model.name, prompts[i]!, maxTokens(i));
      const s = await timed(simUrl, o.model.name, prompts[i]!, maxTokens(i));
      const model =
        singleRequestTtftMs({
          promptTokens: prompts[i]!.length,
          cachedTokens: s.cachedTokens ?? 0,
          maxNumBatchedTokens: 8192,
        }) / (shape.speedup || Infinity);
      // The model's mean gap between two tokens of this lone request (its length grows by one a pass).
      const osl = maxTokens(i);
      let itlSum = 0;
      for (let k = 1; k < osl; k++)
        itlSum += singleRequestItlMs({ sequenceTokens: prompts[i]!.length + k, blockSize: shape.blockSize, numGpuBlocks: shape.gpuBlocks });
      const modelItl = osl > 1 ? itlSum / (osl - 1) / (shape.speedup || Infinity) : NaN;
      rows.push({
        i,
        isl: prompts[i]!.length,
        osl: maxTokens(i),
        mocker: m,
        sim: s,
        model_ttft_ms: round(model, 2),
        model_itl_ms: round(modelItl, 3),
        ttft_ratio: round(s.ttftMs / m.ttftMs, 3),
        itl_ratio: round(s.itlMs / m.itlMs, 3),
      });
    }
    const loadAfter = await machineLoad();
    const cachedEqual = rows.filter((r) => r.mocker.cachedTokens === r.sim.cachedTokens).length;
    const promptEqual = rows.filter((r) => r.mocker.promptTokens === r.sim.promptTokens).length;
    const medT = {
      mocker: median(rows.map((r) => r.mocker.ttftMs)),
      sim: median(rows.map((r) => r.sim.ttftMs)),
      model: median(rows.map((r) => r.model_ttft_ms)),
    };
    const medI = { mocker: median(rows.map((r) => r.mocker.itlMs)), sim: median(rows.map((r) => r.sim.itlMs)) };
    const ttftRatio = median(rows.map((r) => r.ttft_ratio));
    const itlRatio = median(rows.map((r) => r.itl_ratio));
    // Where the clock time goes beyond the model (transport, scheduling), per side.
    const overT = {
      mocker: median(rows.map((r) => r.mocker.ttftMs - r.model_ttft_ms)),
      sim: median(rows.map((r) => r.sim.ttftMs - r.model_ttft_ms)),
    };
    const overI = {
      mocker: median(rows.map((r) => r.mocker.itlMs - r.model_itl_ms)),
      sim: median(rows.map((r) => r.sim.itlMs - r.model_itl_ms)),
    };
    const worst = (key: 'ttft_ratio' | 'itl_ratio') =>
      rows.filter((r) => Number.isFinite(r[key])).reduce((w, r) => (Math.abs(r[key] - 1) > Math.abs(w[key] - 1) ? r : w), rows[0]!);
    const spread = (key: 'ttft_ratio' | 'itl_ratio') => {
      const v = rows
        .map((r) => r[key])
        .filter(Number.isFinite)
        .sort((a, b) => a - b);
      const at = (p: number) => v[Math.round(p * (v.length - 1))]!;
      return { p10: at(0.1), p90: at(0.9), within_5pct: v.filter((x) => Math.abs(x - 1) <= 0.05).length };
    };
    const worstT = worst('ttft_ratio');
    const worstI = worst('itl_ratio');
    const within = (x: number) => Math.abs(x - 1) <= 0.05;
    const pass = cachedEqual === rows.length && within(ttftRatio) && within(itlRatio);
    const off = rows.filter((r) => !within(r.ttft_ratio) || !within(r.itl_ratio) || r.mocker.cachedTokens !== r.sim.cachedTokens);
    const doc = {
      requests: rows.length,
      shape,
      pass,
      cached_tokens_equal: cachedEqual,
      prompt_tokens_equal: promptEqual,
      ttft_ms_median: { mocker: round(medT.mocker, 2), sim: round(medT.sim, 2), model: round(medT.model, 2) },
      itl_ms_median: { mocker: round(medI.mocker, 2), sim: round(medI.sim, 2) },
      median_ratio_sim_over_mocker: { ttft: round(ttftRatio, 3), itl: round(itlRatio, 3) },
      ratio_spread: { ttft: spread('ttft_ratio'), itl: spread('itl_ratio') },
      worst_ratio_sim_over_mocker: {
        ttft: { request: worstT.i, isl: worstT.isl, ratio: worstT.ttft_ratio },
        itl: { request: worstI.i, isl: worstI.isl, ratio: worstI.itl_ratio },
      },
      median_ttft_over_model_ms: { mocker: round(overT.mocker, 2), sim: round(overT.sim, 2) },
      median_itl_over_model_ms: { mocker: round(overI.mocker, 3), sim: round(overI.sim, 3) },
      requests_outside_5pct_or_cache_mismatch: off.map((r) => r.i),
      load_before: loadBefore,
      load_after: loadAfter,
      rows,
    };
    await writeFile(join(o.out, 'fidelity.json'), JSON.stringify(doc, null, 2) + '\n');
    if (o.json) process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    else {
      const f = (x: number | null, d = 1) => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));
      const lines = [
        '',
        `fidelity (1 Dynamo ${o.venv.versions['ai-dynamo']} mocker worker via its frontend vs 1 dynamo-lab sim worker, ${rows.length} requests one at a time, speedup ${shape.speedup})`,
        '',
        '|   # |    isl | cached mocker | cached sim | TTFT model | TTFT mocker | TTFT sim | sim/mocker | ITL mocker | ITL sim | sim/mocker |',
        '|----:|-------:|--------------:|-----------:|-----------:|------------:|---------:|-----------:|-----------:|--------:|-----------:|',
        ...rows.map(
          (r) =>
            `| ${String(r.i).padStart(3)} | ${String(r.isl).padStart(6)} | ${String(r.mocker.cachedTokens).padStart(13)} | ${String(r.sim.cachedTokens).padStart(10)} | ${f(r.model_ttft_ms).padStart(10)} | ${f(r.mocker.ttftMs).padStart(11)} | ${f(r.sim.ttftMs).padStart(8)} | ${f(r.ttft_ratio, 2).padStart(10)} | ${f(r.mocker.itlMs, 2).padStart(10)} | ${f(r.sim.itlMs, 2).padStart(7)} | ${f(r.itl_ratio, 2).padStart(10)} |`,
        ),
        '',
        `cached tokens equal: ${cachedEqual}/${rows.length}; prompt tokens equal: ${promptEqual}/${rows.length}`,
        `TTFT median: model ${f(medT.model)} ms, mocker ${f(medT.mocker)} ms, sim ${f(medT.sim)} ms; median sim/mocker ${f(ttftRatio, 3)} (clock time above the model: mocker +${f(overT.mocker)} ms, sim +${f(overT.sim)} ms)`,
        `ITL median: model ${f(median(rows.map((r) => r.model_itl_ms)), 2)} ms, mocker ${f(medI.mocker, 2)} ms, sim ${f(medI.sim, 2)} ms; median sim/mocker ${f(itlRatio, 3)} (above the model: mocker +${f(overI.mocker, 2)} ms, sim +${f(overI.sim, 2)} ms)`,
        `per request sim/mocker p10-p90: TTFT ${f(spread('ttft_ratio').p10, 3)}-${f(spread('ttft_ratio').p90, 3)} (${spread('ttft_ratio').within_5pct}/${rows.length} within 5 %), ITL ${f(spread('itl_ratio').p10, 3)}-${f(spread('itl_ratio').p90, 3)} (${spread('itl_ratio').within_5pct}/${rows.length} within 5 %)`,
        `worst request: TTFT #${worstT.i} (${worstT.isl} tokens) ${f(worstT.ttft_ratio, 3)}, ITL #${worstI.i} (${worstI.isl} tokens) ${f(worstI.itl_ratio, 3)}`,
        `verdict: ${pass ? 'medians within 5 %' : 'medians NOT within 5 %'} (TTFT ${f(ttftRatio, 3)}, ITL ${f(itlRatio, 3)}), cached tokens equal ${cachedEqual}/${rows.length}; per request, ${off.length} of ${rows.length} are outside 5 % or differ in cached tokens${
          off.length
            ? ` (${off
                .map((r) => r.i)
                .slice(0, 20)
                .join(', ')}${off.length > 20 ? ', …' : ''})`
            : ''
        }`,
        `the model is the same on both sides; what differs is the clock time around it: the mocker is reached through Dynamo's frontend (HTTP, then its TCP request plane), the sim directly over HTTP. Median TTFT above the model: mocker +${f(overT.mocker, 1)} ms, sim +${f(overT.sim, 1)} ms, so a request whose TTFT is under ${f(Math.abs(overT.mocker - overT.sim) / 0.05, 0)} ms cannot be within 5 % from transport alone; on a loaded machine single requests also carry scheduling noise of a few ms.`,
        `load: ${loadBefore.loadavg1} -> ${loadAfter.loadavg1}; written ${join(o.out, 'fidelity.json')}`,
        '',
      ];
      process.stdout.write(lines.join('\n'));
    }
    return 0;
  } finally {
    if (sims) await stopDaemon(sims.daemon);
    await dyn.stop();
  }
}
