/**
 * --json: every exit path writes exactly one JSON document with the message and a hint, and the
 * message also goes to stderr. Unknown labs and commands are usage errors (exit 2) with a
 * "did you mean", and never show a file path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempStateDir } from '../helpers/cli.js';
import { commands } from '../../src/cli/commands/index.js';

function oneDoc(stdout: string): { error?: { message: string; hint?: string; kind: string; exit_code: number } } & Record<string, unknown> {
  const doc = JSON.parse(stdout) as Record<string, unknown>; // throws if there is more than one document
  return doc as never;
}

test('start --lab <unknown> --json: exit 2, one document, did-you-mean, no file path', async () => {
  const r = await runCli(['start', '--lab', 'kv-dem', '--json'], { env: { DYNAMO_LAB_STATE_DIR: tempStateDir() } });
  assert.equal(r.code, 2, r.stderr);
  const doc = oneDoc(r.stdout);
  assert.equal(doc.error?.kind, 'usage');
  assert.match(doc.error!.message, /no lab "kv-dem"/);
  assert.match(doc.error!.hint!, /Did you mean --lab kv-demo\?/);
  assert.doesNotMatch(r.stdout + r.stderr, /lab\.yaml|\/labs\//, 'a file path leaked');
  assert.match(r.stderr, /Error: There is no lab "kv-dem"/);
  // The labs are listed once.
  assert.equal((r.stderr.match(/kv-routing/g) ?? []).length, 1, r.stderr);
});

test('unknown command and bad flag with --json: exit 2, one document each', async () => {
  const a = await runCli(['strat', '--json']);
  assert.equal(a.code, 2);
  assert.match(oneDoc(a.stdout).error!.hint!, /Did you mean `dynamo-lab start`\?/);
  const b = await runCli(['start', '--bogus', '--json']);
  assert.equal(b.code, 2);
  assert.match(oneDoc(b.stdout).error!.message, /bogus/);
  assert.match(b.stderr, /bogus/);
});

test('start --target cluster --yes --json with an unreachable cluster: one document carrying the real reason', {
  timeout: 120_000,
}, async () => {
  const state = tempStateDir();
  const kubeconfig = join(state, 'kubeconfig');
  // A cluster at a loopback port nothing listens on.
  writeFileSync(
    kubeconfig,
    'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]\nusers: [{name: u, user: {token: abc}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
  );
  const r = await runCli(['start', '--target', 'cluster', '--yes', '--json'], {
    env: { DYNAMO_LAB_STATE_DIR: state, KUBECONFIG: kubeconfig },
    timeoutMs: 110_000,
  });
  assert.equal(r.code, 1, r.stderr);
  const doc = oneDoc(r.stdout);
  assert.equal(doc.status, 'failed');
  const err = doc.error as { message: string; hint?: string };
  assert.ok(err?.message, 'the document has an error message');
  assert.doesNotMatch(err.message, /exited with code 1$/, `only the exit code, not the reason: ${err.message}`);
  assert.ok(err.hint, 'the document has a hint');
  assert.match(r.stderr, /✗ /, 'the reason also goes to stderr');
  assert.match(String(doc.resume), /dynamo-lab start --lab kv-routing --target cluster/);
});

test('the global help lists every command with the summary its module declares', async () => {
  for (const c of commands) {
    const mod = await c.load();
    assert.equal(c.summary, mod.summary, `summary of ${c.name} differs from its module`);
    assert.equal(c.name, mod.name);
  }
});
