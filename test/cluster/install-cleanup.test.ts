/**
 * Cluster tier: `install nats|etcd` with the real helm (scripts/cluster-env/build-helm.sh)
 * installing the real charts from ../shared/data/charts (DYNAMO_LAB_CHARTS_DIR) into the test
 * kube-apiserver, then verifying pods and Services; `cleanup --all` uninstalling them for real.
 * No controllers run here, so the test creates the chart's pods itself (standing in for the
 * StatefulSet controller) and installs with --no-helm-wait. The recording helm stub is left only
 * for what real helm cannot be made to do here: a helm that times out, and dry-run argv checks
 * (which run no helm at all).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import * as k8sRuntime from '@kubernetes/client-node';
import type { ControlPlane } from '../../scripts/cluster-env/control-plane.js';
import { skipReason, start, runCli, helmStub, createPod, ensureNs, envFor, waitPodReady, ROOT, type HelmStub } from './helpers.js';
import { delimiter, dirname, join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { CHARTS_DIR, realHelm, realPartsMissing } from './real-parts.js';

const skip = skipReason() ?? realPartsMissing({ helm: true, charts: true });

describe('cluster: install nats|etcd and cleanup --all', { skip, timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let stub: HelmStub;
  let helmHome: string;
  const natsValues = join(ROOT, 'manifests', 'helm', 'nats-values.yaml');
  /** The real helm with the real charts, its own config/cache dirs, the test cluster. */
  const realEnv = (extra: Record<string, string | undefined> = {}) => ({
    ...envFor(cp),
    HELM_BIN: realHelm(),
    DYNAMO_LAB_CHARTS_DIR: CHARTS_DIR,
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
    ...extra,
  });

  before(async () => {
    ({ cp, core } = await start());
    stub = helmStub();
    helmHome = mkdtempSync(join(tmpdir(), 'dynamo-lab-helm-home-'));
  });
  after(async () => {
    await cp?.stop();
    stub?.remove();
    if (helmHome) rmSync(helmHome, { recursive: true, force: true });
  });

  /** What the StatefulSet controller would create from the chart: a Ready pod of the release. */
  async function chartPod(ns: string, release: string): Promise<void> {
    await ensureNs(core, ns);
    await createPod(core, {
      namespace: ns,
      name: `${release}-0`,
      labels: { 'app.kubernetes.io/instance': release, 'app.kubernetes.io/name': release },
      nodeName: 'gpu-node-1',
      containerName: release,
    });
    await waitPodReady(core, ns, `${release}-0`);
  }
  const apps = () => {
    const kc = new k8sRuntime.KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    return { apps: kc.makeApiClient(k8sRuntime.AppsV1Api), batch: kc.makeApiClient(k8sRuntime.BatchV1Api) };
  };

  it('install nats --dry-run: exact helm argv (shell-quoted, chart version pinned) and the values; runs nothing', async () => {
    stub.reset();
    const r = await runCli(['install', 'nats', '--dry-run'], envFor(cp, stub));
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(lines.includes(`${stub.bin} repo add nats https://nats-io.github.io/k8s/helm/charts/ --force-update`), r.stdout);
    assert.ok(lines.includes(`${stub.bin} repo update nats`));
    assert.ok(
      lines.includes(
        `${stub.bin} upgrade --install nats nats/nats --version 2.14.2 --namespace nats-system --create-namespace --values ${natsValues} --wait --timeout 5m`,
      ),
      r.stdout,
    );
    assert.match(r.stdout, /config:\n {2}jetstream:\n {4}enabled: true/);
    assert.match(r.stdout, /promExporter:\n {2}enabled: true\n {2}port: 7777/);
    assert.doesNotMatch(r.stdout, /^nats:\n {2}jetstream/m, 'legacy chart keys must not be used');
    assert.deepEqual(stub.calls(), []);

    const js = JSON.parse((await runCli(['install', 'etcd', '--dry-run', '--json', '--context', 'admin'], envFor(cp, stub))).stdout);
    assert.deepEqual(js.commands[2].argv.slice(1), [
      'upgrade',
      '--install',
      'etcd',
      'bitnami/etcd',
      '--version',
      '12.0.20',
      '--namespace',
      'etcd-system',
      '--create-namespace',
      '--values',
      join(ROOT, 'manifests', 'helm', 'etcd-values.yaml'),
      '--wait',
      '--timeout',
      '5m',
      '--kube-context',
      'admin',
    ]);
    assert.match(js.values, /repository: bitnamilegacy\/etcd/);
    assert.match(js.values, /^preUpgradeJob:\n {2}enabled: false/m);
    // Offline: from the packaged chart, no repo commands.
    const off = await runCli(['install', 'etcd', '--dry-run', '--json'], envFor(cp, stub, { DYNAMO_LAB_CHARTS_DIR: CHARTS_DIR }));
    assert.deepEqual(
      JSON.parse(off.stdout).commands.map((c: { argv: string[] }) => c.argv.slice(1, 5)),
      [['upgrade', '--install', 'etcd', join(CHARTS_DIR, 'etcd-12.0.20.tgz')]],
    );
  });

  it('install nats: the real chart 2.14.2 goes into the API server, then pods and Service are verified', async () => {
    await chartPod('nats-system', 'nats');
    const r = await runCli(['install', 'nats', '--no-helm-wait', '--json'], realEnv(), 180_000);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.url, 'nats://nats.nats-system:4222');
    assert.deepEqual(doc.pods, [{ name: 'nats-0', phase: 'Running', ready: true }]);
    assert.ok(
      doc.service.ports.some((p: { port: number }) => p.port === 4222),
      "the chart's own Service",
    );
    assert.match(r.stderr, new RegExp(`\\$ .*helm upgrade --install nats ${CHARTS_DIR.replace(/[/.]/g, '\\$&')}/nats-2\\.14\\.2\\.tgz`));
    // The chart's objects, rendered from our values: JetStream file store 2Gi, exporter sidecar.
    const sts = await apps().apps.readNamespacedStatefulSet({ namespace: 'nats-system', name: 'nats' });
    assert.equal(sts.metadata?.labels?.['helm.sh/chart'], 'nats-2.14.2');
    assert.ok(
      sts.spec?.template.spec?.containers.some((c) => c.name === 'prom-exporter'),
      'promExporter.enabled',
    );
    assert.equal(sts.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage, '2Gi');

    const again = await runCli(['install', 'nats', '--no-helm-wait'], realEnv(), 180_000);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nats ready: nats:\/\/nats\.nats-system:4222/);
  });

  it('without HELM_BIN, `helm` is found on PATH', async () => {
    const r = await runCli(
      ['install', 'nats', '--no-helm-wait'],
      { ...realEnv(), HELM_BIN: undefined, PATH: `${dirname(realHelm())}${delimiter}${process.env.PATH}` },
      180_000,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\$ helm upgrade --install nats /);
  });

  it('install etcd: a failing helm is reported with the command and a hint (exit 1)', async () => {
    const r = await runCli(['install', 'etcd'], envFor(cp, stub, { HELM_STUB_SCENARIO: 'fail-upgrade' }));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /helm failed \(exit 1\): .*upgrade --install etcd bitnami\/etcd/);
    assert.match(r.stderr, /timed out waiting for the condition/);
    assert.match(r.stderr, /did not become ready in time/);
  });

  it('install etcd: helm succeeds but no pods appear -> verification fails clearly', async () => {
    const r = await runCli(['install', 'etcd', '--no-helm-wait', '--timeout', '3s'], realEnv(), 180_000);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /pods "app\.kubernetes\.io\/instance=etcd" in namespace "etcd-system" is not ready after \d+s/);
    assert.match(r.stderr, /Pods ready: 0\/1/);
  });

  it("install etcd with the chart's pod present succeeds; an upgrade runs no pre-upgrade Job (preUpgradeJob.enabled=false)", async () => {
    await chartPod('etcd-system', 'etcd');
    // The first install above already made revision 1: this is an upgrade, where the chart's
    // pre-upgrade hook Job (legacy image) would run and, without a Job controller, never finish.
    const r = await runCli(['install', 'etcd', '--no-helm-wait'], realEnv(), 180_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /etcd ready: http:\/\/etcd\.etcd-system:2379/);
    const { apps: a, batch } = apps();
    const sts = await a.readNamespacedStatefulSet({ namespace: 'etcd-system', name: 'etcd' });
    assert.equal(sts.metadata?.labels?.['helm.sh/chart'], 'etcd-12.0.20');
    assert.match(JSON.stringify(sts.spec?.template.spec?.containers[0]?.image), /bitnamilegacy\/etcd/);
    const jobs = await batch.listNamespacedJob({ namespace: 'etcd-system' });
    assert.deepEqual(
      jobs.items.map((j) => j.metadata?.name),
      [],
      'no pre-upgrade Job',
    );
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
    await api.patchCustomResourceDefinition(
      {
        name: 'dynamographdeployments.nvidia.com',
        body: [
          { op: 'replace', path: '/spec/versions/0/storage', value: true },
          { op: 'replace', path: '/spec/versions/1/storage', value: false },
          { op: 'replace', path: '/spec/versions/1/served', value: false },
        ],
      },
      ext,
    );
    let doc:
      | { apiVersion: string; served: string[]; requests: Array<{ body: { kind: string; spec: { services?: unknown } } }> }
      | undefined;
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

  it('cleanup --all: uninstalls the releases (real helm) and deletes their namespaces; a second run is a no-op', async () => {
    const dry = await runCli(['cleanup', '--all', '--dry-run'], realEnv());
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`${realHelm().replace(/[/.]/g, '\\$&')} uninstall nats --namespace nats-system`));
    assert.match(dry.stdout, /DELETE \/api\/v1\/namespaces\/etcd-system/);
    const r = await runCli(['cleanup', '--all', '--yes'], realEnv(), 180_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /cleanup done: \d+ removed/);
    for (const ns of ['nats-system', 'etcd-system']) {
      const n = await core.readNamespace({ name: ns }).catch(() => undefined);
      assert.ok(!n || n.metadata?.deletionTimestamp, `${ns} deleted or terminating`);
    }
    const again = await runCli(['cleanup', '--all', '--yes'], realEnv(), 180_000);
    assert.equal(again.code, 0, again.stderr);
  });
});
