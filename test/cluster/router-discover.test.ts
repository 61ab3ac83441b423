/**
 * `dynamo-lab router --discover`: the embedded router in place of the cluster frontend.
 * Real kube-apiserver + kwok; the "worker pod" is a simulated vLLM worker on this machine,
 * reached through kwok's port-forward for both its OpenAI port (8000) and its ZMQ KV-event
 * publisher (5557) — the same path a real pod's ports take.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SimWorker } from '../../src/sim/index.js';
import { skipReason, start, spawnCli, createPod, ensureNs, envFor, waitPodReady } from './helpers.js';
import type { ControlPlane } from '../../scripts/cluster-env/control-plane.js';
import type * as k8s from '@kubernetes/client-node';

const skip = skipReason();
const NS = 'discover-test';
const SELECTOR = 'app.kubernetes.io/name=dynamo-lab-worker';

describe('cluster: router --discover', { skip, timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let sim: SimWorker;

  before(async () => {
    sim = await SimWorker.start({ id: 'pod-backend', blockSize: 16, port: 0, speedup: 0, zmq: { pubPort: 0 } });
    const zmqPort = Number(new URL(sim.zmqEndpoint!.replace('tcp:', 'http:')).port);
    ({ cp, core } = await start({
      forwards: [
        { port: 8000, target: sim.port },
        { port: 5557, target: zmqPort },
      ],
    }));
    await ensureNs(core, NS);
    await createPod(core, {
      namespace: NS,
      name: 'lab-worker-0',
      labels: { 'app.kubernetes.io/name': 'dynamo-lab-worker' },
      nodeName: 'gpu-node-1',
    });
    await waitPodReady(core, NS, 'lab-worker-0');
  });
  after(async () => {
    await cp?.stop();
    await sim?.close();
  });

  it('finds the pod, forwards its ports, consumes its KV events and routes to it', async () => {
    const r = spawnCli(
      ['router', '--discover', SELECTOR, '--namespace', NS, '--port', '0', '--json', '--health-interval', '0'],
      envFor(cp),
    );
    try {
      await r.waitFor(/"url":"http:\/\/127\.0\.0\.1:\d+"/, 60_000);
      const info = JSON.parse(r.out.stdout.trim().split('\n')[0]!) as {
        url: string;
        events: string;
        workers: Array<{ id: string; url: string }>;
      };
      assert.equal(info.events, 'zmq');
      assert.deepEqual(
        info.workers.map((w) => w.id),
        ['lab-worker-0'],
      );
      assert.match(info.workers[0]!.url, /^http:\/\/127\.0\.0\.1:\d+$/);

      const ask = async (content: string) => {
        const res = await fetch(`${info.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            messages: [
              { role: 'system', content: 'You answer questions about the history of computing, in detail. '.repeat(8) },
              { role: 'user', content },
            ],
            max_tokens: 4,
          }),
        });
        assert.equal(res.status, 200, await res.clone().text());
        const body = (await res.json()) as { usage: { prompt_tokens_details?: { cached_tokens?: number } } };
        return {
          worker: res.headers.get('x-dynamo-lab-worker'),
          overlap: Number(res.headers.get('x-dynamo-lab-overlap-blocks')),
          cached: body.usage.prompt_tokens_details?.cached_tokens ?? 0,
        };
      };
      const first = await ask('Who built the first stored-program computer?');
      assert.equal(first.worker, 'lab-worker-0');
      // The worker's Stored events travel pod:5557 -> port-forward -> the router's ZMQ subscriber.
      let second = await ask('And who programmed it first?');
      // Poll until the events have arrived (a loaded machine can take well over 5 s).
      for (const end = performance.now() + 30_000; second.overlap === 0 && performance.now() < end; ) {
        await new Promise((res) => setTimeout(res, 250));
        second = await ask('And who programmed it first?');
      }
      assert.ok(second.overlap > 0, `the router saw the pod's KV events (overlap ${second.overlap})`);
      assert.ok(second.cached > 0);
    } finally {
      r.child.kill('SIGINT');
    }
    const done = await r.done;
    assert.equal(done.code, 130, done.stderr);
  });

  it('a selector that matches nothing is a clear error', async () => {
    const r = spawnCli(['router', '--discover', 'app=nothing-here', '--namespace', NS, '--port', '0'], envFor(cp));
    const done = await r.done;
    assert.equal(done.code, 1);
    assert.match(done.stderr, /No Ready pods match "app=nothing-here"/);
  });
});
