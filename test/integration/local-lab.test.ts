import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { portIsFree, runCli, tempStateDir } from '../helpers/cli.js';

interface LabJson {
  lab: string;
  target: string;
  status: string;
  sections: Array<{ id: string; status: string }>;
  demo: Array<{
    mode: string;
    group: string;
    prompt: string;
    worker: string;
    cached_tokens: number;
    prompt_tokens: number;
    ttft_ms: number;
  }>;
  endpoints: Array<{ id: string; url: string }>;
  progress_file: string;
}

test('start --target local --yes --json runs the whole kv-routing lab without a TTY', { timeout: 600_000 }, async () => {
  const state = tempStateDir();
  const r = await runCli(['start', '--target', 'local', '--yes', '--json'], { env: { DYNAMO_LAB_STATE_DIR: state }, timeoutMs: 580_000 });
  assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}`);
  const doc = JSON.parse(r.stdout) as LabJson; // exactly one JSON document on stdout
  assert.equal(doc.lab, 'kv-routing');
  assert.equal(doc.target, 'local');
  assert.equal(doc.status, 'finished');
  assert.deepEqual(
    doc.sections.map((s) => s.id),
    ['understand', 'start-workers', 'start-router', 'demo', 'inspect-logs', 'long-prefix', 'cleanup'],
  );
  for (const s of doc.sections) assert.equal(s.status, 'done', `section ${s.id}`);

  const kv = doc.demo.filter((d) => d.mode === 'kv' && d.group === 'shared-prefix');
  const rr = doc.demo.filter((d) => d.mode === 'round-robin' && d.group === 'shared-prefix');
  assert.deepEqual(
    kv.map((d) => d.prompt),
    ['Explain quantum computing', 'Explain quantum computing in simple terms', 'Explain quantum computing briefly'],
  );
  // kv: requests 2 and 3 follow request 1 and reuse its cached prefix.
  assert.ok(kv[0]!.worker, 'request 1 reports its worker');
  assert.equal(kv[1]!.worker, kv[0]!.worker);
  assert.equal(kv[2]!.worker, kv[0]!.worker);
  assert.equal(kv[0]!.cached_tokens, 0, 'caches were emptied before the run');
  assert.ok(kv[1]!.cached_tokens > 0 && kv[2]!.cached_tokens > 0, JSON.stringify(kv));
  for (const d of doc.demo) {
    assert.ok(d.prompt_tokens > 0 && d.cached_tokens <= d.prompt_tokens, JSON.stringify(d));
    assert.ok(d.ttft_ms > 0, 'TTFT is measured');
  }
  // round-robin: the three requests alternate between the two workers.
  assert.equal(rr.length, 3);
  assert.notEqual(rr[0]!.worker, rr[1]!.worker);
  assert.notEqual(rr[1]!.worker, rr[2]!.worker);
  assert.equal(rr[1]!.cached_tokens, 0, 'request 2 lands on a worker that never saw the prefix');

  // Nothing is left behind: every port the lab listened on is free again.
  assert.ok(doc.endpoints.length >= 3, 'two workers and the router');
  for (const e of doc.endpoints) assert.ok(await portIsFree(Number(new URL(e.url).port)), `${e.id} ${e.url} still listening`);
  // Progress was saved and says every step is done.
  assert.ok(existsSync(doc.progress_file));
  const progress = JSON.parse(readFileSync(doc.progress_file, 'utf8'));
  assert.ok(Object.values(progress.steps as Record<string, { status: string }>).every((s) => s.status === 'done'));
});

test('a usage error exits 2 with a message naming the problem', async () => {
  const r = await runCli(['start', '--target', 'moon']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--target must be local or cluster/);
  const u = await runCli(['frobnicate']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /Unknown command "frobnicate"/);
  const f = await runCli(['start', '--bogus']);
  assert.equal(f.code, 2);
  assert.match(f.stderr, /bogus/);
});

test('--version prints the package version; --help lists the commands', async () => {
  const pkg = JSON.parse(
    readFileSync(
      new URL(import.meta.url.includes('/dist/test/') ? '../../../package.json' : '../../package.json', import.meta.url),
      'utf8',
    ),
  ) as { version: string };
  const v = await runCli(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), pkg.version);
  const h = await runCli(['--help']);
  assert.equal(h.code, 0);
  for (const c of ['start', 'labs', 'router', 'sim', 'demo']) assert.match(h.stdout, new RegExp(`\\n  ${c}\\s`));
  const sh = await runCli(['start', '--help']);
  assert.match(sh.stdout, /--dry-run/);
});

test('an unknown lab is a usage error listing the labs', async () => {
  const r = await runCli(['start', '--lab', 'nope', '--target', 'local', '--yes'], { env: { DYNAMO_LAB_STATE_DIR: tempStateDir() } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no lab "nope"/);
  assert.match(r.stderr, /kv-routing/);
});

test('--dry-run prints the cluster commands as a script and runs nothing', async () => {
  const r = await runCli(['start', '--dry-run', '--target', 'cluster'], { env: { HF_TOKEN: 'hf_dontprintme' } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^#!\/usr\/bin\/env bash/);
  assert.match(r.stdout, /helm upgrade --install nats nats\/nats --namespace nats-system/);
  assert.match(r.stdout, /config\.jetstream\.enabled=true/);
  assert.match(r.stdout, /kubectl delete dynamographdeployment vllm-kv-demo --namespace dynamo/);
  assert.ok(!r.stdout.includes('hf_dontprintme'));
});
