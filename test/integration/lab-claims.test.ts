/**
 * What the step text says happens, happens: each lab runs locally (start --target local --yes
 * --json) several times, and every check line the steps print must pass; on the long-prefix
 * scenarios kv must beat round-robin by at least 3x TTFT on the same requests; the per-request
 * table (worker, cached/prompt tokens, TTFT) is in the results. DYNAMO_LAB_CLAIM_RUNS sets how
 * many runs (default 2 for the kv labs, 1 for the others).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, tempStateDir } from '../helpers/cli.js';

const RUNS = Number(process.env.DYNAMO_LAB_CLAIM_RUNS ?? 2);

interface Doc {
  status: string;
  steps: Array<{
    id: string;
    status: string;
    error?: string;
    results?: Array<{ kind: string; ok?: boolean; text?: string; title?: string; columns?: Array<{ header: string }>; rows?: string[][] }>;
  }>;
  comparison?: Array<{
    group: string;
    kv?: { n: number; ttft_avg_ms: number };
    other?: { n: number; ttft_avg_ms: number };
    ratio?: number;
  }>;
  ab?: unknown[];
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
  return doc.steps.flatMap((s) => (s.results ?? []).filter((r) => r.kind === 'check').map((r) => ({ step: s.id, ok: r.ok, text: r.text })));
}

for (const lab of ['kv-routing', 'kv-demo']) {
  test(`${lab}: ${RUNS} local runs, every check passes, long prefixes at least 3x lower TTFT with kv`, { timeout: 1_500_000 }, async () => {
    for (let i = 0; i < RUNS; i++) {
      const doc = await runLab(lab);
      const cs = checks(doc);
      assert.ok(cs.length >= 6, `${lab}: only ${cs.length} check lines`);
      for (const c of cs) assert.ok(c.ok, `${lab} run ${i + 1}, step ${c.step}: ${c.text}`);
      const long = (doc.comparison ?? []).filter((c) => c.group.startsWith('long-'));
      assert.equal(long.length, 3, `${lab}: the three long-prefix scenarios are compared`);
      for (const c of long) {
        assert.equal(c.kv!.n, c.other!.n, `${c.group}: equal request counts per mode`);
        assert.equal(c.kv!.n, 3);
        assert.ok(
          c.ratio! >= 3,
          `${lab} run ${i + 1}: ${c.group} kv ${c.kv!.ttft_avg_ms} ms vs round-robin ${c.other!.ttft_avg_ms} ms = ${c.ratio}x`,
        );
      }
      // The per-request table, with its header, is in the results of the demo steps.
      const tables = doc.steps
        .flatMap((s) => s.results ?? [])
        .filter((r) => r.kind === 'table' && r.columns?.some((c) => c.header === 'cached/prompt'));
      assert.ok(tables.length >= 4, `${lab}: per-request tables`);
      for (const t of tables)
        assert.deepEqual(
          t.columns!.map((c) => c.header),
          ['#', 'prompt', 'worker', 'cached/prompt', 'cached share', 'TTFT ms'],
        );
    }
  });
}

for (const lab of ['distributed', 'grove', 'router-ab']) {
  test(`${lab}: a local run finishes and every check passes`, { timeout: 600_000 }, async () => {
    const doc = await runLab(lab);
    for (const c of checks(doc)) assert.ok(c.ok, `${lab}, step ${c.step}: ${c.text}`);
    if (lab === 'router-ab') {
      const ab = doc.ab as Array<{ columns: Array<{ header: string }>; rows: string[][] }> | undefined;
      assert.ok(ab?.length, 'router-ab --json carries the A/B table');
      assert.deepEqual(
        ab[0]!.columns.map((c) => c.header),
        ['mode', 'TTFT avg ms', 'p50', 'p99', 'hit rate', 'oracle', 'hit / oracle'],
      );
      assert.deepEqual(ab[0]!.rows.map((r) => r[0]).sort(), ['kv', 'round-robin']);
    }
  });
}
