/**
 * The five seed labs as a person would print them: `dynamo-lab start --lab <id> --target cluster
 * --dry-run` must show the seeds' facts (namespaces, chart values, flags, NodePorts, labels),
 * never the HF token, and keep interactive commands print-only. Plus: labs/COVERAGE.md agrees
 * with the labs' `covers` fields.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runCli, tempStateDir } from '../helpers/cli.js';
import { packagePath } from '../../src/base/paths.js';
import { listLabIds, loadLab } from '../../src/lab/load.js';
import { flattenSteps } from '../../src/lab/types.js';
import { spawnSync } from 'node:child_process';
import { compileGrep, LOG_PATTERNS } from '../../src/cluster/logs.js';
import { toEre } from '../../src/cli/dry-script.js';

const SECRET = 'hf_dryrun_Secret_4242';

const scripts = new Map<string, Promise<string>>();

/** The dry-run script of a lab (stdout), after checking the exit code and that the token never shows. */
function dryRun(lab: string): Promise<string> {
  let p = scripts.get(lab);
  if (!p) {
    p = runCli(['start', '--lab', lab, '--target', 'cluster', '--dry-run'], {
      env: { DYNAMO_LAB_STATE_DIR: tempStateDir(), HF_TOKEN: SECRET },
      timeoutMs: 90_000,
    }).then((r) => {
      assert.equal(r.code, 0, `dry run of ${lab} exited ${r.code}\nstderr:\n${r.stderr}`);
      assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET), `${lab}: the HF_TOKEN value appears in the output`);
      return r.stdout;
    });
    scripts.set(lab, p);
  }
  return p;
}

function assertHas(script: string, lab: string, facts: readonly string[]): void {
  const missing = facts.filter((f) => !script.includes(f));
  assert.deepEqual(missing, [], `${lab}: the dry-run script lacks ${missing.map((m) => JSON.stringify(m)).join(', ')}`);
}

/** Lines of the script that are not comments (commands, and the inline python programs' lines). */
function runnableLines(script: string): string[] {
  return script.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
}

const SEED_LABS = ['kv-routing', 'distributed', 'grove', 'kv-demo', 'router-ab'] as const;

test('all five seed labs exist and load', () => {
  const ids = listLabIds();
  for (const id of SEED_LABS) assert.ok(ids.includes(id), `lab ${id} missing (found ${ids.join(', ')})`);
  const grove = loadLab('grove');
  assert.equal(grove.legacy, true, 'grove is the legacy 0.7.1 flow');
  assert.match(grove.title, /legacy/i);
  assert.match(grove.title, /0\.7\.1/);
  for (const id of ['distributed', 'grove', 'kv-demo', 'router-ab'])
    assert.equal(loadLab(id).legacy ?? false, id === 'grove', `${id}: legacy flag`);
});

for (const lab of SEED_LABS) {
  test(`${lab}: dry run prints no unresolved variables, and interactive commands only as run-by-hand`, { timeout: 120_000 }, async () => {
    const script = await dryRun(lab);
    assert.ok(script.startsWith('#!/usr/bin/env bash'), script.slice(0, 200));
    assert.doesNotMatch(script, /\$\{[A-Z_][A-Z0-9_]*\}/, `${lab}: a \${VAR} was left unsubstituted`);
    for (const l of runnableLines(script)) {
      assert.doesNotMatch(
        l,
        /\bport-forward\b|\bkubectl run -it\b|\s-w$|\s--follow\b/,
        `${lab}: interactive command not marked manual: ${l}`,
      );
    }
    // Legacy NATS chart keys (0.x chart) must not be used: the labs use the 1.x chart's config.jetstream.*.
    assert.ok(!script.includes('nats.jetstream.'), `${lab}: legacy nats.jetstream.* chart keys`);
  });
}

test('kv-routing (seed 000): NATS with JetStream, the kv deployment on NodePort 30200', { timeout: 120_000 }, async () => {
  assertHas(await dryRun('kv-routing'), 'kv-routing', [
    'helm repo add nats https://nats-io.github.io/k8s/helm/charts/',
    'nats/nats',
    'nats-system',
    'config.jetstream.enabled=true',
    'vllm-kv-demo',
    '--router kv',
    '--namespace dynamo',
    ':30200',
    '--version 2.14.2',
  ]);
});

