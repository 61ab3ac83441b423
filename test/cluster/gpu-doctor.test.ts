/**
 * Cluster tier: `check gpu`, `doctor`, context handling and the error paths (unreachable
 * cluster, unknown context, RBAC denial) against a real kube-apiserver + etcd + kwok.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../scripts/cluster-env/control-plane.js';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT, helmForTests, realHelm } from './real-parts.js';
import { skipReason, start, runCli, helmStub, createPod, ensureNs, envFor, waitPodReady, type HelmStub } from './helpers.js';
import { probeCluster } from '../../src/cluster/index.js';

const skip = skipReason();

describe('cluster: check gpu, doctor, contexts and errors', { skip, timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let custom: k8s.CustomObjectsApi;
  let stub: HelmStub;

  before(async () => {
    ({ cp, core, custom } = await start());
    stub = helmStub();
  });
  after(async () => {
    await cp?.stop();
    stub?.remove();
  });

  it('probeCluster: reachable for the test cluster, unreachable (fast) for a closed port', async () => {
    const ok = await probeCluster({ kubeconfig: cp.kubeconfig });
    assert.equal(ok.reachable, true);
    assert.match(ok.version ?? '', /^v1\.\d+/);
    const t0 = performance.now();
    const bad = await probeCluster({ kubeconfig: cp.kubeconfigUnreachable });
    assert.equal(bad.reachable, false);
    assert.match(bad.reason ?? '', /ECONNREFUSED|cannot reach/);
    assert.ok(performance.now() - t0 < 3500, 'probe must answer within ~3 s');
    const none = await probeCluster({ kubeconfig: '/nonexistent/kubeconfig' });
    assert.equal(none.reachable, false);
  });

  it('check gpu --json: two fake nodes with 1 GPU each, 2 free, enough for the lab', async () => {
    const r = await runCli(['check', 'gpu', '--json'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(
      doc.nodes.map((n: { name: string; capacity: number; allocatable: number; free: number }) => [
        n.name,
        n.capacity,
        n.allocatable,
        n.free,
      ]),
      [
        ['gpu-node-1', 1, 1, 1],
        ['gpu-node-2', 1, 1, 1],
      ],
    );
    assert.equal(doc.total.free, 2);
    assert.equal(doc.need, 2);
    assert.equal(doc.enough, true);
  });

  it("check gpu: another lab's DGD holding a GPU -> not enough, names it and how to clean it (exit 1)", async () => {
    await ensureNs(core, 'lab1');
    await custom.createNamespacedCustomObject({
      group: 'nvidia.com',
      version: 'v1alpha1',
      namespace: 'lab1',
      plural: 'dynamographdeployments',
      body: {
        apiVersion: 'nvidia.com/v1alpha1',
        kind: 'DynamoGraphDeployment',
        metadata: { name: 'vllm-disagg-router' },
        spec: { services: {} },
      },
    });
    await createPod(core, {
      namespace: 'lab1',
      name: 'vllm-disagg-router-decode-0',
      labels: { 'nvidia.com/dynamo-graph-deployment-name': 'vllm-disagg-router', 'nvidia.com/dynamo-component': 'VllmDecodeWorker' },
      gpus: 1,
      nodeName: 'gpu-node-1',
    });
    await createPod(core, { namespace: 'lab1', name: 'cpu-only', labels: {}, nodeName: 'gpu-node-2' });
    await waitPodReady(core, 'lab1', 'vllm-disagg-router-decode-0');

    const human = await runCli(['check', 'gpu'], envFor(cp, stub));
    assert.equal(human.code, 1);
    assert.match(human.stdout, /gpu-node-1\s+1\s+1\s+1\s+0/);
    assert.match(human.stdout, /lab1\/vllm-disagg-router-decode-0: 1 GPU\(s\) on gpu-node-1/);
    assert.match(human.stdout, /lab1: 1 GPU\(s\)/);
    assert.match(human.stderr, /lab1\/vllm-disagg-router: 1 GPU\(s\)/);
    assert.match(human.stderr, /kubectl delete dynamographdeployment vllm-disagg-router -n lab1/);
    assert.match(human.stderr, /Error: Only 1 GPU\(s\) free, the lab needs 2/);

    const js = await runCli(['check', 'gpu', '--json'], envFor(cp, stub));
    assert.equal(js.code, 1);
    const doc = JSON.parse(js.stdout); // exactly one JSON document even on failure
    assert.equal(doc.enough, false);
    assert.equal(doc.total.free, 1);
    assert.equal(doc.namespaces.lab1, 1);
    assert.equal(doc.holders[0].name, 'vllm-disagg-router');

    const one = await runCli(['check', 'gpu', '--need', '1'], envFor(cp, stub));
    assert.equal(one.code, 0, one.stderr);
  });

  it("the dry-run script's GPU check (kubectl and awk, no dynamo-lab) agrees with check gpu: 1 of 2 free, the lab's own DGD counts as free", async () => {
    const helper = readFileSync(join(REPO_ROOT, 'manifests', 'script', 'lab-gpu-check.sh'), 'utf8');
    const run = (need: number, dgd: string) =>
      spawnSync('bash', ['-c', `set -euo pipefail\n${helper}\nlab_gpu_check ${need} ${dgd}`], {
        encoding: 'utf8',
        // kubectl keeps its discovery cache under $HOME/.kube: a throw-away home, not the checkout.
        env: { PATH: '/usr/bin:/bin', KUBECONFIG: cp.kubeconfig, HOME: cp.dir },
        timeout: 60_000,
      });
    const two = run(2, 'vllm-kv-demo');
    assert.equal(two.status, 1, two.stdout + two.stderr);
    assert.match(two.stdout, /gpu-node-1\s+1\n/);
    assert.match(two.stdout, /lab1\/vllm-disagg-router-decode-0 {2}1 GPU\(s\)\n/);
    assert.match(two.stdout, /Free GPUs: 1 of 2; the lab needs 2/);
    assert.match(two.stderr, /Not enough free GPUs/);
    const one = run(1, 'vllm-kv-demo');
    assert.equal(one.status, 0, one.stdout + one.stderr);
    const own = run(2, 'vllm-disagg-router');
    assert.equal(own.status, 0, own.stdout + own.stderr);
    assert.match(own.stdout, /vllm-disagg-router-decode-0 {2}1 GPU\(s\) {2}\(this lab\)/);
    assert.match(own.stdout, /Free GPUs: 2 of 2/);
  });

  it('RBAC denial: a user with no rights gets a 403 that names the verb and resource', async () => {
    const r = await runCli(['check', 'gpu'], { ...envFor(cp, stub), KUBECONFIG: cp.kubeconfigNobody });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Permission denied \(403 Forbidden\): you may not list nodes/);
    assert.match(r.stderr, /kubectl auth can-i list nodes/);
    assert.doesNotMatch(r.stderr, /Unexpected error/);
  });

  it('--context selects a context from the kubeconfig; an unknown one is refused with the list', async () => {
    const r = await runCli(['check', 'gpu', '--context', 'nobody'], envFor(cp, stub));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /403/);
    const bad = await runCli(['check', 'gpu', '--context', 'nope'], envFor(cp, stub));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Context "nope" is not in your kubeconfig/);
    assert.match(bad.stderr, /admin, nobody/);
  });

  it('no reachable cluster: fast, clear, suggests --target local', async () => {
    const r = await runCli(['check', 'gpu'], { ...envFor(cp, stub), KUBECONFIG: cp.kubeconfigUnreachable });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /No Kubernetes cluster is reachable/);
    assert.match(r.stderr, /--target local/);
    const none = await runCli(['doctor'], { ...envFor(cp, stub), KUBECONFIG: '/nonexistent/kubeconfig' });
    assert.equal(none.code, 1);
    assert.match(none.stdout, /Kubernetes context: Could not read|Kubernetes context: No Kubernetes/);
  });

  it('401: a token the API server does not know is reported as rejected credentials', async () => {
    const bad = join(cp.dir, 'kubeconfig-badtoken');
    writeFileSync(bad, readFileSync(cp.kubeconfig, 'utf8').replace(/token: admin-\S+/, 'token: not-a-valid-token'));
    const r = await runCli(['check', 'gpu'], { ...envFor(cp, stub), KUBECONFIG: bad });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /rejected your credentials \(401 Unauthorized\)/);
  });

  it('timeout: an API server that accepts connections but never answers fails within seconds', async () => {
    // The silent server listens on a port whose number contains "401" (40100-40199 first): the
    // CLI once reported such a timeout as "rejected your credentials (401 Unauthorized)" because it
    // looked for "401" in a reason that names the server's URL.
    let reached = 0;
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => {
      reached++;
      sockets.add(s);
      s.on('error', () => {});
      /* never answer */
    });
    silent.on('error', () => {});
    const listenOn = (p: number) =>
      new Promise<boolean>((res) => {
        const fail = () => res(false);
        silent.once('error', fail);
        silent.listen(p, '127.0.0.1', () => {
          silent.off('error', fail);
          res(true);
        });
      });
    let bound = false;
    for (let p = 40100; p < 40200 && !bound; p++) bound = await listenOn(p);
    if (!bound) assert.ok(await listenOn(0), 'could not listen at all');
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const hung = join(cp.dir, 'kubeconfig-hung');
      writeFileSync(
        hung,
        readFileSync(cp.kubeconfig, 'utf8').replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${port}`),
      );
      const r = await runCli(['check', 'gpu'], { ...envFor(cp, stub), KUBECONFIG: hung });
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /No Kubernetes cluster is reachable: cannot reach the API server at https:\/\/127\.0\.0\.1:\d+ \(ETIMEDOUT\)/,
        `port ${port}; connections the silent server saw: ${reached}`,
      );
      assert.doesNotMatch(r.stderr, /Unauthorized/);
      assert.ok(reached >= 1, 'the request reached the silent server');
      assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('doctor --json: one document; CRD served versions, GPUs held by another lab, no operator', async () => {
    // The real helm (scripts/cluster-env/build-helm.sh) when built, checked against the table's minimum.
    const helmEnv = existsSync(realHelm()) ? { HELM_BIN: realHelm() } : {};
    const r = await runCli(['doctor', '--json'], envFor(cp, stub, helmEnv));
    assert.equal(r.code, 1, 'failures (no operator, GPUs) -> exit 1');
    const doc = JSON.parse(r.stdout);
    const by = Object.fromEntries(doc.checks.map((c: { id: string }) => [c.id, c]));
    assert.equal(by.helm.status, 'ok');
    assert.match(by.helm.detail, existsSync(realHelm()) ? /^v3\.22\.0.*\(>= 3\.13\.0\)$/ : /v3\.17\.2.*\(>= 3\.13\.0\)/);
    assert.equal(by.api.status, 'ok');
    assert.equal(by.rbac.status, 'ok');
    assert.equal(by.crd.status, 'ok');
    assert.match(by.crd.detail, /v1beta1, v1alpha1.*deploy will use v1beta1/);
    assert.equal(by.operator.status, 'fail');
    assert.equal(by.gpu.status, 'fail');
    assert.match(by.gpu.fix, /kubectl delete dynamographdeployment vllm-disagg-router -n lab1/);
    assert.equal(by.nats.status, 'warn');
    assert.match(by.nats.fix, /dynamo-lab install nats/);
    assert.equal(doc.summary.fail >= 2, true);
  });

  it('doctor as a user without rights: the RBAC check lists what is missing', async () => {
    const r = await runCli(['doctor'], { ...envFor(cp, helmForTests()), KUBECONFIG: cp.kubeconfigNobody });
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /permissions for the lab: not allowed: list nodes \(cluster-wide\); list pods in dynamo; create dynamographdeployments\.nvidia\.com in dynamo/,
    );
  });

  it('item 10: doctor fails a helm older than the release table minimum (3.13, uninstall --ignore-not-found)', async () => {
    // A stub: the real helm cannot be made to report an old version.
    const r = await runCli(['doctor', '--json'], envFor(cp, stub, { HELM_STUB_VERSION: 'v3.12.3+g3a31588' }));
    const by = Object.fromEntries(JSON.parse(r.stdout).checks.map((c: { id: string }) => [c.id, c]));
    assert.equal(by.helm.status, 'fail');
    assert.match(by.helm.detail, /v3\.12\.3\+g3a31588: older than 3\.13\.0; `helm uninstall --ignore-not-found`/);
    assert.match(by.helm.fix, /Upgrade Helm to 3\.13\.0 or newer/);
  });

  it('doctor without helm warns and says how to get it', async () => {
    const r = await runCli(['doctor'], { ...envFor(cp), HELM_BIN: '/nonexistent/helm' });
    assert.match(r.stdout, /! helm binary: helm not found \(HELM_BIN=\/nonexistent\/helm\)/);
  });
});
