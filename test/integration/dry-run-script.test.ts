/**
 * The dry-run script's request steps run without dynamo-lab: the helpers and the spelled-out
 * `demo` / `traffic` lines of the kv-demo and kv-routing scripts are run with bash and curl
 * (PATH without dynamo-lab) against a real router with simulated workers on loopback. Every
 * request answers; the first turns carry exactly the prompt `dynamo-lab demo` sends (same prompt
 * token count); a follow-up turn resends the conversation with the answer it got (more prompt
 * tokens, served from the cache on the same worker); traffic ends with its summary line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { SimWorker } from '../../src/sim/index.js';
import { RouterServer } from '../../src/server/router-server.js';
import { readdirSync } from 'node:fs';
import { runCli, tempStateDir } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

const bash5 = Number(spawnSync('bash', ['-c', 'echo "$BASH_VERSINFO"'], { encoding: 'utf8' }).stdout.trim()) >= 5;
const hasCurl = spawnSync('curl', ['--version']).status === 0;
const skip = !bash5 || !hasCurl ? 'needs bash 5 and curl' : false;

let workers: SimWorker[] = [];
let router: RouterServer;

before(async () => {
  if (skip) return;
  workers = await Promise.all([0, 1, 2, 3].map((i) => SimWorker.start({ id: `worker-${i}`, blockSize: 16, port: 0, speedup: 0 })));
  router = await RouterServer.start({
    workers: workers.map((w) => ({ id: w.id, url: w.url, onKvEvent: (l) => w.onKvEvent(l) })),
    blockSize: 16,
    port: 0,
    mode: 'kv',
    seed: 1,
  });
});

after(async () => {
  await router?.close();
  await Promise.all(workers.map((w) => w.close()));
});

async function dryRun(lab: string): Promise<string> {
  const r = await runCli(['start', '--lab', lab, '--target', 'cluster', '--dry-run'], {
    env: { DYNAMO_LAB_STATE_DIR: tempStateDir() },
    timeoutMs: 90_000,
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The helper functions and texts at the top of the script, and the spelled-out demo/traffic lines of one step. */
function pieces(script: string, stepId: string): { preamble: string; step: string } {
  const lines = script.split('\n');
  const start = lines.indexOf('set -euo pipefail') + 1;
  const end = lines.findIndex((l) => l.startsWith('# ====='));
  const at = lines.findIndex((l) => l.startsWith('# --- ') && l.endsWith(`[${stepId}]`));
  assert.ok(at > 0, `step ${stepId} in the script`);
  const block: string[] = [];
  let keep = false;
  for (const l of lines.slice(at + 1)) {
    if (l.startsWith('# --- ') || l.startsWith('# =====')) break;
    if (/^# dynamo-lab .*, spelled out:$/.test(l)) keep = /^# dynamo-lab (demo|traffic) /.test(l);
    else if (keep) block.push(l);
  }
  return { preamble: lines.slice(start, end).join('\n'), step: block.join('\n') };
}

/**
 * bash -c text, asynchronously: the router answering the requests runs in this process. The script
 * gets a TMPDIR of its own; `leftovers` is what it left there.
 */
function runBash(text: string): Promise<{ out: string; err: string; code: number | null; leftovers: string[] }> {
  const temp = tempDir('dl-bash-');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', text], { env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', TMPDIR: temp } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ out, err, code, leftovers: readdirSync(temp) });
    });
  });
}

interface Row {
  label: string;
  cached: number;
  prompt: number;
}
const ROW = /^TTFT\s+[\d.]+ ms\s+total\s+[\d.]+ ms\s+cached\/prompt\s+(\d+)\/(\d+)\s+(.*)$/;
const rows = (out: string): Row[] =>
  out
    .split('\n')
    .map((l) => ROW.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ cached: Number(m[1]), prompt: Number(m[2]), label: m[3]! }));