test('distributed (seed 001): both discovery paths, NATS/etcd chart values, labels, NodePort, health checks', {
  timeout: 120_000,
}, async () => {
  const s = await dryRun('distributed');
  assertHas(s, 'distributed', [
    // path A: Kubernetes-native, no NATS
    "--nats-url ''",
    '--release 0.8.0',
    '--node-port 30200',
    'kubectl get endpointslices -n dynamo',
    // path B: NATS + etcd, with the seeds' chart values
    'helm repo add nats https://nats-io.github.io/k8s/helm/charts/',
    'helm upgrade --install nats nats/nats --namespace nats-system',
    '--set config.jetstream.enabled=true',
    '--set config.jetstream.fileStore.pvc.size=1Gi',
    '--set promExporter.enabled=true',
    '--set promExporter.port=7777',
    '--timeout 5m',
    'helm repo add bitnami https://charts.bitnami.com/bitnami',
    'helm upgrade --install etcd bitnami/etcd --namespace etcd-system',
    '--set replicaCount=1',
    '--set auth.rbac.create=false',
    '--set image.registry=docker.io',
    '--set image.repository=bitnamilegacy/etcd',
    '--set persistence.size=1Gi',
    '--set preUpgradeJob.enabled=false',
    '--version 2.14.2',
    '--version 12.0.20',
    '--discovery-backend etcd',
    '--router kv',
    '--nats-url nats://nats.nats-system:4222',
    'nats-sub -s nats://nats.nats-system:4222 test',
    'natsio/nats-box:latest',
    // deployment, labels, Service
    'vllm-distributed-demo',
    'vllm-distributed-demo-frontend-np',
    '--namespace dynamo',
    'nvidia.com/dynamo-graph-deployment-name=vllm-distributed-demo',
    'nvidia.com/dynamo-component-type=worker',
    '--timeout=300s',
    'Explain distributed systems in 2 sentences. Request',
    'dynamo-lab traffic --url',
    '--requests 30 --concurrency 3 --max-tokens 100',
    '--scenario distributed-hello',
    '--component VllmWorker --pattern nats',
    // monitoring and health
    'manifests/monitoring/podmonitor-nats.yaml',
    'manifests/monitoring/podmonitor-etcd.yaml',
    'kubectl exec -n nats-system nats-0 -c nats -- nats-server --version',
    'etcdctl endpoint health',
    'etcdctl member list',
    // cleanup, lab 1 untouched
    'kubectl delete dynamographdeployment vllm-distributed-demo -n dynamo',
    'vllm-disagg-router',
    'helm uninstall nats -n nats-system',
    'helm uninstall etcd -n etcd-system',
  ]);
  assert.ok(s.indexOf("--nats-url ''") < s.indexOf('helm upgrade --install nats'), 'path A (no NATS) comes before path B');
});

test('grove (seed 003): the 0.7.1 NATS + etcd flow', { timeout: 120_000 }, async () => {
  assertHas(await dryRun('grove'), 'grove', [
    '--release 0.7.1',
    '--api-version v1alpha1',
    'vllm-grove-demo',
    'vllm-grove-demo-frontend-np',
    '--node-port 30200',
    '--nats-url nats://nats.nats-system:4222',
    '--namespace dynamo',
    'helm upgrade --install nats nats/nats --namespace nats-system',
    '--set config.jetstream.fileStore.pvc.size=1Gi',
    '--set promExporter.port=7777',
    'helm upgrade --install etcd bitnami/etcd --namespace etcd-system',
    '--set image.repository=bitnamilegacy/etcd',
    '--set preUpgradeJob.enabled=false',
    '--version 2.14.2',
    '--version 12.0.20',
    'nvidia.com/dynamo-graph-deployment-name=vllm-grove-demo',
    "--grep 'nixl|grove|nats'",
    '--scenario grove-hello',
    'etcdctl endpoint health',
    'nats-server --version',
    'helm uninstall etcd -n etcd-system',
  ]);
});

