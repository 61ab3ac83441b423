/**
 * What the step text says happens, happens: each lab runs locally (start --target local --yes
 * --json) several times, every check line the steps print must pass, the check lines the text
 * promises ("checked below") must be there, and the outcomes the text states as guaranteed by the
 * scenario are asserted from the results: on the long-prefix scenarios kv beats round-robin by at
 * least 3x TTFT on the same requests; round-robin over four emptied workers sends questions 2-4 to
 * workers that never saw the prefix; traffic splits as the text says. DYNAMO_LAB_CLAIM_RUNS sets
 * how many runs of each lab (default 2; router-ab runs once).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, tempStateDir } from '../helpers/cli.js';

const RUNS = Number(process.env.DYNAMO_LAB_CLAIM_RUNS ?? 2);

interface Result {
  kind: string;
  ok?: boolean;
  text?: string;
  title?: string;
  columns?: Array<{ header: string }>;
  rows?: string[][];
  notes?: string[];
}

interface Doc {
  status: string;
  steps: Array<{ id: string; status: string; error?: string; results?: Result[] }>;
  comparison?: Array<{
    group: string;
    kv?: { n: number; ttft_avg_ms: number; cached_tokens: number };
    other?: { n: number; ttft_avg_ms: number; cached_tokens: number };
    ratio?: number;
  }>;
  ab?: unknown[];
  demo: Array<{
    mode: string;
    group: string;
    prompt: string;
    worker: string | null;
    cached_tokens: number | null;
    prompt_tokens: number | null;
  }>;
}

async function runLab(lab: string): Promise<Doc> {
  const r = await runCli(['start', '--lab', lab, '--target', 'local', '--yes', '--json'], {
    env: { DYNAMO_LAB_STATE_DIR: tempStateDir() },
    timeoutMs: 600_000,
  });
  const doc = JSON.parse(r.stdout) as Doc;
  assert.equal(r.code, 0, `${lab} exited ${r.code}: ${JSON.stringify(doc.steps.filter((s) => s.status === 'failed'))}`);
  assert.equal(doc.status, 'finished');
  return doc;
}

function checks(doc: Doc) {
  return doc.steps.flatMap((s) =>
    (s.results ?? []).filter((r) => r.kind === 'check').map((r) => ({ step: s.id, ok: r.ok, text: r.text ?? '' })),
  );
}

/** Every check passes, and each listed step printed a check matching its pattern (the text says "checked below"). */
function assertChecks(lab: string, run: number, doc: Doc, promised: Record<string, RegExp>): void {
  const cs = checks(doc);
  for (const c of cs) assert.ok(c.ok, `${lab} run ${run}, step ${c.step}: ${c.text}`);
  for (const [step, re] of Object.entries(promised))
    assert.ok(
      cs.some((c) => c.step === step && re.test(c.text)),
      `${lab} run ${run}: step ${step} promises a check matching ${re}; its checks: ${JSON.stringify(cs.filter((c) => c.step === step))}`,
    );
}

const table = (doc: Doc, step: string, header?: string) =>
  (doc.steps.find((s) => s.id === step)?.results ?? []).find(
    (r) => r.kind === 'table' && (!header || r.columns?.some((c) => c.header === header)),
  );

const SAME_WORKER = /^every request after the first of its scenario went to the same worker as the first and reported cached tokens/;
const ALTERNATE = /^consecutive requests went to different workers$/;

function assertLongPrefix(lab: string, run: number, doc: Doc): void {
  const long = (doc.comparison ?? []).filter((c) => c.group.startsWith('long-'));
  assert.equal(long.length, 3, `${lab}: the three long-prefix scenarios are compared`);
  for (const c of long) {
    assert.equal(c.kv!.n, c.other!.n, `${c.group}: equal request counts per mode`);
    assert.equal(c.kv!.n, 3);
    assert.ok(
      c.ratio! >= 3,
      `${lab} run ${run}: ${c.group} kv ${c.kv!.ttft_avg_ms} ms vs round-robin ${c.other!.ttft_avg_ms} ms = ${c.ratio}x`,
    );
  }
  // "with four workers, round-robin sends requests 2-4 to workers that have never seen the prefix"
  for (const g of ['long-system-prompt', 'long-document', 'long-chat']) {
    const rr = doc.demo.filter((d) => d.mode === 'round-robin' && d.group === g);
    assert.equal(rr.length, 4);
    assert.deepEqual(
      rr.slice(1).map((d) => d.cached_tokens),
      [0, 0, 0],
      `${lab} run ${run}: ${g} round-robin requests 2-4 found nothing cached`,
    );
  }
  // The per-request table, with its header, is in the results of the demo steps.
  const tables = doc.steps
    .flatMap((s) => s.results ?? [])
    .filter((r) => r.kind === 'table' && r.columns?.some((c) => c.header === 'cached/prompt'));
  assert.ok(tables.length >= 4, `${lab}: per-request tables`);
  for (const t of tables.filter((x) => x.columns!.some((c) => c.header === '#')))
    assert.deepEqual(
      t.columns!.map((c) => c.header),
      ['#', 'prompt', 'worker', 'cached/prompt', 'cached share', 'TTFT ms'],
    );
}

test(`kv-routing: ${RUNS} local runs, every check passes, long prefixes at least 3x lower TTFT with kv`, {
  timeout: 1_500_000,
}, async () => {
  for (let i = 1; i <= RUNS; i++) {
    const doc = await runLab('kv-routing');
    assertChecks('kv-routing', i, doc, {
      'demo-kv': SAME_WORKER,
      'demo-round-robin': ALTERNATE,
      'long-kv': /same worker .*\(at least 90 % of its prompt\)/,
      'long-round-robin': ALTERNATE,
      'long-compare': /^long-document: kv .* lower TTFT \(expected at least 3x\)$/,
    });
    assertLongPrefix('kv-routing', i, doc);
  }
});

