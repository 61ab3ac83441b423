/**
 * `dynamo-lab start --lab kv-routing --target local --engine dynamo --yes --json`: the kv-routing
 * lab end to end on the real Dynamo 1.6.1 frontend + mocker from the peers venv. Skipped when the
 * venv is missing; DYNAMO_LAB_REQUIRE_DYNAMO=1 makes a missing venv a failure.
 *
 * Checks: every step done; kv keeps the shared-prefix series on one worker with cached tokens
 * reported by the real frontend; round-robin alternates; the embedded router's view, built from
 * the mocker's NATS KV events, holds blocks exactly on the workers that served the kv demo before
 * it; with dynamo-lab's router in place of Dynamo's (frontend in --router-mode direct) every
 * request went where the router chose and reported the cached tokens it predicted; the
 * log-inspection step printed the real frontend's `Selected worker` lines for the kv, direct and
 * round-robin requests; every port is free afterwards.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { cliArgv } from '../../scripts/peers/common.js';
import { peersVenv } from '../helpers/peers-venv.js';

const { skip } = await peersVenv();

interface Table {
  kind: 'table' | 'check';
  ok?: boolean;
  text?: string;
  columns?: Array<{ header: string }>;
  rows?: string[][];
}

/** A step's table as objects keyed by column header. */
function tableOf(steps: Array<{ id: string; results?: Table[] }>, id: string): Array<Record<string, string>> {
  const t = steps.find((s) => s.id === id)?.results?.find((r) => r.kind === 'table');
  assert.ok(t?.columns && t.rows, `step ${id} has a table`);
  return t.rows.map((row) => Object.fromEntries(t.columns!.map((c, i) => [c.header, row[i]!])));
}

interface Demo {
  mode: string;
  group: string;
  worker: string | null;
  cached_tokens: number | null;
}

describe('lab engine: --engine dynamo (real Dynamo 1.6.1 frontend + mocker)', { skip }, () => {
  it('runs kv-routing end to end', { timeout: 600_000 }, async () => {
    const state = mkdtempSync(join(tmpdir(), 'dynamo-lab-engine-state-'));
    try {
      const argv = [...cliArgv(), 'start', '--lab', 'kv-routing', '--target', 'local', '--engine', 'dynamo', '--yes', '--json', '--reset'];
      const r = await execa(argv[0]!, argv.slice(1), {
        reject: false,
        env: { ...process.env, XDG_STATE_HOME: state, CI: 'true', FORCE_COLOR: '0' },
        timeout: 540_000,
      });
      assert.equal(r.exitCode, 0, `exit ${r.exitCode}\n${r.stderr.slice(-3000)}`);
      const out = JSON.parse(r.stdout) as { status: string; steps: Array<{ id: string; status: string; results?: Table[] }>; demo: Demo[] };
      assert.equal(out.status, 'finished');
      for (const s of out.steps) assert.equal(s.status, 'done', `step ${s.id} is ${s.status}`);

      const kv = out.demo.filter((d) => d.mode === 'kv' && d.group === 'shared-prefix');
      assert.equal(kv.length, 3);
      assert.ok(kv[0]!.worker, 'the frontend named the worker (nvext worker_id)');
      assert.deepEqual(
        new Set(kv.map((d) => d.worker)).size,
        1,
        `kv should keep the series on one worker: ${kv.map((d) => d.worker).join(', ')}`,
      );
      for (const d of kv.slice(1))
        assert.ok((d.cached_tokens ?? 0) >= 16, `later kv requests reuse at least one block, got ${d.cached_tokens}`);
      // Round-robin alternates within each run (each run starts on a restarted mocker, so the first
      // request of a run may land where the previous run's last one did).
      for (const step of ['demo-round-robin', 'long-round-robin']) {
        const rr = tableOf(out.steps, step).map((row) => row.worker);
        assert.equal(rr.length, step === 'demo-round-robin' ? 5 : 12);
        for (let i = 1; i < rr.length; i++) assert.notEqual(rr[i], rr[i - 1], `${step}: round-robin alternates (${rr.join(', ')})`);
      }

      // dynamo-lab's router indexed the mocker's real KV events (NATS): blocks exactly on the workers
      // that served the kv demo just before the view (Dynamo's kv may put both groups on one worker;
      // later runs, e.g. the four-worker long-prefix fleet, are not in this view).
      const served = new Set(tableOf(out.steps, 'demo-kv').map((row) => row.worker));
      const view = tableOf(out.steps, 'router-view');
      assert.equal(view.length, 2, JSON.stringify(view));
      for (const w of view) {
        const blocks = Number(w['cached blocks']);
        if (served.has(w.worker!))
          assert.ok(blocks > 0, `${w.worker} served the kv demo, so the router indexed blocks for it: ${JSON.stringify(view)}`);
        else assert.equal(blocks, 0, `${w.worker} served nothing, so it holds no indexed blocks: ${JSON.stringify(view)}`);
      }

      // dynamo-lab's router in place of Dynamo's: the frontend (--router-mode direct) forwarded every
      // request to the worker the router chose, and the mocker reported the cached tokens it predicted.
      const own = out.steps.find((s) => s.id === 'own-router')!;
      const checks = (own.results ?? []).filter((x) => x.kind === 'check');
      assert.ok(checks.length >= 2 && checks.every((c) => c.ok), JSON.stringify(checks));
      const proof = tableOf(out.steps, 'own-router');
      assert.equal(proof.length, 5);
      for (const row of proof) {
        assert.match(row['router chose']!, /^worker-[01]$/);
        assert.equal(row['frontend sent to'], row['router chose'], JSON.stringify(row));
        assert.equal(row['served by'], row['router chose'], JSON.stringify(row));
        assert.equal(row.predicted, row.cached, JSON.stringify(row));
      }
      assert.ok(proof.filter((row) => Number(row.cached) > 0).length >= 3, `the series reused cached blocks: ${JSON.stringify(proof)}`);

      // The step log (the lab's output per step): find the log-inspection step's lines.
      const logs = (function find(dir: string): string[] {
        return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? find(join(dir, e.name)) : [join(dir, e.name)]));
      })(state).filter((f) => /kv-routing-local-.*\.log$/.test(f) && !f.endsWith('-components.log'));
      assert.equal(logs.length, 1, `one step log under ${state}: ${logs.join(', ')}`);
      const text = readFileSync(logs[0]!, 'utf8');
      const section = text.slice(text.indexOf('(grep-cache-lines)'), text.indexOf('(long-fleet)'));
      const selected = [...section.matchAll(/Selected worker router_mode="(kv|round-robin|direct)".*?worker_id=(\d+) \((worker-\d)/g)];
      assert.equal(selected.filter((m) => m[1] === 'kv').length, 5, `five kv decisions in the log step:\n${section.slice(0, 2000)}`);
      assert.equal(selected.filter((m) => m[1] === 'round-robin').length, 5, 'five round-robin decisions');
      assert.equal(
        new Set(
          selected
            .filter((m) => m[1] === 'kv')
            .slice(0, 3)
            .map((m) => m[2]),
        ).size,
        1,
        'the frontend logged one worker for the shared-prefix series',
      );
      assert.deepEqual(
        selected.filter((m) => m[1] === 'direct').map((m) => m[3]),
        proof.map((row) => row['router chose']),
        "the frontend's direct-mode lines name the workers dynamo-lab's router chose, in order",
      );
      assert.match(text, /ports [\d, ]+ are free/);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });
});
