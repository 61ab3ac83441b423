/**
 * `dynamo-lab start --lab kv-routing --target local --engine dynamo --yes --json`: the kv-routing
 * lab end to end on the real Dynamo 1.6.1 frontend + mocker from the peers venv. Skipped when the
 * venv is missing; DYNAMO_LAB_REQUIRE_DYNAMO=1 makes a missing venv a failure.
 *
 * Checks: every step done; kv keeps the shared-prefix series on one worker with cached tokens
 * reported by the real frontend; round-robin alternates; the log-inspection step printed the real
 * frontend's `Selected worker` lines naming the workers the demo saw; the step log shows the
 * embedded router's view built from the mocker's NATS KV events; every port is free afterwards.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { cliArgv } from '../../scripts/peers/common.js';
import { ensureVenv } from '../../src/engine/venv.js';

let skip: string | false = false;
try {
  await ensureVenv({ create: false });
} catch (e) {
  if (process.env.DYNAMO_LAB_REQUIRE_DYNAMO === '1') throw new Error(`DYNAMO_LAB_REQUIRE_DYNAMO=1 but ${(e as Error).message}`);
  skip = `no peers venv (run npm run bench:peers once to create it): ${(e as Error).message.split('\n')[0]}`;
}
// DYNAMO_LAB_REQUIRE_DYNAMO=0 turns this tier off even where a venv exists (CI: a venv left on the
// machine by hand must not decide what CI runs).
if (process.env.DYNAMO_LAB_REQUIRE_DYNAMO === '0') skip = 'the real-Dynamo tier is off (DYNAMO_LAB_REQUIRE_DYNAMO=0)';

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
      const out = JSON.parse(r.stdout) as { status: string; steps: Array<{ id: string; status: string }>; demo: Demo[] };
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
      const rr = out.demo.filter((d) => d.mode === 'round-robin');
      for (let i = 1; i < rr.length; i++) assert.notEqual(rr[i]!.worker, rr[i - 1]!.worker, 'round-robin alternates');

      // The step log (the lab's output per step): find the log-inspection step's lines.
      const logs = (function find(dir: string): string[] {
        return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? find(join(dir, e.name)) : [join(dir, e.name)]));
      })(state).filter((f) => /kv-routing-local-.*\.log$/.test(f) && !f.endsWith('-components.log'));
      assert.equal(logs.length, 1, `one step log under ${state}: ${logs.join(', ')}`);
      const text = readFileSync(logs[0]!, 'utf8');
      const section = text.slice(text.indexOf('(grep-cache-lines)'), text.indexOf('(remove-deployment)'));
      const selected = [...section.matchAll(/Selected worker router_mode="(kv|round-robin)".*?worker_id=(\d+)/g)];
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

      // dynamo-lab's router indexed the mocker's real KV events (NATS): blocks exactly on the workers that served kv requests.
      const view = text.slice(text.indexOf('(router-view)'), text.indexOf('(demo-round-robin)'));
      const cached = new Map([...view.matchAll(/^\s*(worker-\d+)\s+(\d+)\s/gm)].map((m) => [m[1]!, Number(m[2])]));
      assert.equal(cached.size, 2, view);
      const served = new Set(out.demo.filter((d) => d.mode === 'kv').map((d) => d.worker));
      for (const [w, blocks] of cached) {
        if (served.has(w)) assert.ok(blocks > 0, `${w} served kv requests, so the router indexed blocks for it:\n${view}`);
        else assert.equal(blocks, 0, `${w} served nothing, so it holds no indexed blocks:\n${view}`);
      }
      assert.match(text, /ports [\d, ]+ are free/);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });
});
