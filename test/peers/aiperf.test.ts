/**
 * aiperf 0.13.0 from the peers venv, as bench:peers runs it (scripts/peers/aiperf.ts), against a
 * dynamo-lab sim: it replays a small fixed-schedule slice, its export reads back, and it leaves
 * nothing in the temp directory (aiperf alone leaves two IPC directories and an
 * aiperf_mmap_<id>/ there per run; startAiperf gives it a TMPDIR of its own and removes it).
 * Runs only when the venv exists, like dynamo.test.ts; off in CI.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readAiperf, startAiperf } from '../../scripts/peers/aiperf.js';
import { type Daemon, stopDaemon } from '../../scripts/peers/common.js';
import { buildModelDir, type ModelDir } from '../../scripts/peers/model.js';
import { startSims } from '../../scripts/peers/systems.js';
import { peersVenv } from '../helpers/peers-venv.js';
import { withTmpdir } from '../helpers/temp.js';

const { venv, skip } = await peersVenv();

describe('aiperf as bench:peers runs it (peers venv)', { skip }, () => {
  let dir: string;
  let model: ModelDir;
  let sim: Daemon | undefined;
  let url: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-aiperf-'));
    model = await buildModelDir(dir);
    const sims = await startSims({ model, dir, shape: { workers: 1, gpuBlocks: 4096, blockSize: 16, speedup: 0 } }, { zmq: false });
    sim = sims.daemon;
    url = sims.workers[0]!.url;
  });
  after(async () => {
    if (sim) await stopDaemon(sim);
    rmSync(dir, { recursive: true, force: true });
  });

  it('replays a slice and leaves nothing in the temp directory', { timeout: 300_000 }, async () => {
    const slice = join(dir, 'slice.jsonl');
    const lines = [0, 150, 300].map((t, i) => ({ timestamp: t, input_length: 700, output_length: 4, hash_ids: [1, 2 + i] }));
    writeFileSync(slice, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    // The temp directory startAiperf runs under: a fresh one, so anything left there is aiperf's.
    const temp = join(dir, 'temp');
    mkdirSync(temp);
    const runDir = join(dir, 'run');
    const aiperf = await withTmpdir(temp, () => startAiperf(venv!, model, url, slice, join(runDir, 'aiperf'), runDir));
    const code = await aiperf.exited;
    assert.equal(code, 0, `aiperf exited ${code}; log ${aiperf.logPath}`);
    const m = await readAiperf(join(runDir, 'aiperf'));
    assert.equal(m.requests, 3);
    assert.equal(m.errors, 0);
    assert.ok(m.ttft_ms.avg > 0, 'a TTFT was measured');
    // Nothing at all: aiperf alone would leave two IPC directories and an aiperf_mmap_<id>/ here.
    assert.deepEqual(readdirSync(temp), [], 'what aiperf left in the temp directory');
    assert.equal(existsSync(aiperf.tempDir), false, "aiperf's own TMPDIR is removed after a clean exit");
  });
});