test('kv-demo (seed 002): four workers in dynamo-cloud, the tests, overlap weight and temperature, three router modes', {
  timeout: 120_000,
}, async () => {
  assertHas(await dryRun('kv-demo'), 'kv-demo', [
    '--name kv-routing',
    '--namespace dynamo-cloud',
    '-n dynamo-cloud',
    '--workers 4',
    'Qwen/Qwen3-0.6B',
    '--router kv',
    '--kv-overlap-score-weight 1.0',
    'svc/kv-routing-frontend 8000:8000',
    '--scenario ml-system-prompt',
    '--scenario alice-conversation',
    '--scenario topics',
    '--requests 5 --concurrency 5 --max-tokens 100',
    '--component Frontend --pattern decisions --release 0.8.0',
    '--component VllmWorker --pattern cache',
    '--pattern events',
    '--kv-overlap-score-weight 1.5 --router-temperature 0.1',
    '--kv-overlap-score-weight 1.0 --router-temperature 0.0',
    '--router round-robin',
    '--router random',
    '--api-version v1alpha1',
    'kubectl delete dynamographdeployment kv-routing -n dynamo-cloud',
  ]);
});

test('router-ab (seed 004): namespaces, masked token, equal-health checkpoint, Mooncake trace, aiperf A/B', {
  timeout: 120_000,
}, async () => {
  const s = await dryRun('router-ab');
  assertHas(s, 'router-ab', [
    'kubectl create namespace router-off-test',
    'kubectl create namespace router-on-test',
    'kubectl create namespace benchmark',
    'kubectl create secret generic hf-token-secret --from-literal=HF_TOKEN=**** -n router-off-test',
    'dynamo-operator.namespaceRestriction.enabled=true',
    'manifests/router-ab/router-off-deployment.yaml -n router-off-test',
    'manifests/router-ab/router-on-deployment.yaml -n router-on-test',
    'dynamographdeployment/vllm-agg-no-router',
    'dynamographdeployment/vllm-agg-router',
    'pods -l nvidia.com/dynamo-component-type=worker -n router-off-test',
    'pods -l nvidia.com/dynamo-component-type=worker -n router-on-test',
    'manifests/router-ab/benchmark-job.yaml',
    'job-name=aiperf-benchmark',
    'job/aiperf-benchmark',
    'https://raw.githubusercontent.com/kvcache-ai/Mooncake/refs/heads/main/FAST25-release/arxiv-trace/mooncake_trace.jsonl 1000 4',
    '/tmp/mooncake_trace_4x.jsonl',
    '. /opt/dynamo/venv/bin/activate && pip install -q aiperf',
    'aiperf profile --model Qwen/Qwen3-32B --url http://vllm-agg-no-router-frontend.router-off-test.svc.cluster.local:8000',
    '--url http://vllm-agg-router-frontend.router-on-test.svc.cluster.local:8000',
    '--endpoint-type chat',
    '--custom-dataset-type mooncake_trace',
    '--tokenizer Qwen/Qwen3-32B',
    '--streaming',
    '--request-count 1000',
    '--fixed-schedule',
    '--output-artifact-dir /tmp/router_off_results',
    '--output-artifact-dir /tmp/router_on_results',
    'profile_export_aiperf.csv',
    'kubectl delete namespace benchmark',
  ]);
  assert.ok(
    s.indexOf('kubectl wait --for=condition=Ready pods -l nvidia.com/dynamo-component-type=worker') < s.indexOf('aiperf profile'),
    'the equal-health checkpoint comes before the benchmarks',
  );
});

// ---- labs/COVERAGE.md ------------------------------------------------------------------------

interface Row {
  readonly id: string;
  readonly coveredBy: string;
  readonly reason: string;
}