test('kv-demo: the conversation and the concurrent-load steps of the dry-run script run with bash and curl alone', {
  skip,
  timeout: 300_000,
}, async () => {
  const script = await dryRun('kv-demo');
  const mt = pieces(script, 'multi-turn');
  const load = pieces(script, 'load-concurrent');
  assert.doesNotMatch(mt.step + load.step, /dynamo-lab/, 'no dynamo-lab call left in these steps');
  const url = router.url;
  const r = await runBash(
    ['set -euo pipefail', mt.preamble, mt.step, load.step]
      .join('\n')
      .replaceAll('http://localhost:8000', url)
      // The simulated workers serve the default model; the lab names the one its cluster deploys.
      .replaceAll('Qwen/Qwen3-0.6B', 'Qwen/Qwen2.5-1.5B-Instruct'),
  );
  assert.equal(r.code, 0, `bash exited ${r.code}\nstdout:\n${r.out}\nstderr:\n${r.err}`);
  const rs = rows(r.out);
  const alice = rs.filter((x) => /^[12] {2}/.test(x.label));
  assert.equal(alice.length, 2, r.out);
  // Turn 2 resends system + turn 1 + the answer it got: longer, and its beginning comes from the cache (kv routing).
  assert.ok(alice[1]!.prompt > alice[0]!.prompt + 10, r.out);
  assert.ok(alice[1]!.cached >= 16, `turn 2 reused turn 1's blocks:\n${r.out}`);
  // The same first turn as `dynamo-lab demo` sends.
  const ref = await runCli(['demo', '--url', url, '--scenario', 'alice-conversation', '--json'], { timeoutMs: 60_000 });
  const refRows = (JSON.parse(ref.stdout) as { results: Array<{ prompt_tokens: number }> }).results;
  assert.equal(alice[0]!.prompt, refRows[0]!.prompt_tokens, 'turn 1 prompt tokens: script vs dynamo-lab demo');
  // Traffic: five requests, five at a time, then the summary.
  assert.equal(rs.filter((x) => /^request \d$/.test(x.label)).length, 5, r.out);
  assert.match(r.out, /^5 requests {2}TTFT ms p50 [\d.]+ {2}p90 [\d.]+ {2}p99 [\d.]+ {2}prompt tokens from cache \d+\/\d+$/m);
  assert.deepEqual(r.leftovers, [], 'files the script left in its temp directory');
});

test('kv-routing: the long-prefix step (8k-token texts in shell variables, a four-turn chat) sends what dynamo-lab demo sends', {
  skip,
  timeout: 300_000,
}, async () => {
  const script = await dryRun('kv-routing');
  const p = pieces(script, 'long-kv');
  const url = router.url;
  const r = await runBash(['set -euo pipefail', p.preamble, p.step].join('\n').replaceAll('http://<node-ip>:30200', url));
  assert.equal(r.code, 0, `bash exited ${r.code}\nstderr:\n${r.err.slice(0, 3000)}`);
  const rs = rows(r.out);
  assert.equal(rs.length, 12, r.out);
  const ref = await runCli(
    ['demo', '--url', url, '--scenario', 'long-system-prompt', '--scenario', 'long-document', '--scenario', 'long-chat', '--json'],
    {
      timeoutMs: 120_000,
    },
  );
  const refRows = (JSON.parse(ref.stdout) as { results: Array<{ prompt_tokens: number; group: string }> }).results;
  // Every request that is not a follow-up turn has exactly the tokens dynamo-lab's own demo sends.
  for (const i of [0, 1, 2, 3, 4, 5, 6, 7, 8])
    assert.equal(rs[i]!.prompt, refRows[i]!.prompt_tokens, `request ${i + 1} (${rs[i]!.label}): script vs dynamo-lab demo`);
  for (const x of rs) assert.ok(x.prompt > 7000, `${x.label}: ${x.prompt} prompt tokens`);
  // The chat's turns grow with the answers they carry, and each reuses the turn before from the cache.
  const chat = rs.slice(8);
  for (let i = 1; i < 4; i++) {
    assert.ok(chat[i]!.prompt > chat[i - 1]!.prompt, `turn ${i + 1} is longer than turn ${i}`);
    assert.ok(chat[i]!.cached >= chat[i - 1]!.prompt - 16, `turn ${i + 1} reused turn ${i}: ${JSON.stringify(chat)}`);
  }
});
