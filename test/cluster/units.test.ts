/**
 * Cluster code that needs no API server (always runs, even when the control plane is not
 * built): router flags per Dynamo release, templates, masking, shell quoting, pod diagnosis,
 * error translation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { ApiException } from '@kubernetes/client-node';
import {
  frontendArgs,
  renderDgd,
  renderHfSecret,
  maskSecrets,
  nodePortServiceName,
  renderWorkersDeployment,
} from '../../src/cluster/manifests.js';
import { parseVersion } from '../../src/cluster/releases.js';
import { installPlan, CHARTS } from '../../src/cluster/helm.js';
import { shellQuote } from '../../src/base/shell.js';
import { podState, adviceFor, isSeriousProblem } from '../../src/cluster/wait.js';
import { ClusterInputError, explainApiError } from '../../src/cluster/errors.js';
import { podGpus } from '../../src/cluster/gpu.js';
import { compileGrep } from '../../src/cluster/logs.js';

describe('cluster units (no API server)', () => {
  it('router flags follow the Dynamo release: single weight before 1.2, credit + load scale since', () => {
    assert.deepEqual(parseVersion('v1.2.1'), [1, 2, 1]);
    assert.deepEqual(frontendArgs({ mode: 'kv', release: '0.8.0' }), [
      '--http-port',
      '8000',
      '--router-mode',
      'kv',
      '--kv-overlap-score-weight',
      '1.0',
    ]);
    assert.deepEqual(frontendArgs({ mode: 'kv', release: '1.2.0', overlapWeight: 0.5 }), [
      '--http-port',
      '8000',
      '--router-mode',
      'kv',
      '--router-kv-overlap-score-credit',
      '1.0',
      '--router-prefill-load-scale',
      '0.5',
    ]);
    assert.deepEqual(frontendArgs({ mode: 'round-robin', release: '1.2.0' }), ['--http-port', '8000', '--router-mode', 'round-robin']);
  });

  it('templates: both DGD shapes, NodePort name, worker Deployment, no HF reference without a secret', () => {
    const base = {
      name: 'vllm-kv-demo',
      namespace: 'dynamo',
      release: '0.8.0',
      model: 'Qwen/Qwen2.5-1.5B-Instruct',
      workers: 3,
      router: 'kv' as const,
      nodePort: 30200,
      hfSecret: false,
    };
    const a = renderDgd({ ...base, version: 'v1alpha1' }) as unknown as {
      spec: { services: Record<string, { replicas: number; envFromSecret?: string }> };
    };
    assert.equal(a.spec.services.VllmWorker!.replicas, 3);
    assert.equal('envFromSecret' in a.spec.services.VllmWorker!, false);
    const b = renderDgd({ ...base, version: 'v1beta1', hfSecret: true }) as unknown as {
      spec: { components: Array<{ name: string; podTemplate: { spec: { containers: Array<{ envFrom?: unknown }> } } }> };
    };
    assert.deepEqual(
      b.spec.components.map((c) => c.name),
      ['Frontend', 'VllmWorker'],
    );
    assert.deepEqual(b.spec.components[1]!.podTemplate.spec.containers[0]!.envFrom, [{ secretRef: { name: 'hf-token-secret' } }]);
    assert.equal(nodePortServiceName('vllm-kv-demo'), 'vllm-kv-frontend-np');
    assert.equal(nodePortServiceName('other'), 'other-frontend-np');
    const d = renderWorkersDeployment({ namespace: 'dynamo', model: 'm', workers: 2, hfSecret: false }) as unknown as {
      spec: { replicas: number };
    };
    assert.equal(d.spec.replicas, 2);
  });

  it('secrets are masked for printing, the original is untouched', () => {
    const s = renderHfSecret('dynamo', 'hf_real');
    const m = maskSecrets(s) as unknown as { stringData: Record<string, string> };
    assert.equal(m.stringData.HF_TOKEN, '***');
    assert.equal((s as unknown as { stringData: Record<string, string> }).stringData.HF_TOKEN, 'hf_real');
  });

  it('shell quoting for display, helm plan for a context', () => {
    assert.equal(shellQuote(['helm', 'upgrade', 'a b', "it's", '--set', 'x=1']), `helm upgrade 'a b' 'it'\\''s' --set x=1`);
    const plan = installPlan(CHARTS.etcd, { kubeContext: 'prod' });
    assert.deepEqual(plan[2]!.slice(-2), ['--kube-context', 'prod']);
  });

  it('pod diagnosis: unschedulable, image pull, crash loop, probes', () => {
    const pod = (status: k8s.V1PodStatus): k8s.V1Pod => ({ metadata: { name: 'p' }, status });
    const unsched = podState(
      pod({
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/1 nodes are available: 1 Insufficient nvidia.com/gpu.',
          },
        ],
      }),
    );
    assert.match(unsched.problem!, /Unschedulable: .*Insufficient nvidia\.com\/gpu/);
    assert.match(adviceFor(unsched.problem!)!, /check gpu/);
    const crash = podState(
      pod({
        phase: 'Running',
        containerStatuses: [
          {
            name: 'main',
            image: 'i',
            imageID: '',
            ready: false,
            restartCount: 4,
            state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 5m0s' } },
          },
        ],
      }),
    );
    assert.match(crash.problem!, /^CrashLoopBackOff/);
    assert.equal(isSeriousProblem(crash), true);
    assert.match(adviceFor(crash.problem!)!, /logs/);
    const probe = podState(
      pod({
        phase: 'Running',
        conditions: [{ type: 'ContainersReady', status: 'False', message: 'containers with unready status: [main]' }],
        containerStatuses: [{ name: 'main', image: 'i', imageID: '', ready: false, restartCount: 0, state: { running: {} } }],
      }),
    );
    assert.match(probe.problem!, /not ready: containers with unready status/);
    assert.match(adviceFor('running, readiness probe not passing yet')!, /probes/);
    assert.equal(podState(pod({ phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] })).problem, undefined);
  });

  it('GPU amount per pod: sum of containers vs max of init containers, limits before requests', () => {
    const c = (gpu: string, kind: 'limits' | 'requests' = 'limits'): k8s.V1Container => ({
      name: 'c',
      resources: { [kind]: { 'nvidia.com/gpu': gpu } },
    });
    assert.equal(podGpus({ spec: { containers: [c('1'), c('2', 'requests')] } }), 3);
    assert.equal(podGpus({ spec: { containers: [c('1')], initContainers: [c('4')] } }), 4);
  });

  it('API errors become messages with what was attempted', () => {
    const e403 = explainApiError(
      new ApiException(
        403,
        'x',
        JSON.stringify({ kind: 'Status', message: 'nodes is forbidden: User "bob" cannot list resource "nodes"', reason: 'Forbidden' }),
        {},
      ),
      { verb: 'list', resource: 'nodes' },
    );
    assert.match(e403.message, /you may not list nodes\. Server said: nodes is forbidden/);
    const e409 = explainApiError(new ApiException(409, 'x', '{"reason":"AlreadyExists","message":"exists"}', {}), {
      verb: 'create',
      resource: 'namespaces',
      name: 'dynamo',
    });
    assert.match(e409.message, /Conflict \(409\) while trying to create namespaces "dynamo"/);
    const net = explainApiError(
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }),
      { verb: 'list', resource: 'pods' },
      'https://127.0.0.1:6443',
    );
    assert.match(net.message, /Cannot reach the Kubernetes API server at https:\/\/127\.0\.0\.1:6443: ECONNREFUSED/);
    assert.match((net as { tryMessage?: string }).tryMessage!, /--target local/);
  });

  it('log patterns from the labs, combined with --grep', () => {
    const re = compileGrep('foo', 'cache,nats')!;
    assert.ok(re.test('Prefix cache hit'));
    assert.ok(re.test('NATS connected'));
    assert.ok(re.test('FOO'));
    assert.ok(!re.test('nothing'));
    assert.throws(
      () => compileGrep(undefined, 'nope'),
      (e: unknown) => e instanceof ClusterInputError && e.option === 'pattern' && /unknown log pattern "nope"/.test(e.message),
    );
  });
});
