/**
 * The router as the cluster's frontend, at scale: manifests/router/*.yaml apply to a real
 * kube-apiserver with strict field validation, and two `router --discover … --in-cluster
 * --router-replica-sync` replicas find the worker pods by label and reach them at their pod IPs
 * (no port-forwards) — here pods whose status.podIP is 127.0.0.1 and whose named container
 * ports are loopback simulated workers — share their bookings over a real nats-server, and pick
 * up a worker pod added later.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as https from 'node:https';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { SimWorker } from '../../src/sim/index.js';
import { skipReason, start, spawnCli, ensureNs, envFor, mergePatch, ROOT, type RunningCli } from './helpers.js';
import { natsSkipReason, startNatsServer, type NatsServer } from '../server/helpers.js';
import type { ControlPlane } from '../../scripts/cluster-env/control-plane.js';

const skip = skipReason() ?? (natsSkipReason() || undefined);
const NS = 'router-replicas';
const SELECTOR = 'app.kubernetes.io/name=dynamo-lab-worker';

let lastSeen = '';
async function waitUntil<T>(fn: () => Promise<T | undefined | false>, what: string, ms = 30_000): Promise<T> {
  const end = performance.now() + ms;
  let last: unknown;
  lastSeen = '';
  while (performance.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (${(last as Error).message})` : ''} ${lastSeen}`);
}

describe('cluster: router replicas in the cluster (manifests/router, --in-cluster, pod IPs)', { skip, timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let nats: NatsServer;
  const sims: SimWorker[] = [];

  /** A worker pod on a node nobody runs (so only we write its status): pod IP 127.0.0.1, Ready. */
  async function workerPod(name: string, sim: SimWorker): Promise<void> {
    const zmqPort = Number(sim.zmqEndpoint!.split(':').pop());
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name, labels: { 'app.kubernetes.io/name': 'dynamo-lab-worker' } },
        spec: {
          nodeName: 'outside-node',
          containers: [
            {
              name: 'main',
              image: 'example.invalid/vllm:1',
              ports: [
                { name: 'http', containerPort: sim.port },
                { name: 'kv-events', containerPort: zmqPort },
              ],
            },
          ],
        },
      },
    });
    await core.patchNamespacedPodStatus(
      {
        namespace: NS,
        name,
        body: {
          status: {
            phase: 'Running',
            podIP: '127.0.0.1',
            podIPs: [{ ip: '127.0.0.1' }],
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date() }],
          },
        },
      },
      mergePatch,
    );
  }

  /**
   * POST the manifest as written (the typed clients would drop fields their models do not know,
   * hiding them from the server's strict validation).
   */
  async function createRaw(body: Record<string, unknown>, query: string): Promise<{ status: number; text: string }> {
    const api = body.apiVersion === 'v1' ? '/api/v1' : `/apis/${String(body.apiVersion)}`;
    const plural = {
      Deployment: 'deployments',
      Service: 'services',
      ServiceAccount: 'serviceaccounts',
      Role: 'roles',
      RoleBinding: 'rolebindings',
    }[String(body.kind)];
    assert.ok(plural, `unexpected kind ${String(body.kind)}`);
    const url = new URL(`${kc.getCurrentCluster()!.server}${api}/namespaces/${NS}/${plural}?${query}`);
    const opts: https.RequestOptions = {
      method: 'POST',
      hostname: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      headers: { 'content-type': 'application/json' },
    };
    await kc.applyToHTTPSOptions(opts);
    return new Promise((resolve, reject) => {
      const req = https.request(opts, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  before(async () => {
    nats = await startNatsServer();
    for (let i = 0; i < 3; i++)
      sims.push(await SimWorker.start({ id: `sim-${i}`, blockSize: 16, port: 0, speedup: 1, zmq: { pubPort: 0 } }));
    ({ cp, kc, core } = await start());
    await ensureNs(core, NS);
  });
  after(async () => {
    await cp?.stop();
    await Promise.allSettled(sims.map((s) => s.close()));
    await nats?.close();
  });

  it('manifests/router/*.yaml apply with fieldValidation=Strict', async () => {
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    const dir = join(ROOT, 'manifests', 'router');
    const kinds: string[] = [];
    for (const f of readdirSync(dir)
      .filter((x) => x.endsWith('.yaml'))
      .sort()) {
      for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
        const body = doc.toJS() as Record<string, unknown>;
        const r = await createRaw(body, 'fieldValidation=Strict');
        assert.equal(r.status, 201, `${f} ${String(body.kind)}: ${r.text}`);
        kinds.push(String(body.kind));
      }
    }
    assert.deepEqual(kinds.sort(), ['Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
    const d = await apps.readNamespacedDeployment({ namespace: NS, name: 'dynamo-lab-router' });
    assert.ok((d.spec?.replicas ?? 0) >= 2, 'N >= 2 replicas');
    const args = d.spec!.template.spec!.containers[0]!.args!;
    for (const flag of ['--discover', '--in-cluster', '--router-replica-sync', '--nats'])
      assert.ok(args.includes(flag), `the pods run ${flag}`);
    // Strictness is really on: an unknown field is refused.
    const bad = parseAllDocuments(readFileSync(join(dir, 'service.yaml'), 'utf8'))[0]!.toJS() as Record<string, Record<string, unknown>>;
    bad.metadata!.name = 'strict-check';
    bad.spec!.bogusField = 1;
    const refused = await createRaw(bad, 'fieldValidation=Strict&dryRun=All');
    assert.equal(refused.status, 400, refused.text);
    assert.match((JSON.parse(refused.text) as { message: string }).message, /unknown field "spec\.bogusField"/);
    // The role lets the service account list and watch pods, nothing more.
    const role = await rbac.readNamespacedRole({ namespace: NS, name: 'dynamo-lab-router-pod-reader' });
    assert.deepEqual(
      role.rules!.map((r) => [r.resources, [...r.verbs].sort()]),
      [[['pods'], ['get', 'list', 'watch']]],
    );
  });

  it('two --in-cluster replicas reach the pods by IP, share bookings over NATS and pick up a new pod', async () => {
    await workerPod('worker-a', sims[0]!);
    await workerPod('worker-b', sims[1]!);
    const args = [
      'router',
      '--discover',
      SELECTOR,
      '--in-cluster',
      '--discover-interval',
      '0.3',
      '--namespace',
      NS,
      '--router-replica-sync',
      '--nats',
      nats.url,
      '--port',
      '0',
      '--json',
      '--health-interval',
      '0',
    ];
    const routers: RunningCli[] = [spawnCli(args, envFor(cp)), spawnCli(args, envFor(cp))];
    try {
      const infos = [];
      for (const r of routers) {
        await r.waitFor(/"url":"http:\/\/127\.0\.0\.1:\d+"/, 60_000);
        infos.push(
          JSON.parse(r.out.stdout.trim().split('\n')[0]!) as {
            url: string;
            workers: Array<{ id: string; url: string; zmq?: string }>;
            replica_sync: { router_id: string };
          },
        );
      }
      for (const info of infos) {
        assert.deepEqual(
          info.workers.map((w) => [w.id, w.url, w.zmq]),
          [
            ['worker-a', `http://127.0.0.1:${sims[0]!.port}`, sims[0]!.zmqEndpoint!.replace('127.0.0.1', '127.0.0.1')],
            ['worker-b', `http://127.0.0.1:${sims[1]!.port}`, sims[1]!.zmqEndpoint],
          ],
        );
      }
      const [a, b] = infos as [(typeof infos)[0], (typeof infos)[0]];
      const loads = async (url: string) =>
        new Map(
          ((await (await fetch(`${url}/debug/workers`)).json()) as { workers: Array<{ id: string; active_requests: number }> }).workers.map(
            (w) => [w.id, w.active_requests],
          ),
        );
      // Long streams through A and B: both count all of them on the same workers.
      const streams = [];
      const stop = new AbortController();
      for (let i = 0; i < 6; i++) {
        const res = await fetch(`${(i % 2 ? b : a).url}/v1/chat/completions`, {
          method: 'POST',
          signal: stop.signal,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            messages: [{ role: 'user', content: `cluster request ${i} ${'about routers '.repeat(20 + i)}` }],
            max_tokens: 3000,
            stream: true,
          }),
        });
        assert.equal(res.status, 200);
        streams.push(res.arrayBuffer().catch(() => undefined));
      }
      const agreed = await waitUntil(async () => {
        const [la, lb] = await Promise.all([loads(a.url), loads(b.url)]);
        const ta = [...la.values()].reduce((s, n) => s + n, 0);
        const tb = [...lb.values()].reduce((s, n) => s + n, 0);
        const drift = Math.max(...[...la].map(([id, n]) => Math.abs(n - (lb.get(id) ?? 0))));
        lastSeen = `A ${JSON.stringify([...la])} B ${JSON.stringify([...lb])}`;
        return ta === 6 && tb === 6 && drift <= 1 ? { la, lb } : undefined;
      }, 'both replicas to count the 6 streams alike');
      process.stderr.write(`# in-cluster replicas: A ${JSON.stringify([...agreed.la])} B ${JSON.stringify([...agreed.lb])}\n`);
      // Clients that go away free their bookings on both replicas.
      stop.abort();
      await Promise.all(streams);
      await waitUntil(async () => {
        const [la, lb] = await Promise.all([loads(a.url), loads(b.url)]);
        lastSeen = `A ${JSON.stringify([...la])} B ${JSON.stringify([...lb])}`;
        return [...la.values(), ...lb.values()].every((n) => n === 0);
      }, 'both replicas to free the aborted streams');

      // A worker pod added later is found by both replicas (re-listing), at its pod IP.
      await workerPod('worker-c', sims[2]!);
      for (const info of infos) {
        await waitUntil(async () => (await loads(info.url)).has('worker-c'), `replica ${info.replica_sync.router_id} to add worker-c`);
      }
      // ... and one deleted is dropped.
      await core.deleteNamespacedPod({ namespace: NS, name: 'worker-a', gracePeriodSeconds: 0 });
      for (const info of infos) {
        await waitUntil(async () => !(await loads(info.url)).has('worker-a'), `replica ${info.replica_sync.router_id} to drop worker-a`);
      }
    } catch (e) {
      for (const r of routers) process.stderr.write(`# router stderr:\n${r.out.stderr.slice(-3000)}\n`);
      throw e;
    } finally {
      for (const r of routers) r.child.kill('SIGINT');
    }
    for (const r of routers) {
      const done = await r.done;
      assert.equal(done.code, 130, done.stderr);
    }
  });
});
