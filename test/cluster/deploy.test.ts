/**
 * Cluster tier: `deploy` (dry-run, version-aware apply, waits with progress, failure
 * diagnosis, NodePort conflicts, idempotence), `logs`, worker discovery + port-forward, the
 * NodePort URL, `cleanup`, and a missing CRD — against a real kube-apiserver + etcd + kwok, with
 * the test acting as the Dynamo operator.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../scripts/cluster-env/control-plane.js';
import { skipReason, start, runCli, spawnCli, createPod, envFor, setDgdReady, waitForObject, mergePatch, ROOT } from './helpers.js';
import { helmForTests } from './real-parts.js';
import { Cluster, loadKubeContext, discoverWorkers, portForwardPods, nodePortUrl, waitFor } from '../../src/cluster/index.js';

const skip = skipReason();
const NS = 'dynamo';
const DGD_LABEL = 'nvidia.com/dynamo-graph-deployment-name';

describe('cluster: deploy, wait, logs, port-forward, cleanup', { skip, timeout: 600_000 }, () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let custom: k8s.CustomObjectsApi;
  let ext: k8s.ApiextensionsV1Api;
  /** The real helm (CI builds it); deploy, cleanup and doctor run it against the test API server. */
  let stub: ReturnType<typeof helmForTests>;
  let httpServer: http.Server;
  let zmqServer: net.Server;
  /** The lab's DynamoGraphDeployment `name` as the API server stores it (v1beta1). */
  const getDgd = (name: string) =>
    custom.getNamespacedCustomObject({ group: 'nvidia.com', version: 'v1beta1', namespace: NS, plural: 'dynamographdeployments', name });

  before(async () => {
    // Stand-ins for a worker's OpenAI server (8000) and ZMQ publisher (5557), reached through kwok's port-forward.
    httpServer = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url, worker: 'fake-vllm' }));
    });
    zmqServer = net.createServer((s) => {
      s.write('KV-EVENTS\n');
      s.on('error', () => s.destroy());
    });
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => zmqServer.listen(0, '127.0.0.1', r));
    const forwards = [
      { port: 8000, target: (httpServer.address() as net.AddressInfo).port },
      { port: 5557, target: (zmqServer.address() as net.AddressInfo).port },
    ];
    ({ cp, core, custom, ext } = await start({ forwards }));
    stub = helmForTests();
  });
  after(async () => {
    await cp?.stop();
    stub?.remove();
    httpServer?.close();
    zmqServer?.close();
  });

  it('deploy --dry-run: v1beta1 (served by the cluster), exact requests, HF token masked, nothing created', async () => {
    const r = await runCli(['deploy', '--dry-run'], envFor(cp, stub, { HF_TOKEN: 'hf_supersecret123' }));
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /hf_supersecret123/);
    assert.match(r.stdout, /# PATCH \/api\/v1\/namespaces\/dynamo\/secrets\/hf-token-secret\?fieldManager=dynamo-lab&force=true/);
    assert.match(
      r.stdout,
      /# PATCH \/apis\/nvidia\.com\/v1beta1\/namespaces\/dynamo\/dynamographdeployments\/vllm-kv-demo\?fieldManager=dynamo-lab&force=true/,
    );
    assert.match(r.stdout, /# PATCH \/api\/v1\/namespaces\/dynamo\/services\/vllm-kv-frontend-np/);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    const [secret, dgd, svc] = docs;
    assert.equal(secret.stringData.HF_TOKEN, '***');
    assert.equal(dgd.apiVersion, 'nvidia.com/v1beta1');
    const worker = dgd.spec.components.find((c: { name: string }) => c.name === 'VllmWorker');
    assert.equal(worker.replicas, 2);
    assert.deepEqual(worker.podTemplate.spec.containers[0].args, [
      '--model',
      'Qwen/Qwen2.5-1.5B-Instruct',
      '--tensor-parallel-size',
      '1',
      '--enable-prefix-caching',
    ]);
    assert.equal(worker.podTemplate.spec.containers[0].resources.limits['nvidia.com/gpu'], '1');
    assert.deepEqual(worker.podTemplate.spec.containers[0].envFrom, [{ secretRef: { name: 'hf-token-secret' } }]);
    const fe = dgd.spec.components.find((c: { name: string }) => c.name === 'Frontend');
    assert.deepEqual(fe.podTemplate.spec.containers[0].args, [
      '--http-port',
      '8000',
      '--router-mode',
      'kv',
      '--kv-overlap-score-weight',
      '1.0',
    ]);
    assert.ok(
      fe.podTemplate.spec.containers[0].env.some((e: { name: string; value: string }) => e.name === 'DYN_ROUTER_MODE' && e.value === 'kv'),
    );
    assert.equal(svc.spec.type, 'NodePort');
    assert.equal(svc.spec.ports[0].nodePort, 30200);
    const nss = await core.listNamespace();
    assert.ok(!nss.items.some((n) => n.metadata?.name === NS), 'dry run must not create the namespace');
  });

  it('deploy --dry-run --json: v1alpha1 on request; router flags follow the Dynamo release', async () => {
    const old = JSON.parse(
      (await runCli(['deploy', '--dry-run', '--json', '--api-version', 'v1alpha1', '--release', '0.8.0'], envFor(cp, stub))).stdout,
    );
    const dgdOld = old.requests.find((q: { body: { kind: string } }) => q.body.kind === 'DynamoGraphDeployment').body;
    assert.equal(old.apiVersion, 'nvidia.com/v1alpha1');
    assert.deepEqual(dgdOld.spec.services.Frontend.extraPodSpec.mainContainer.args.slice(-2), ['--kv-overlap-score-weight', '1.0']);
    assert.equal(dgdOld.spec.services.VllmWorker.resources.limits.gpu, '1');
    assert.equal(dgdOld.spec.services.VllmWorker.envFromSecret, undefined, 'no HF_TOKEN and no secret -> no reference');
    assert.equal(dgdOld.spec.services.Frontend.extraPodSpec.mainContainer.image, 'nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.8.0');

    const neu = JSON.parse(
      (await runCli(['deploy', '--dry-run', '--json', '--release', '1.2.0', '--kv-overlap-score-weight', '2'], envFor(cp, stub))).stdout,
    );
    const fe = neu.requests.find((q: { body: { kind: string } }) => q.body.kind === 'DynamoGraphDeployment').body.spec.components[0];
    assert.deepEqual(fe.podTemplate.spec.containers[0].args, [
      '--http-port',
      '8000',
      '--router-mode',
      'kv',
      '--router-kv-overlap-score-credit',
      '1.0',
      '--router-prefill-load-scale',
      '2.0',
    ]);

    const rr = JSON.parse(
      (await runCli(['deploy', '--dry-run', '--json', '--router', 'round-robin', '--name', 'vllm-rr-demo'], envFor(cp, stub))).stdout,
    );
    const rrDgd = rr.requests.find((q: { body: { kind: string } }) => q.body.kind === 'DynamoGraphDeployment').body;
    assert.deepEqual(rrDgd.spec.components[0].podTemplate.spec.containers[0].args, ['--http-port', '8000', '--router-mode', 'round-robin']);
    assert.ok(
      rrDgd.spec.components[0].podTemplate.spec.containers[0].env.some(
        (e: { name: string; value: string }) => e.name === 'DYN_ROUTER_MODE' && e.value === 'round-robin',
      ),
    );
    assert.equal(
      rr.requests.find((q: { body: { kind: string } }) => q.body.kind === 'Service').body.metadata.name,
      'vllm-rr-demo-frontend-np',
    );

    const bad = await runCli(['deploy', '--dry-run', '--router', 'nope'], envFor(cp, stub));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--router: the router mode must be "kv", "round-robin" or "random", got "nope"/);
  });

  it('deploy --dry-run: the Dynamo release comes from the operator image (router flags and image follow it)', async () => {
    await core.createNamespace({ body: { metadata: { name: 'dynamo-system' } } });
    const apps = (await import('@kubernetes/client-node')).AppsV1Api;
    const kc = new (await import('@kubernetes/client-node')).KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    await kc.makeApiClient(apps).createNamespacedDeployment({
      namespace: 'dynamo-system',
      body: {
        metadata: { name: 'dynamo-platform-dynamo-operator-controller-manager' },
        spec: {
          selector: { matchLabels: { app: 'op' } },
          template: {
            metadata: { labels: { app: 'op' } },
            spec: { containers: [{ name: 'manager', image: 'nvcr.io/nvidia/ai-dynamo/kubernetes-operator:1.2.1' }] },
          },
        },
      },
    });
    const r = await runCli(['deploy', '--dry-run', '--json'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Dynamo release 1\.2\.1 \(from the operator image nvcr\.io\/nvidia\/ai-dynamo\/kubernetes-operator:1\.2\.1\)/);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.release, '1.2.1');
    const fe = doc.requests.find((q: { body: { kind: string } }) => q.body.kind === 'DynamoGraphDeployment').body.spec.components[0]
      .podTemplate.spec.containers[0];
    assert.equal(fe.image, 'nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.2.1');
    assert.ok(fe.args.includes('--router-kv-overlap-score-credit'));
  });

  it('deploy: applies server-side, waits for the DGD Ready condition and the pods, with live progress', async () => {
    const run = spawnCli(['deploy', '--json', '--timeout', '90s'], envFor(cp, stub, { HF_TOKEN: 'hf_supersecret123' }));
    // Act as the Dynamo operator: wait for the DGD, create its pods, then report Ready.
    await waitForObject(() => getDgd('vllm-kv-demo'));
    await run.waitFor(/pods ready 0\/3/);
    await setDgdReady(custom, NS, 'vllm-kv-demo', 'v1beta1', 'False', 'pods_not_ready');
    const labels = (component: string, type: string) => ({
      [DGD_LABEL]: 'vllm-kv-demo',
      'nvidia.com/dynamo-component': component,
      'nvidia.com/dynamo-component-type': type,
    });
    await createPod(core, {
      namespace: NS,
      name: 'vllm-kv-demo-frontend-0',
      labels: labels('Frontend', 'frontend'),
      nodeName: 'gpu-node-1',
    });
    await createPod(core, {
      namespace: NS,
      name: 'vllm-kv-demo-vllmworker-0',
      labels: labels('VllmWorker', 'worker'),
      gpus: 1,
      nodeName: 'gpu-node-1',
    });
    await createPod(core, {
      namespace: NS,
      name: 'vllm-kv-demo-vllmworker-1',
      labels: labels('VllmWorker', 'worker'),
      gpus: 1,
      nodeName: 'gpu-node-2',
    });
    await run.waitFor(/Ready=False \(pods_not_ready\) · pods ready 3\/3/);
    assert.equal(run.child.exitCode, null, 'every pod is ready, but the DGD is not: still waiting');
    await setDgdReady(custom, NS, 'vllm-kv-demo', 'v1beta1', 'True', 'all_resources_are_ready');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    // It ended on the DGD's Ready condition: its last progress line saw it (an early exit would not).
    assert.match(r.stderr, /Ready=True \(all_resources_are_ready\) · pods ready 3\/3/);
    assert.doesNotMatch(r.stdout + r.stderr, /hf_supersecret123/);
    assert.match(r.stderr, /Ready=False \(pods_not_ready\)/);
    assert.match(
      r.stderr,
      /applied DynamoGraphDeployment dynamo\/vllm-kv-demo \(nvidia\.com\/v1beta1, server-side, field manager dynamo-lab\)/,
    );
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.ready, true);
    assert.equal(doc.apiVersion, 'nvidia.com/v1beta1');
    assert.match(doc.url, /^http:\/\/127\.0\.0\.1:30200$/);

    const dgd = (await getDgd('vllm-kv-demo')) as { metadata: { managedFields: Array<{ manager: string; operation: string }> } };
    assert.ok(dgd.metadata.managedFields.some((m) => m.manager === 'dynamo-lab' && m.operation === 'Apply'));
    const svc = await core.readNamespacedService({ namespace: NS, name: 'vllm-kv-frontend-np' });
    assert.equal(svc.spec?.ports?.[0]?.nodePort, 30200);
    const secret = await core.readNamespacedSecret({ namespace: NS, name: 'hf-token-secret' });
    assert.equal(Buffer.from(secret.data!.HF_TOKEN!, 'base64').toString(), 'hf_supersecret123');
  });

  it('deploy again is idempotent (server-side apply, already Ready)', async () => {
    const r = await runCli(['deploy', '--timeout', '30s'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /vllm-kv-demo is Ready: http:\/\/127\.0\.0\.1:30200/);
    const dgd = (await getDgd('vllm-kv-demo')) as {
      spec: { components: Array<{ podTemplate: { spec: { containers: Array<{ envFrom?: unknown }> } } }> };
    };
    // The secret exists, so the workers keep referencing it even without $HF_TOKEN.
    assert.deepEqual(dgd.spec.components[1]!.podTemplate.spec.containers[0]!.envFrom, [{ secretRef: { name: 'hf-token-secret' } }]);
  });

  it('deploy with changed frontend settings waits for a new frontend pod, not the old still-Ready one', async () => {
    const run = spawnCli(
      ['deploy', '--kv-overlap-score-weight', '1.5', '--router-temperature', '0.1', '--release', '0.8.0', '--json', '--timeout', '60s'],
      envFor(cp, stub),
    );
    await run.waitFor(/waiting for Frontend to be replaced \(vllm-kv-demo-frontend-0 predates the change\)/);
    // The old frontend pod is Ready and the DGD says Ready, but it runs the old arguments. That
    // the command waits for the new pod is proven at the end: its result lists frontend-1, which
    // is created only below, and not frontend-0.
    assert.equal(run.child.exitCode, null, 'still waiting for the frontend to be replaced');
    const dgd = (await getDgd('vllm-kv-demo')) as {
      spec: { components: Array<{ podTemplate: { spec: { containers: Array<{ args: string[] }> } } }> };
    };
    assert.deepEqual(dgd.spec.components[0]!.podTemplate.spec.containers[0]!.args.slice(4), [
      '--kv-overlap-score-weight',
      '1.5',
      '--router-temperature',
      '0.1',
    ]);
    // The operator rolls the frontend: the old pod goes, a new one becomes Ready.
    await core.deleteNamespacedPod({ namespace: NS, name: 'vllm-kv-demo-frontend-0', gracePeriodSeconds: 0 });
    const labels = {
      [DGD_LABEL]: 'vllm-kv-demo',
      'nvidia.com/dynamo-component': 'Frontend',
      'nvidia.com/dynamo-component-type': 'frontend',
    };
    await createPod(core, { namespace: NS, name: 'vllm-kv-demo-frontend-1', labels, nodeName: 'gpu-node-1' });
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /the frontend settings changed/);
    const doc = JSON.parse(r.stdout);
    assert.ok(doc.pods.some((p: { name: string; ready: boolean }) => p.name === 'vllm-kv-demo-frontend-1' && p.ready));
    assert.ok(!doc.pods.some((p: { name: string }) => p.name === 'vllm-kv-demo-frontend-0'));
  });

  it('deploy failure: says why (insufficient GPUs, image pulls) with events and what to do', async () => {
    const run = spawnCli(
      ['deploy', '--name', 'vllm-kv-big', '--workers', '3', '--node-port', '30201', '--timeout', '8s'],
      envFor(cp, stub),
    );
    await waitForObject(() => getDgd('vllm-kv-big'));
    await setDgdReady(custom, NS, 'vllm-kv-big', 'v1beta1', 'False', 'insufficient_capacity');
    const labels = {
      [DGD_LABEL]: 'vllm-kv-big',
      'nvidia.com/dynamo-component': 'VllmWorker',
      'nvidia.com/dynamo-component-type': 'worker',
    };
    const pending = await createPod(core, { namespace: NS, name: 'vllm-kv-big-vllmworker-0', labels, gpus: 1 });
    await core.patchNamespacedPodStatus(
      {
        namespace: NS,
        name: 'vllm-kv-big-vllmworker-0',
        body: {
          status: {
            phase: 'Pending',
            conditions: [
              {
                type: 'PodScheduled',
                status: 'False',
                reason: 'Unschedulable',
                message: '0/2 nodes are available: 2 Insufficient nvidia.com/gpu.',
              },
            ],
          },
        },
      },
      mergePatch,
    );
    await core.createNamespacedEvent({
      namespace: NS,
      body: {
        metadata: { name: 'vllm-kv-big-vllmworker-0.sched' },
        involvedObject: { kind: 'Pod', name: 'vllm-kv-big-vllmworker-0', namespace: NS, uid: pending.metadata?.uid },
        reason: 'FailedScheduling',
        message: '0/2 nodes are available: 2 Insufficient nvidia.com/gpu.',
        type: 'Warning',
        count: 3,
        lastTimestamp: new Date(),
      },
    });
    await createPod(core, { namespace: NS, name: 'vllm-kv-big-vllmworker-1', labels });
    await core.patchNamespacedPodStatus(
      {
        namespace: NS,
        name: 'vllm-kv-big-vllmworker-1',
        body: {
          status: {
            phase: 'Pending',
            containerStatuses: [
              {
                name: 'main',
                image: 'nvcr.io/nvidia/ai-dynamo/vllm-runtime:9.9.9',
                imageID: '',
                ready: false,
                restartCount: 0,
                state: {
                  waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "nvcr.io/nvidia/ai-dynamo/vllm-runtime:9.9.9"' },
                },
              },
            ],
          },
        },
      },
      mergePatch,
    );
    const r = await run.done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /DynamoGraphDeployment "vllm-kv-big" in namespace "dynamo" is not ready after \d+s/);
    assert.match(r.stderr, /Ready=False \(insufficient_capacity\)/);
    assert.match(r.stderr, /vllm-kv-big-vllmworker-0: Pending — Unschedulable: 0\/2 nodes are available: 2 Insufficient nvidia\.com\/gpu/);
    assert.match(r.stderr, /dynamo-lab check gpu/);
    assert.match(r.stderr, /vllm-kv-big-vllmworker-1: Pending — ImagePullBackOff/);
    assert.match(r.stderr, /--release must match/);
    assert.match(r.stderr, /Pod\/vllm-kv-big-vllmworker-0: FailedScheduling: 0\/2 nodes are available/);
    assert.match(r.stderr, /warning: 0 GPU\(s\) free, 3 needed/);
    assert.doesNotMatch(r.stderr, /Unexpected error/);
  });

  it('deploy: a NodePort already taken by another Service is explained (422)', async () => {
    const r = await runCli(['deploy', '--name', 'vllm-kv-other', '--no-wait'], envFor(cp, stub));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /NodePort 30200 is already used by Service dynamo\/vllm-kv-frontend-np/);
    assert.match(r.stderr, /--node-port/);
  });

  it('deploy as a user without rights: 403 names what is missing', async () => {
    const r = await runCli(['deploy', '--no-wait'], { ...envFor(cp, stub), KUBECONFIG: cp.kubeconfigNobody });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /403 Forbidden/);
  });

  it('waitFor re-establishes watches after they end and still sees the change', async () => {
    const cluster = new Cluster(loadKubeContext({ kubeconfig: cp.kubeconfig, namespace: NS }));
    const labels = { [DGD_LABEL]: 'rewatch', 'nvidia.com/dynamo-component': 'Frontend' };
    const lines: string[] = [];
    let round = 0;
    const p = waitFor(cluster, {
      namespace: NS,
      labelSelector: `${DGD_LABEL}=rewatch`,
      expectedPods: 1,
      timeoutMs: 60_000,
      watchSeconds: 1,
      onProgress: (l) => lines.push(l),
      onWatch: (n) => (round = n),
    });
    // The first watch has ended and the second is up: the pod must be seen through a re-established one.
    await waitForObject(async () => {
      if (round < 2) throw new Error(`watch round ${round}`);
    });
    await createPod(core, { namespace: NS, name: 'rewatch-0', labels, nodeName: 'gpu-node-2' });
    const r = await p;
    assert.equal(r.ready, true);
    assert.ok(r.watches >= 2, `expected the watch to be re-established, got ${r.watches}`);
    assert.match(lines.join('\n'), /pods ready 0\/1/);
  });

  it('logs: component pods, lab patterns, --grep, --json, --follow until Ctrl+C', async () => {
    // kwok serves the file as the container log; it is in the CRI log format a kubelet writes.
    appendFileSync(
      cp.logsFile,
      [
        '2026-11-21T05:00:00.000000000Z stdout F INFO worker started, connecting to nats://nats.nats-system:4222',
        '2026-11-21T05:00:01.000000000Z stdout F INFO 11-21 05:00:01 [loggers.py:123] Engine 000: Avg prompt throughput: 412.3 tokens/s, Avg generation throughput: 95.1 tokens/s, Running: 2 reqs, Waiting: 0 reqs, GPU KV cache usage: 3.1%, Prefix cache hit rate: 62.5%',
        '2026-11-21T05:00:02.000000000Z stdout F 2026-11-21T05:00:02.123456Z  INFO dynamo_llm::kv_router::scheduler: Selected worker: worker_id=7587888160958628 dp_rank=0, logit: 9.250, cached blocks: 3, tree size: 41',
        '2026-11-21T05:00:03.000000000Z stdout F INFO unrelated line',
        '',
      ].join('\n'),
    );
    const cache = await runCli(['logs', '--component', 'VllmWorker', '--pattern', 'cache'], envFor(cp, stub));
    assert.equal(cache.code, 0, cache.stderr);
    assert.match(cache.stdout, /\[vllm-kv-demo-vllmworker-0\] .*Prefix cache hit rate/);
    assert.match(cache.stdout, /\[vllm-kv-demo-vllmworker-1\] .*Prefix cache hit rate/);
    assert.doesNotMatch(cache.stdout, /unrelated|frontend-0/);

    const nats = await runCli(['logs', '--component', 'worker', '--pattern', 'nats', '--json'], envFor(cp, stub));
    const doc = JSON.parse(nats.stdout);
    assert.equal(doc.pods.length, 2);
    assert.equal(doc.pods[0].lines.length, 1);
    assert.match(doc.pods[0].lines[0], /connecting to nats/);

    const fe = await runCli(['logs', '--component', 'frontend', '--pattern', 'decisions', '--release', '0.8.0'], envFor(cp, stub));
    assert.equal(fe.code, 0);
    assert.match(fe.stdout, /^.*Selected worker: worker_id=7587888160958628 dp_rank=0, logit: 9\.250, cached blocks: 3, tree size: 41\n$/);
    // The seed's grep finds nothing of it.
    const seed = await runCli(['logs', '--component', 'frontend', '--grep', '(routing|overlap|score)'], envFor(cp, stub));
    assert.doesNotMatch(seed.stdout, /Selected worker/);

    const none = await runCli(['logs', '--component', 'Planner'], envFor(cp, stub));
    assert.equal(none.code, 1);
    assert.match(none.stderr, /No pod of component "Planner".*\n.*Components found: (Frontend, VllmWorker|VllmWorker, Frontend)/);
    const badRe = await runCli(['logs', '--grep', '('], envFor(cp, stub));
    assert.equal(badRe.code, 2);

    const follow = spawnCli(
      ['logs', '--component', 'frontend', '--pattern', 'decisions', '--release', '1.6.1', '--follow'],
      envFor(cp, stub),
    );
    await follow.waitFor(/following/);
    appendFileSync(
      cp.logsFile,
      '2026-11-21T05:00:09.000000000Z stdout F 2026-11-21T05:00:09.000001Z  INFO dynamo_llm::kv_router::scheduler: Selected worker: worker_type=aggregated, worker_id=7587888160958631 dp_rank=0, logit: 4.000, effective cached blocks: 2\n2026-11-21T05:00:10.000000000Z stdout F INFO noise\n',
    );
    await follow.waitFor(/effective cached blocks: 2/, 20_000);
    // The line the released 1.6.1 frontend writes, colour codes and all (captured, in the fixture).
    const real = (
      JSON.parse(readFileSync(join(ROOT, 'test', 'cluster', 'fixtures', 'log-lines.json'), 'utf8')) as Record<
        string,
        { lines: Array<{ ansi?: string }> }
      >
    )['1.6.1']!.lines.find((l) => l.ansi)!.ansi!;
    appendFileSync(cp.logsFile, `2026-11-21T05:00:11.000000000Z stdout F ${real}\n`);
    await follow.waitFor(/logit\S*=\S*14\.1875/, 20_000);
    follow.child.kill('SIGINT');
    const fr = await follow.done;
    assert.equal(fr.code, 130);
    assert.doesNotMatch(fr.stdout, /noise/);
    assert.doesNotMatch(fr.stdout, /tree size: 41/, 'the 0.8 form is not a 1.6 decision line');
  });

  it("discoverWorkers + port-forward: local URLs reach the pods' 8000 and 5557 ports; nodePortUrl", async () => {
    const workers = await discoverWorkers(`${DGD_LABEL}=vllm-kv-demo,nvidia.com/dynamo-component-type=worker`, {
      kubeconfig: cp.kubeconfig,
      namespace: NS,
    });
    assert.deepEqual(
      workers.map((w) => w.name),
      ['vllm-kv-demo-vllmworker-0', 'vllm-kv-demo-vllmworker-1'],
    );
    const cluster = new Cluster(loadKubeContext({ kubeconfig: cp.kubeconfig, namespace: NS }));
    const errors: string[] = [];
    const h = await portForwardPods(cluster, workers, { onError: (pod, port, e) => errors.push(`${pod}:${port}: ${e.message}`) });
    try {
      assert.equal(h.workers.length, 2);
      for (const w of h.workers) {
        const res = await fetch(`${w.httpUrl}/v1/models`, { signal: AbortSignal.timeout(15_000) }).catch((e: Error) => {
          throw new Error(`${w.pod}: ${e.message}; port-forward errors: ${errors.join('; ') || 'none'}`);
        });
        assert.deepEqual(await res.json(), { path: '/v1/models', worker: 'fake-vllm' });
        const port = Number(new URL(w.zmqUrl!.replace('tcp:', 'http:')).port);
        // A ZMQ publisher keeps its stream open: read the greeting, then hang up ourselves.
        const got = await new Promise<string>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1');
          let buf = '';
          const timer = setTimeout(() => {
            s.destroy();
            reject(new Error(`${w.pod}: no data through the 5557 forward; port-forward errors: ${errors.join('; ') || 'none'}`));
          }, 15_000);
          s.on('data', (b) => {
            buf += b.toString();
            if (buf.endsWith('\n')) {
              clearTimeout(timer);
              s.destroy();
              resolve(buf);
            }
          });
          s.on('error', reject);
        });
        assert.equal(got, 'KV-EVENTS\n');
      }
    } finally {
      await h.close();
    }
    assert.equal(await nodePortUrl({ kubeconfig: cp.kubeconfig, namespace: NS }), 'http://127.0.0.1:30200');
  });

  it('deploy --workers-only: plain vLLM workers with ZMQ KV events for router --discover', async () => {
    const dry = await runCli(['deploy', '--workers-only', '--dry-run', '--json'], envFor(cp, stub));
    const dep = JSON.parse(dry.stdout).requests[0].body;
    assert.equal(dep.kind, 'Deployment');
    const c = dep.spec.template.spec.containers[0];
    assert.deepEqual(
      c.ports.map((p: { containerPort: number }) => p.containerPort),
      [8000, 5557],
    );
    assert.ok(c.args.includes('--kv-events-config'));
    assert.match(c.args[c.args.indexOf('--kv-events-config') + 1], /"publisher":"zmq","endpoint":"tcp:\/\/\*:5557"/);
    const r = await runCli(['deploy', '--workers-only', '--no-wait'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /router --discover app\.kubernetes\.io\/name=dynamo-lab-worker/);
  });

  it('cleanup: refuses without --yes when not interactive; --dry-run lists; --yes deletes; again is a no-op', async () => {
    const refuse = await runCli(['cleanup'], envFor(cp, stub));
    assert.equal(refuse.code, 2);
    assert.match(refuse.stderr, /--yes/);
    const dry = await runCli(['cleanup', '--dry-run'], envFor(cp, stub));
    assert.equal(dry.code, 0);
    assert.match(dry.stdout, /DELETE \/apis\/nvidia\.com\/v1beta1\/namespaces\/dynamo\/dynamographdeployments\/vllm-kv-demo/);
    assert.match(dry.stdout, /DELETE \/apis\/nvidia\.com\/v1beta1\/namespaces\/dynamo\/dynamographdeployments\/vllm-kv-big/);
    assert.match(dry.stdout, /DELETE \/api\/v1\/namespaces\/dynamo\/services\/vllm-kv-frontend-np/);
    assert.match(dry.stdout, /DELETE \/apis\/apps\/v1\/namespaces\/dynamo\/deployments\/dynamo-lab-workers/);
    assert.match(dry.stdout, /DELETE \/api\/v1\/namespaces\/dynamo\/secrets\/hf-token-secret/);
    assert.doesNotMatch(dry.stdout, /vllm-disagg-router|helm/);
    await getDgd('vllm-kv-demo');

    const r = await runCli(['cleanup', '--yes', '--json'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.ok(doc.results.every((x: { result: string }) => x.result === 'deleted'));
    await assert.rejects(core.readNamespacedService({ namespace: NS, name: 'vllm-kv-frontend-np' }));
    await assert.rejects(core.readNamespacedSecret({ namespace: NS, name: 'hf-token-secret' }));
    const again = await runCli(['cleanup', '--yes'], envFor(cp, stub));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing to clean up in namespace dynamo/);
  });

  it('missing CRD: deploy and doctor say the Dynamo platform is not installed', async () => {
    await ext.deleteCustomResourceDefinition({ name: 'dynamographdeployments.nvidia.com' });
    await waitForObject(async () => {
      const r = await runCli(['deploy', '--no-wait'], envFor(cp, stub));
      if (!/not installed/.test(r.stderr)) throw new Error('CRD still served');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /The DynamoGraphDeployment CRD \(dynamographdeployments\.nvidia\.com\) is not installed/);
      assert.match(r.stderr, /dynamo-platform/);
      return r;
    }, 30_000);
    const doc = JSON.parse((await runCli(['doctor', '--json'], envFor(cp, stub))).stdout);
    assert.equal(doc.checks.find((c: { id: string }) => c.id === 'crd').status, 'fail');
  });
});
