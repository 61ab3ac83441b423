/**
 * Cluster tier: `install nats|etcd` through a recording helm on HELM_BIN (exact argv, values,
 * verification of pods and Services against the real API server, helm failures, a missing
 * helm) and `cleanup --all` (helm uninstall + namespaces, idempotent).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../scripts/cluster-env/control-plane.js';
import { skipReason, start, runCli, helmStub, createPod, ensureNs, envFor, waitPodReady, ROOT, type HelmStub } from './helpers.js';
import { delimiter, join } from 'node:path';

const skip = skipReason();

describe('cluster: install nats|etcd and cleanup --all', { skip, timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let stub: HelmStub;
  const natsValues = join(ROOT, 'manifests', 'helm', 'nats-values.yaml');

  before(async () => {
    ({ cp, core } = await start());
    stub = helmStub();
  });
  after(async () => {
    await cp?.stop();
    stub?.remove();
  });

  /** What the chart would create: a Ready pod labelled with the release, and the Service. */
  async function fakeChart(ns: string, release: string, port: number): Promise<void> {
    await ensureNs(core, ns);
    await createPod(core, { namespace: ns, name: `${release}-0`, labels: { 'app.kubernetes.io/instance': release, 'app.kubernetes.io/name': release }, nodeName: 'gpu-node-1', containerName: release });
    await core.createNamespacedService({ namespace: ns, body: { metadata: { name: release }, spec: { selector: { 'app.kubernetes.io/instance': release }, ports: [{ name: 'client', port }] } } });
    await waitPodReady(core, ns, `${release}-0`);
  }

  it('install nats --dry-run: exact helm argv (shell-quoted) and the chart-1.x values; runs nothing', async () => {
    stub.reset();
    const r = await runCli(['install', 'nats', '--dry-run'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(lines.includes(`${stub.bin} repo add nats https://nats-io.github.io/k8s/helm/charts/ --force-update`), r.stdout);
    assert.ok(lines.includes(`${stub.bin} repo update nats`));
    assert.ok(lines.includes(`${stub.bin} upgrade --install nats nats/nats --namespace nats-system --create-namespace --values ${natsValues} --wait --timeout 5m`));
    assert.match(r.stdout, /config:\n {2}jetstream:\n {4}enabled: true/);
    assert.match(r.stdout, /promExporter:\n {2}enabled: true\n {2}port: 7777/);
    assert.doesNotMatch(r.stdout, /^nats:\n {2}jetstream/m, 'legacy chart keys must not be used');
    assert.deepEqual(stub.calls(), []);

    const js = JSON.parse((await runCli(['install', 'etcd', '--dry-run', '--json', '--context', 'admin'], envFor(cp, stub))).stdout);
    assert.deepEqual(js.commands[2].argv.slice(1), ['upgrade', '--install', 'etcd', 'bitnami/etcd', '--namespace', 'etcd-system', '--create-namespace', '--values', join(ROOT, 'manifests', 'helm', 'etcd-values.yaml'), '--wait', '--timeout', '5m', '--kube-context', 'admin']);
    assert.match(js.values, /repository: bitnamilegacy\/etcd/);
    assert.match(js.values, /preUpgradeHook:\n {2}enabled: false/);
  });

  it('install nats: repo add, repo update, upgrade --install, then verifies pods and Service', async () => {
    await fakeChart('nats-system', 'nats', 4222);
    stub.reset();
    const r = await runCli(['install', 'nats', '--json'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(stub.calls().map((c) => c.argv), [
      ['repo', 'add', 'nats', 'https://nats-io.github.io/k8s/helm/charts/', '--force-update'],
      ['repo', 'update', 'nats'],
      ['upgrade', '--install', 'nats', 'nats/nats', '--namespace', 'nats-system', '--create-namespace', '--values', natsValues, '--wait', '--timeout', '5m'],
    ]);
    assert.equal(stub.calls()[2]!.kubeconfig, cp.kubeconfig, 'helm sees the same KUBECONFIG');
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.url, 'nats://nats.nats-system:4222');
    assert.deepEqual(doc.pods, [{ name: 'nats-0', phase: 'Running', ready: true }]);
    assert.match(r.stderr, /\$ .*upgrade --install nats nats\/nats/);

    const again = await runCli(['install', 'nats'], envFor(cp, stub));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nats ready: nats:\/\/nats\.nats-system:4222/);
  });

  it('without HELM_BIN, `helm` is found on PATH', async () => {
    stub.reset();
    const r = await runCli(['install', 'nats'], { ...envFor(cp, stub), HELM_BIN: undefined, PATH: `${stub.dir}${delimiter}${process.env.PATH}` });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(stub.calls().length, 3);
    assert.match(r.stderr, /\$ helm upgrade --install nats nats\/nats/);
  });

  it('install etcd: a failing helm is reported with the command and a hint (exit 1)', async () => {
    const r = await runCli(['install', 'etcd'], envFor(cp, stub, { HELM_STUB_SCENARIO: 'fail-upgrade' }));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /helm failed \(exit 1\): .*upgrade --install etcd bitnami\/etcd/);
    assert.match(r.stderr, /timed out waiting for the condition/);
    assert.match(r.stderr, /did not become ready in time/);
  });

  it('install etcd: helm succeeds but no pods appear -> verification fails clearly', async () => {
    const r = await runCli(['install', 'etcd', '--timeout', '3s'], envFor(cp, stub));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /pods "app\.kubernetes\.io\/instance=etcd" in namespace "etcd-system" is not ready after \d+s/);
    assert.match(r.stderr, /Pods ready: 0\/1/);
  });

  it('install etcd with the chart\'s pods and Service present succeeds', async () => {
    await fakeChart('etcd-system', 'etcd', 2379);
    const r = await runCli(['install', 'etcd'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /etcd ready: http:\/\/etcd\.etcd-system:2379/);
  });

  it('install without helm says how to get it; unknown chart is a usage error', async () => {
    const r = await runCli(['install', 'nats'], { ...envFor(cp), HELM_BIN: '/nonexistent/helm' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /helm was not found \(HELM_BIN=\/nonexistent\/helm\)/);
    const u = await runCli(['install', 'redis'], envFor(cp, stub));
    assert.equal(u.code, 2);
  });

  it('a cluster that serves only v1alpha1: deploy picks the services shape', async () => {
    const ext = (await import('./helpers.js')).jsonPatch;
    const kc = new (await import('@kubernetes/client-node')).KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    const api = kc.makeApiClient((await import('@kubernetes/client-node')).ApiextensionsV1Api);
    await api.patchCustomResourceDefinition({ name: 'dynamographdeployments.nvidia.com', body: [
      { op: 'replace', path: '/spec/versions/0/storage', value: true },
      { op: 'replace', path: '/spec/versions/1/storage', value: false },
      { op: 'replace', path: '/spec/versions/1/served', value: false },
    ] }, ext);
    let doc: { apiVersion: string; served: string[]; requests: Array<{ body: { kind: string; spec: { services?: unknown } } }> } | undefined;
    for (let i = 0; i < 50; i++) {
      const r = await runCli(['deploy', '--dry-run', '--json'], envFor(cp, stub));
      assert.equal(r.code, 0, r.stderr);
      doc = JSON.parse(r.stdout);
      if (doc!.served.length === 1) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.deepEqual(doc!.served, ['v1alpha1']);
    assert.equal(doc!.apiVersion, 'nvidia.com/v1alpha1');
    assert.ok(doc!.requests.find((q) => q.body.kind === 'DynamoGraphDeployment')!.body.spec.services);
    const bad = await runCli(['deploy', '--dry-run', '--api-version', 'v1beta1'], envFor(cp, stub));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /does not serve nvidia\.com\/v1beta1 .*serves v1alpha1/);
  });

  it('cleanup --all: uninstalls the releases and deletes their namespaces; a second run is a no-op', async () => {
    const dry = await runCli(['cleanup', '--all', '--dry-run'], envFor(cp, stub));
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`${stub.bin.replace(/[/.]/g, '\\$&')} uninstall nats --namespace nats-system`));
    assert.match(dry.stdout, /DELETE \/api\/v1\/namespaces\/etcd-system/);
    stub.reset();
    const r = await runCli(['cleanup', '--all', '--yes'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(stub.calls().map((c) => c.argv), [
      ['uninstall', 'nats', '--namespace', 'nats-system'],
      ['uninstall', 'etcd', '--namespace', 'etcd-system'],
    ]);
    for (const ns of ['nats-system', 'etcd-system']) {
      const n = await core.readNamespace({ name: ns }).catch(() => undefined);
      assert.ok(!n || n.metadata?.deletionTimestamp, `${ns} deleted or terminating`);
    }
    stub.reset();
    const again = await runCli(['cleanup', '--all', '--yes'], envFor(cp, stub, { HELM_STUB_SCENARIO: 'not-installed' }));
    assert.equal(again.code, 0, again.stderr);
  });
});
