/**
 * Differential routing check: the same requests (the trace slice's prompts as token ids, built by
 * src/bench from the hash ids) into Dynamo's frontend (kv) and into dynamo-lab's router (kv), each
 * in front of its own N mocker / sim workers started empty, temperature 0, in bursts of
 * `concurrency` (1 = one at a time, so only the KV index decides; more adds load terms).
 *
 * Worker ids differ between the systems, and at temperature 0 both break ties between equally
 * good workers at random, so "the same choice" is judged by what the chosen worker holds: each
 * worker's history (the requests it served, and those in flight) before the request. Two
 * choices are identical when the chosen workers have the same history — an empty worker equals
 * any other empty worker. Worker ids are also mapped by order of first use for the report.
 * After every burst both systems are given time to apply their KV events (the
 * `dynamo_component_kv_cache_events_applied` counters, which both expose, stop moving).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseMooncakeTrace } from '../../src/bench/trace.js';
import { promptTokens } from '../../src/bench/synth.js';
import { getJson, getText, machineLoad, parseProm, promSum, round, say, sleep, type Load } from './common.js';
import type { ModelDir } from './model.js';
import { buildSlice } from './slice.js';
import { startDynamo, startLab, SYSTEMS, type EngineShape, type Running } from './systems.js';
import type { Venv } from './venv.js';
import { stripVTControlCharacters } from 'node:util';

interface Choice {
  worker: string;
  overlapBlocks: number | null;
  detail: unknown;
}

async function settle(url: string): Promise<void> {
  let last = -1;
  let stable = 0;
  for (let i = 0; i < 100 && stable < 3; i++) {
    const v = promSum(parseProm(await getText(`${url}/metrics`)), 'dynamo_component_kv_cache_events_applied');
    stable = v === last ? stable + 1 : 0;
    last = v;
    await sleep(60);
  }
}

const MAX_TOKENS = 16;

/**
 * Send one streaming request and resolve once the response headers arrived (the router has
 * chosen a worker by then), with a promise of the whole body; so a burst's requests are routed
 * in the same order by both systems.
 */
async function open(url: string, body: unknown): Promise<{ headers: Headers; body: Promise<string> }> {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = r.text();
  if (!r.ok) throw new Error(`${url} ${r.status}: ${(await text).slice(0, 300)}`);
  return { headers: r.headers, body: text };
}

async function sendDynamo(run: Running, model: string, prompt: number[]): Promise<{ done: Promise<Choice & { requestId: string }> }> {
  const r = await open(run.url, {
    model,
    prompt,
    max_tokens: MAX_TOKENS,
    temperature: 0,
    ignore_eos: true,
    stream: true,
    nvext: { extra_fields: ['worker_id'] },
  });
  return {
    done: r.body.then((text) => {
      // Instance ids exceed 2^53: read them as text.
      const w = /"decode_worker_id":(\d+)/.exec(text)?.[1];
      if (!w) throw new Error(`Dynamo response without nvext.worker_id: ${text.slice(0, 300)}`);
      const id = /"id":"(?:cmpl-)?([0-9a-f-]{36})"/.exec(text)?.[1] ?? '';
      return { worker: w, overlapBlocks: null, detail: null, requestId: id };
    }),
  };
}

async function sendLab(run: Running, model: string, prompt: number[]): Promise<{ done: Promise<Choice & { requestId: string }> }> {
  const r = await open(run.url, { model, prompt, max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true, stream: true });
  return {
    done: r.body.then(() => ({
      worker: r.headers.get('x-dynamo-lab-worker') ?? '?',
      overlapBlocks: Number(r.headers.get('x-dynamo-lab-overlap-blocks') ?? NaN),
      detail: null,
      requestId: r.headers.get('x-request-id') ?? '',
    })),
  };
}

async function burst<T>(n: number, send: (k: number) => Promise<{ done: Promise<T> }>): Promise<T[]> {
  const pending: Array<Promise<T>> = [];
  for (let k = 0; k < n; k++) pending.push((await send(k)).done);
  return Promise.all(pending);
}

/** Dynamo's own record of a decision: its `Selected worker … logit=` (the chosen worker's cost) and `route request completed … overlap_blocks=` lines. */
async function dynamoLogFor(
  run: Running,
  requestId: string,
): Promise<{ overlap_blocks: number | null; worker_id: string; logit: number | null } | null> {
  const fe = run.daemons.find((d) => d.name === 'dynamo-frontend')!;
  for (let i = 0; i < 40; i++) {
    const log = stripVTControlCharacters(fe.output());
    const sel = new RegExp(`Selected worker .*?request_id="${requestId}" worker_id=(\\d+) .*?logit=([\\d.eE+-]+)`).exec(log);
    const route = new RegExp(`route request completed .*?request_id=${requestId} .*?overlap_blocks=(\\d+)`).exec(log);
    if (sel && route) return { worker_id: sel[1]!, logit: Number(sel[2]), overlap_blocks: Number(route[1]) };
    await sleep(50); // the line may still be on its way through the pipe
  }
  return null;
}

