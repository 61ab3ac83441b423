/**
 * aiperf 0.13.0 from the peers venv, as bench:peers runs it (scripts/peers/aiperf.ts), against a
 * dynamo-lab sim: it replays a small fixed-schedule slice, its export reads back, and it leaves
 * nothing in the temp directory (aiperf puts its dataset files in <temp>/aiperf_mmap_<id>/ and
 * leaves that directory behind; startAiperf points it at the run's own directory and removes it).
 * Runs only when the venv exists, like dynamo.test.ts; off in CI.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { aiperfMmapBase, readAiperf, startAiperf } from '../../scripts/peers/aiperf.js';
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

  it('replays a slice and leaves no aiperf_mmap_* directory behind', { timeout: 300_000 }, async () => {
    const slice = join(dir, 'slice.jsonl');
    const lines = [0, 150, 300].map((t, i) => ({ timestamp: t, input_length: 700, output_length: 4, hash_ids: [1, 2 + i] }));
    writeFileSync(slice, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    // aiperf's own temp directory: a fresh one, so anything it leaves there is its own.
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
    assert.deepEqual(
      readdirSync(temp).filter((f) => f.startsWith('aiperf_mmap_')),
      [],
      'aiperf left its dataset directory in the temp directory',
    );
    assert.equal(existsSync(aiperfMmapBase(runDir)), false, 'the run directory still holds aiperf-mmap/');
  });
});