test(`kv-demo: ${RUNS} local runs, every check the text promises is there and passes, round-robin and load behave as described`, {
  timeout: 1_500_000,
}, async () => {
  for (let i = 1; i <= RUNS; i++) {
    const doc = await runLab('kv-demo');
    assertChecks('kv-demo', i, doc, {
      'shared-system-prompt': SAME_WORKER,
      'multi-turn': /; each follow-up turn read at least the previous turn's whole prompt blocks from cache$/,
      'load-distribution': SAME_WORKER,
      'load-concurrent': /^[234] workers served requests, the busiest \d+ of 20 /,
      'run-kv': SAME_WORKER,
      'run-round-robin': ALTERNATE,
      'compare-modes': /^ml-system-prompt: kv served \d+ prompt tokens from cache, round-robin \d+$/,
      'run-kv-ttft': SAME_WORKER,
      'long-kv': /same worker .*\(at least 90 % of its prompt\)/,
      'long-round-robin': ALTERNATE,
      'long-compare': /^long-chat: kv .* lower TTFT \(expected at least 3x\)$/,
    });
    assert.ok(checks(doc).length >= 14, `kv-demo: only ${checks(doc).length} check lines`);
    // "questions 2-4 land on workers that have never seen the system prompt; question 5 is back on question 1's worker and finds it cached"
    const rr = doc.demo.filter((d) => d.mode === 'round-robin' && d.group === 'ml-system-prompt');
    assert.equal(rr.length, 5);
    assert.deepEqual(
      rr.slice(1, 4).map((d) => d.cached_tokens),
      [0, 0, 0],
      `run ${i}: round-robin questions 2-4`,
    );
    assert.equal(new Set(rr.slice(0, 4).map((d) => d.worker)).size, 4, `run ${i}: questions 1-4 on four workers`);
    assert.equal(rr[4]!.worker, rr[0]!.worker, `run ${i}: question 5 back on question 1's worker`);
    assert.ok(rr[4]!.cached_tokens! > 0, `run ${i}: question 5 finds the system prompt cached`);
    // "locally all five land on one worker"
    const topics = doc.demo.filter((d) => d.group === 'topics');
    assert.equal(new Set(topics.map((d) => d.worker)).size, 1, `run ${i}: topics on ${topics.map((d) => d.worker).join(', ')}`);
    // The concurrent-load table carries every worker and the percentiles.
    const load = table(doc, 'load-concurrent', 'TTFT p50 ms')!;
    assert.equal(load.rows!.length, 4);
    assert.match(load.notes!.join('\n'), /TTFT ms p50 [\d.]+ {2}p90 [\d.]+ {2}p99 [\d.]+ · latency ms p50/);
    assertLongPrefix('kv-demo', i, doc);
  }
});

test(`distributed: ${RUNS} local runs, every check passes, round-robin splits evenly and kv finds the opening cached`, {
  timeout: 600_000,
}, async () => {
  for (let i = 1; i <= RUNS; i++) {
    const doc = await runLab('distributed');
    assertChecks('distributed', i, doc, {
      'traffic-a': /^the requests were split evenly over the workers \(worker-0 15, worker-1 15\)$/,
      'traffic-b': /^all 30 requests read prompt tokens from the cache$/,
    });
    // "after its first one, a worker finds their shared opening in its cache" (two 16-token blocks)
    for (const row of table(doc, 'traffic-a', 'TTFT p50 ms')!.rows!) {
      const [cached] = row[3]!.split('/').map(Number);
      assert.ok(cached! >= 32 * (Number(row[1]) - 1), `run ${i}: ${row[0]} read ${row[3]} from cache over ${row[1]} requests`);
    }
    // "The table shows which worker answered."
    const first = table(doc, 'first-request', 'worker')!;
    assert.equal(first.rows!.length, 1);
    assert.match(first.rows![0]![2]!, /^worker-[01]$/);
    assert.equal(table(doc, 'discovery-objects', 'cached blocks')!.rows!.length, 2);
  }
});

test(`grove: ${RUNS} local runs, every check passes, round-robin splits the traffic evenly`, { timeout: 600_000 }, async () => {
  for (let i = 1; i <= RUNS; i++) {
    const doc = await runLab('grove');
    assertChecks('grove', i, doc, { traffic: /^the requests were split evenly over the workers \(worker-0 15, worker-1 15\)$/ });
    assert.match(table(doc, 'first-request', 'worker')!.rows![0]![2]!, /^worker-[01]$/);
  }
});

test('router-ab: a local run finishes, every check passes, --json carries the A/B table', { timeout: 600_000 }, async () => {
  const doc = await runLab('router-ab');
  for (const c of checks(doc)) assert.ok(c.ok, `router-ab, step ${c.step}: ${c.text}`);
  const ab = doc.ab as Array<{ columns: Array<{ header: string }>; rows: string[][] }> | undefined;
  assert.ok(ab?.length, 'router-ab --json carries the A/B table');
  assert.deepEqual(
    ab[0]!.columns.map((c) => c.header),
    ['mode', 'TTFT avg ms', 'p50', 'p99', 'hit rate', 'oracle', 'hit / oracle'],
  );
  assert.deepEqual(ab[0]!.rows.map((r) => r[0]).sort(), ['kv', 'round-robin']);
});