function coverageRows(): Row[] {
  const text = readFileSync(packagePath('labs', 'COVERAGE.md'), 'utf8');
  const rows: Row[] = [];
  for (const line of text.split('\n')) {
    const m = /^\| `([^`]+)` \| (?:\\\||[^|])*? \| ([^|]*) \| ((?:\\\||[^|])*) \|$/.exec(line);
    if (m) rows.push({ id: m[1]!, coveredBy: m[2]!.trim(), reason: m[3]!.trim() });
  }
  return rows;
}

test('COVERAGE.md lists every covers id of every lab, with the steps that declare it', () => {
  const rows = coverageRows();
  assert.ok(rows.length > 100, `only ${rows.length} rows parsed from COVERAGE.md`);
  const byId = new Map(rows.map((r) => [r.id, r]));
  assert.equal(byId.size, rows.length, 'a seed step id appears twice in COVERAGE.md');
  const declared = new Map<string, string[]>();
  for (const id of listLabIds()) {
    for (const { step } of flattenSteps(loadLab(id))) {
      for (const c of step.covers ?? []) declared.set(c, [...(declared.get(c) ?? []), `${id} / ${step.id}`]);
    }
  }
  for (const [c, where] of declared) {
    const row = byId.get(c);
    assert.ok(row, `covers id "${c}" (${where.join(', ')}) has no row in COVERAGE.md`);
    for (const w of where) assert.ok(row.coveredBy.includes(w), `COVERAGE.md row ${c} does not name ${w}`);
  }
  for (const r of rows) {
    if (r.coveredBy === '—' || r.coveredBy === '') {
      assert.ok(r.reason.length > 10, `COVERAGE.md row ${r.id} is not covered and gives no reason`);
      assert.ok(!declared.has(r.id), `COVERAGE.md says ${r.id} is not covered, but ${(declared.get(r.id) ?? []).join(', ')} covers it`);
    } else {
      for (const w of r.coveredBy.split(',').map((x) => x.trim())) {
        assert.ok(declared.get(r.id)?.includes(w), `COVERAGE.md says ${w} covers ${r.id}, but that step's covers field does not list it`);
      }
    }
  }
});

test('every seed has rows in COVERAGE.md', () => {
  const seeds = new Set(coverageRows().map((r) => r.id.slice(0, 3)));
  assert.deepEqual([...seeds].sort(), ['000', '001', '002', '003', '004']);
});

// ---- the dry run is a script that runs without dynamo-lab ------------------------------------

for (const lab of SEED_LABS) {
  test(`${lab}: the dry-run script passes bash -n`, { timeout: 120_000 }, async () => {
    const { spawnSync } = await import('node:child_process');
    const script = await dryRun(lab);
    const r = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
    assert.equal(r.status, 0, `${lab}: bash -n failed: ${r.stderr}`);
  });
}

test('kv-routing: `dynamo-lab deploy` is spelled out as kubectl apply heredocs, the token read from the environment', {
  timeout: 120_000,
}, async () => {
  const s = await dryRun('kv-routing');
  const runnable = runnableLines(s).join('\n');
  assert.doesNotMatch(runnable, /^dynamo-lab deploy/m, 'deploy is still a dynamo-lab call');
  assert.match(
    s,
    /kubectl apply --server-side --field-manager=dynamo-lab --force-conflicts -f - <<'EOF'\napiVersion: nvidia\.com\/v1alpha\d\nkind: DynamoGraphDeployment\n/,
  );
  assert.match(s, /kind: Service\n/);
  assert.match(s, /--from-literal=HF_TOKEN="\$\{HF_TOKEN:\?export HF_TOKEN first\}"/);
  assert.match(s, /kubectl wait --for=condition=Ready dynamographdeployment\/vllm-kv-demo/);
  // Helpers that only exist in dynamo-lab run only when it is installed.
  for (const l of runnableLines(s).filter((x) => /^\s*dynamo-lab /.test(x))) assert.fail(`bare dynamo-lab call: ${l}`);
});