export async function runDifferential(o: {
  venv: Venv;
  model: ModelDir;
  shape: EngineShape;
  out: string;
  requests: number;
  concurrency: number;
  trace?: string;
  maxInput: number;
  json: boolean;
}): Promise<number> {
  const slice = await buildSlice({
    trace: o.trace,
    requests: o.requests,
    maxInput: o.maxInput,
    timeScale: 1,
    out: join(o.out, 'differential-slice.jsonl'),
  });
  const { readFile } = await import('node:fs/promises');
  const w = parseMooncakeTrace(await readFile(slice.path, 'utf8'), { name: slice.path });
  const prompts = w.requests.map((r) => Array.from(promptTokens(w.seed, r)));
  const loadBefore: Load = await machineLoad();
  say(
    `differential: ${prompts.length} requests (mean ${Math.round(slice.meanInput)} tokens), bursts of ${o.concurrency}, max_tokens ${MAX_TOKENS}, temperature 0, ${o.shape.workers} workers each`,
  );
  const dyn = await startDynamo(SYSTEMS.find((s) => s.id === 'dynamo-kv')!, {
    venv: o.venv,
    model: o.model,
    shape: o.shape,
    dir: join(o.out, 'differential', 'dynamo'),
  });
  let lab: Running | undefined;
  try {
    lab = await startLab(SYSTEMS.find((s) => s.id === 'lab-kv')!, {
      venv: o.venv,
      model: o.model,
      shape: o.shape,
      dir: join(o.out, 'differential', 'lab'),
      seed: 1,
    });
    // Histories: worker -> request indexes it served (in order) — the state signature.
    const histD = new Map<string, number[]>();
    const histL = new Map<string, number[]>();
    const sig = (h: Map<string, number[]>, wk: string) => (h.get(wk) ?? []).join(',');
    const firstUse = new Map<string, string>(); // Dynamo id -> lab id, by order of first use
    const order = dyn.workerIds();
    const rows: Array<{
      i: number;
      isl: number;
      hash_ids: number[];
      dynamo: string;
      dynamo_index: number;
      lab: string;
      same: boolean;
      same_cost: boolean;
      same_by_first_use: boolean;
      dynamo_overlap: number | null;
      lab_overlap: number | null;
      dynamo_cost: number | null;
      lab_cost: number | null;
    }> = [];
    let firstDiv: Record<string, unknown> | null = null;
    let tieBreaks = 0;
    let inSync = true;
    for (let b = 0; b < prompts.length; b += o.concurrency) {
      const idx = [...Array(Math.min(o.concurrency, prompts.length - b)).keys()].map((k) => b + k);
      const beforeD = new Map([...histD].map(([k, v]) => [k, [...v]]));
      const beforeL = new Map([...histL].map(([k, v]) => [k, [...v]]));
      const [ds, ls] = await Promise.all([
        burst(idx.length, (k) => sendDynamo(dyn, o.model.name, prompts[idx[k]!]!)),
        burst(idx.length, (k) => sendLab(lab!, o.model.name, prompts[idx[k]!]!)),
      ]);
      const decisions = (await getJson(`${lab.url}/debug/decisions?limit=${idx.length}`)) as {
        decisions: Array<{ request_id: string; chosen: string; workers: unknown[] }>;
      };
      for (let k = 0; k < idx.length; k++) {
        const i = idx[k]!;
        const d = ds[k]!;
        const l = ls[k]!;
        const dlog = await dynamoLogFor(dyn, d.requestId);
        if (!firstUse.has(d.worker) && ![...firstUse.values()].includes(l.worker)) firstUse.set(d.worker, l.worker);
        const dec = decisions.decisions.find((x) => x.request_id === l.requestId) ?? null;
        const labCost = (dec?.workers as Array<{ id: string; cost: number }> | undefined)?.find((x) => x.id === l.worker)?.cost ?? null;
        const same = sig(beforeD, d.worker) === sig(beforeL, l.worker);
        // The same decision up to ties: the chosen worker's cost (Dynamo's logit) and overlap are equal.
        const sameCost =
          dlog?.logit != null && labCost !== null && Math.abs(dlog.logit - labCost) < 1e-6 && dlog.overlap_blocks === l.overlapBlocks;
        if (sameCost && !same) tieBreaks++;
        rows.push({
          i,
          isl: w.requests[i]!.inputLength,
          hash_ids: slice.lines[i]!.hash_ids,
          dynamo: d.worker,
          dynamo_index: order.indexOf(d.worker),
          lab: l.worker,
          same,
          same_cost: sameCost,
          same_by_first_use: firstUse.get(d.worker) === l.worker,
          dynamo_overlap: dlog?.overlap_blocks ?? null,
          lab_overlap: Number.isFinite(l.overlapBlocks) ? l.overlapBlocks : null,
          dynamo_cost: dlog?.logit ?? null,
          lab_cost: labCost,
        });
        if (!sameCost && !firstDiv) {
          firstDiv = {
            request: i,
            histories_in_sync_before: inSync,
            tie_breaks_before: tieBreaks,
            input_tokens: w.requests[i]!.inputLength,
            hash_ids: slice.lines[i]!.hash_ids,
            dynamo: {
              worker_id: d.worker,
              worker_index: order.indexOf(d.worker),
              served_before: beforeD.get(d.worker) ?? [],
              log: dlog,
              all_workers_served_before: Object.fromEntries(order.map((id, n) => [`${n}:${id}`, beforeD.get(id) ?? []])),
            },
            dynamo_lab: {
              worker: l.worker,
              served_before: beforeL.get(l.worker) ?? [],
              decision: dec,
              all_workers_served_before: Object.fromEntries(lab.workerIds().map((id) => [id, beforeL.get(id) ?? []])),
            },
          };
        }
        if (!same) inSync = false;
        histD.set(d.worker, [...(histD.get(d.worker) ?? []), i]);
        histL.set(l.worker, [...(histL.get(l.worker) ?? []), i]);
      }
      await Promise.all([settle(dyn.url), settle(lab.url)]);
    }
    const same = rows.filter((r) => r.same).length;
    const sameCost = rows.filter((r) => r.same_cost).length;
    const sameOverlap = rows.filter((r) => r.dynamo_overlap !== null && r.dynamo_overlap === r.lab_overlap).length;
    const firstUseSame = rows.filter((r) => r.same_by_first_use).length;
    const loadAfter = await machineLoad();
    const doc = {
      requests: rows.length,
      concurrency: o.concurrency,
      same_decision_up_to_ties: sameCost,
      same_decision_share: round(sameCost / rows.length, 4),
      tie_breaks: tieBreaks,
      identical_choices: same,
      identical_share: round(same / rows.length, 4),
      same_overlap_blocks: sameOverlap,
      same_overlap_share: round(sameOverlap / rows.length, 4),
      identical_by_first_use_id_mapping: firstUseSame,
      first_divergence: firstDiv,
      dynamo_requests_per_worker: dyn.workerIds().map((id) => rows.filter((r) => r.dynamo === id).length),
      lab_requests_per_worker: lab.workerIds().map((id) => rows.filter((r) => r.lab === id).length),
      load_before: loadBefore,
      load_after: loadAfter,
      rows,
    };
    await writeFile(join(o.out, 'differential.json'), JSON.stringify(doc, null, 2) + '\n');
    if (o.json) process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    else {
      const fd = firstDiv as {
        request: number;
        histories_in_sync_before: boolean;
        input_tokens: number;
        hash_ids: number[];
        dynamo: { worker_index: number; served_before: number[]; log: unknown };
        dynamo_lab: { worker: string; served_before: number[]; decision: unknown };
      } | null;
      process.stdout.write(
        [
          '',
          `differential (Dynamo ${o.venv.versions['ai-dynamo']} kv vs dynamo-lab kv, ${rows.length} requests, bursts of ${o.concurrency}, ${o.shape.workers} workers, temperature 0)`,
          `  same decision (chosen cost = Dynamo's logit, same overlap): ${sameCost}/${rows.length} = ${(doc.same_decision_share * 100).toFixed(1)} %`,
          `  identical worker (same history of served requests):        ${same}/${rows.length} = ${(doc.identical_share * 100).toFixed(1)} % (${tieBreaks} equal-cost ties broken differently)`,
          `  same overlap blocks on the chosen worker:                   ${sameOverlap}/${rows.length} = ${(doc.same_overlap_share * 100).toFixed(1)} %`,
          `  same worker ids mapped by order of first use:               ${firstUseSame}/${rows.length}`,
          `  requests per worker: Dynamo [${doc.dynamo_requests_per_worker.join(' ')}], dynamo-lab [${doc.lab_requests_per_worker.join(' ')}]`,
          fd
            ? `  first divergence: request ${fd.request} (histories ${fd.histories_in_sync_before ? 'in sync' : 'already apart after tie-breaks'}; ${fd.input_tokens} tokens, hash ids ${fd.hash_ids.slice(0, 8).join(',')}${fd.hash_ids.length > 8 ? ',…' : ''}):\n` +
              `    Dynamo chose worker #${fd.dynamo.worker_index} which had served [${fd.dynamo.served_before.join(',')}]; its log: ${JSON.stringify(fd.dynamo.log)}\n` +
              `    dynamo-lab chose ${fd.dynamo_lab.worker} which had served [${fd.dynamo_lab.served_before.join(',')}]; its decision: ${JSON.stringify(fd.dynamo_lab.decision)}`
            : '  no divergence',
          `  load: ${loadBefore.loadavg1} -> ${loadAfter.loadavg1}; written ${join(o.out, 'differential.json')}`,
          '',
        ].join('\n'),
      );
    }
    return 0;
  } finally {
    if (lab) await lab.stop();
    await dyn.stop();
  }
}