/** A line that runs dynamo-lab as a command (not a mention such as --field-manager=dynamo-lab). */
const INVOKES = /(?:^|[;&|(]|\bthen|\bdo|\$\()\s*dynamo-lab\s/;

for (const lab of SEED_LABS) {
  test(`${lab}: the dry run calls no dynamo-lab command, except one that is marked with the reason it has no plain equivalent`, {
    timeout: 120_000,
  }, async () => {
    const lines = (await dryRun(lab)).split('\n');
    lines.forEach((l, i) => {
      const runByHand = l.startsWith('# run by hand: ') ? l.slice('# run by hand: '.length) : undefined;
      if (runByHand !== undefined) assert.doesNotMatch(runByHand, INVOKES, `${lab}: a run-by-hand line needs dynamo-lab: ${l}`);
      if (l.startsWith('#') || !INVOKES.test(l)) return;
      assert.match(lines[i - 1] ?? '', /^# needs dynamo-lab: \S.{20,}/, `${lab}, line ${i + 1}: a dynamo-lab call without a reason: ${l}`);
      assert.match(l, /^if command -v dynamo-lab >\/dev\/null; then /, `${lab}: it runs only when dynamo-lab is installed: ${l}`);
    });
  });
}

test('the spelled-out commands: demo and traffic as curl through lab_chat, logs as kubectl logs | grep, check gpu as kubectl + awk', {
  timeout: 120_000,
}, async () => {
  const kv = await dryRun('kv-demo');
  assert.match(kv, /^lab_chat\(\) \{$/m, 'the request helper is defined once at the top');
  assert.equal(kv.split('\n').filter((l) => l === 'lab_chat() {').length, 1);
  assert.match(kv, /curl -sS -N --fail-with-body/);
  assert.match(kv, /^lab_gpu_check 4 kv-routing$/m);
  // The conversation's second turn carries the first turn's answer.
  assert.match(kv, /^lab_answer_1=\$lab_answer$/m);
  assert.match(kv, /"role":"assistant","content":"'"\$lab_answer_1"'"/);
  // Traffic: 5 requests, 5 at a time, then a summary.
  assert.match(kv, /^for i in \$\(seq 1 5\); do$/m);
  assert.match(kv, /while \(\( \$\(jobs -rp \| wc -l\) >= 5 \)\); do wait -n; done/);
  assert.match(kv, /Tell me about topic number '"\$i"' in a few sentences\./);
  assert.match(kv, /^lab_summary "\$lab_out"$/m);
  // Logs: the operator's labels and the release's decision lines as an extended regex.
  assert.match(
    kv,
    /^kubectl logs --namespace dynamo-cloud -l nvidia\.com\/dynamo-graph-deployment-name=kv-routing,nvidia\.com\/dynamo-component=Frontend --all-containers --prefix --tail=100 \| sed 's\/\\x1b\\\[\[0-9;\]\*m\/\/g' \| grep -iE '\(Formula for worker_id=\[0-9\]\+/m,
  );
  assert.match(kv, /^# run by hand: kubectl logs .* --follow --max-log-requests 20 \| sed -u '[^']*' \| grep --line-buffered -iE /m);
  // The long texts are defined once and referenced from the bodies.
  const kvr = await dryRun('kv-routing');
  assert.equal(kvr.split('\n').filter((l) => l.startsWith('lab_text_support_guide_6000=')).length, 1);
  assert.ok(kvr.split('\n').filter((l) => l.includes('"$lab_text_support_guide_6000"')).length >= 8);
});

test('every log pattern as the script greps it (POSIX ERE, grep -iE) matches the same real log lines as the JS regex', () => {
  const fixtures = JSON.parse(readFileSync(packagePath('test', 'cluster', 'fixtures', 'log-lines.json'), 'utf8')) as Record<
    string,
    { lines: Array<{ text: string }> }
  >;
  // Every fixture's lines (the releases' frontends and the workers) under every release's patterns.
  const texts = Object.values(fixtures).flatMap((f) => (typeof f === 'object' && Array.isArray(f.lines) ? f.lines.map((l) => l.text) : []));
  assert.ok(texts.length > 10);
  for (const release of ['0.8.0', '1.0.2', '1.6.1']) {
    for (const name of Object.keys(LOG_PATTERNS)) {
      const re = compileGrep(undefined, name, release)!;
      const r = spawnSync('grep', ['-iE', toEre(re.source)], { input: `${texts.join('\n')}\n`, encoding: 'utf8' });
      assert.ok(r.status === 0 || r.status === 1, `grep -E rejected ${name} @${release}: ${r.stderr}`);
      assert.deepEqual(
        r.stdout.split('\n').filter(Boolean),
        texts.filter((t) => re.test(t)),
        `${name} @${release}: ${toEre(re.source)}`,
      );
    }
  }
});
