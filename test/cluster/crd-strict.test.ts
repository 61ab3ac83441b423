/**
 * Cluster tier, real kube-apiserver + the real DynamoGraphDeployment CRDs of Dynamo 0.5.0,
 * 0.7.1, 0.8.0, 1.0.2 and main@2026-08 (v1beta1). One API server holds one version of a CRD,
 * so each release's CRD replaces the previous one in sequence (delete, wait until gone, create,
 * wait until Established and served). Against each, every DGD the labs apply is created with
 * `dryRun=All&fieldValidation=Strict`: a field the release's schema does not know is an error
 * here, where a real cluster would silently prune it (issue item 7: the seed's `spec.pvcs` and
 * per-service `volumeMounts` at 0.5.0).
 *
 * What is applied per release:
 *   - every `dynamo-lab deploy` command of every lab, rendered for every release in the table
 *     (RELEASE_VERSION can be overridden) in each DGD version the CRD serves, unless the
 *     command forces one with --api-version;
 *   - every `kubectl apply -f manifests/…` DGD of a lab, against the lab's own release;
 *   - every `kubectl patch` of a DGD (merge patch files, JSON patches) applied to that
 *     lab's DGD, against the lab's release.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { ControlPlane } from '../../scripts/cluster-env/control-plane.js';
import { RELEASES, releaseInfo } from '../../src/cluster/releases.js';
import { renderDgd, type DeploySpec, type DgdVersion, type KubeObject, type RouterMode } from '../../src/cluster/manifests.js';
import { skipReason, start, sleep, ensureNs } from './helpers.js';
import { REPO_ROOT, flagValue, labClusterCommands, loadCrd, realPartsMissing, type LabCommand } from './real-parts.js';

const skip = skipReason() ?? realPartsMissing({ crds: true });
const NS = 'crd-strict';
/** A concrete release string per table entry (the CRD the entry names is installed for it). */
const RELEASE_OF: Record<string, string> = {
  '0.5': '0.5.0',
  '0.7': '0.7.1',
  '0.8': '0.8.0',
  '1.0': '1.0.2',
  '1.2': '1.2.0',
  '1.6': '1.6.1',
};

/** `dynamo-lab deploy …` argv -> the spec `deploy` renders (same defaults as the CLI). */
function deploySpec(argv: readonly string[], release: string, version: DgdVersion): DeploySpec {
  const num = (f: string) => (flagValue(argv, f) !== undefined ? Number(flagValue(argv, f)) : undefined);
  const nats = flagValue(argv, '--nats-url');
  return {
    name: flagValue(argv, '--name') ?? 'vllm-kv-demo',
    namespace: NS,
    version,
    release,
    model: flagValue(argv, '--model') ?? 'Qwen/Qwen2.5-1.5B-Instruct',
    workers: num('--workers') ?? 2,
    router: (flagValue(argv, '--router') ?? 'kv') as RouterMode,
    overlapWeight: num('--kv-overlap-score-weight'),
    temperature: num('--router-temperature'),
    discoveryBackend: flagValue(argv, '--discovery-backend') as 'etcd' | undefined,
    nodePort: num('--node-port') ?? 30200,
    natsUrl: nats === undefined ? 'nats://nats.nats-system:4222' : nats || undefined,
    hfSecret: true,
  };
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** JSON patch (replace/add) on a copy; a path that does not exist throws, as kubectl's would fail. */
function jsonPatch(target: unknown, ops: Array<{ op: string; path: string; value: unknown }>): unknown {
  const copy = structuredClone(target) as Record<string, unknown>;
  for (const o of ops) {
    const keys = o.path
      .split('/')
      .slice(1)
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    let cur: Record<string, unknown> = copy;
    for (const k of keys.slice(0, -1)) {
      if (!cur[k] || typeof cur[k] !== 'object') throw new Error(`path ${o.path} does not exist (at "${k}")`);
      cur = cur[k] as Record<string, unknown>;
    }
    const last = keys.at(-1)!;
    if (o.op === 'replace' && !(last in cur)) throw new Error(`path ${o.path} does not exist`);
    cur[last] = o.value;
  }
  return copy;
}

function readManifest(rel: string): KubeObject {
  return parse(readFileSync(join(REPO_ROOT, rel), 'utf8')) as KubeObject;
}

describe('cluster: lab DGDs against the real CRDs of each release (strict field validation)', { skip, timeout: 900_000 }, () => {
  let cp: ControlPlane;
  let ext: k8s.ApiextensionsV1Api;
  let custom: k8s.CustomObjectsApi;
  let core: k8s.CoreV1Api;
  const cmds: LabCommand[] = skip ? [] : labClusterCommands();

  before(async () => {
    ({ cp, ext, custom, core } = await start({ crd: false }));
    await ensureNs(core, NS);
  });
  after(async () => {
    await cp?.stop();
  });

  /**
   * main@2026-08's CRD has transition rules (`oldSelf`) inside the non-map list
   * `spec.components[]`, which kube-apiserver 1.36 refuses to store ("oldSelf cannot be used on
   * the uncorrelatable portion of the schema"). Transition rules only run on updates, never on
   * the creates this test makes, so they are dropped before installing; every other rule and
   * the whole structural schema stay as released.
   */
  function withoutTransitionRules(o: unknown, dropped: string[], path = ''): unknown {
    if (Array.isArray(o)) return o.map((x, i) => withoutTransitionRules(x, dropped, `${path}[${i}]`));
    if (!o || typeof o !== 'object') return o;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      if (k === 'x-kubernetes-validations' && Array.isArray(v)) {
        const keep = v.filter((r: { rule?: string }) => !/\boldSelf\b/.test(r.rule ?? ''));
        if (keep.length !== v.length) dropped.push(`${path} (${v.length - keep.length})`);
        if (keep.length) out[k] = keep;
      } else out[k] = withoutTransitionRules(v, dropped, `${path}.${k}`);
    }
    return out;
  }

  async function installCrd(fixture: string): Promise<string[]> {
    const dropped: string[] = [];
    const crd = withoutTransitionRules(loadCrd(fixture), dropped) as ReturnType<typeof loadCrd> & {
      spec: { conversion?: { strategy: string } };
    };
    // main's CRD converts v1alpha1 <-> v1beta1 through the operator's webhook, which does not run
    // here; with strategy None a v1alpha1 request is still decoded and validated (strictly)
    // against the v1alpha1 schema, which is what this test checks.
    if (crd.spec.conversion?.strategy === 'Webhook') crd.spec.conversion = { strategy: 'None' };
    if (dropped.length)
      process.stderr.write(
        `# ${fixture}: ${dropped.length} schema node(s) lost their oldSelf transition rules (update-only; not accepted by kube-apiserver 1.36 on non-map lists)\n`,
      );
    const name = 'dynamographdeployments.nvidia.com';
    try {
      await ext.deleteCustomResourceDefinition({ name });
    } catch (e) {
      if ((e as { code?: number }).code !== 404) throw e;
    }
    for (let end = performance.now() + 60_000; ; ) {
      try {
        await ext.readCustomResourceDefinition({ name });
      } catch (e) {
        if ((e as { code?: number }).code === 404) break;
        throw e;
      }
      if (performance.now() > end) throw new Error('old CRD not deleted');
      await sleep(200);
    }
    const t0 = performance.now();
    await ext.createCustomResourceDefinition({ body: crd as unknown as k8s.V1CustomResourceDefinition });
    const served = crd.spec.versions.filter((v) => v.served).map((v) => v.name);
    for (let end = performance.now() + 120_000; ; ) {
      const c = await ext.readCustomResourceDefinition({ name });
      if (c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')) break;
      if (performance.now() > end) throw new Error(`${fixture}: CRD not Established`);
      await sleep(200);
    }
    // Established can precede the REST handler; wait until every served version answers.
    for (const version of served) {
      for (let end = performance.now() + 60_000; ; ) {
        try {
          await custom.listNamespacedCustomObject({ group: 'nvidia.com', version, namespace: NS, plural: 'dynamographdeployments' });
          break;
        } catch (e) {
          // 404 until the handler exists; 429 "storage is (re)initializing" right after.
          if (![404, 429].includes((e as { code?: number }).code ?? 0) || performance.now() > end) throw e;
          await sleep(200);
        }
      }
    }
    process.stderr.write(`# ${fixture}: CRD installed in ${Math.round(performance.now() - t0)} ms (served: ${served.join(', ')})\n`);
    return served;
  }

  /** Create with dryRun=All&fieldValidation=Strict; returns the server's error message or undefined. */
  async function strictCreate(obj: KubeObject): Promise<string | undefined> {
    const version = obj.apiVersion.split('/')[1]!;
    const body = { ...obj, metadata: { ...obj.metadata, namespace: NS } };
    for (const end = performance.now() + 60_000; ; ) {
      try {
        await custom.createNamespacedCustomObject({
          group: 'nvidia.com',
          version,
          namespace: NS,
          plural: 'dynamographdeployments',
          body,
          dryRun: 'All',
          fieldValidation: 'Strict',
        });
        return undefined;
      } catch (e) {
        const err = e as { code?: number; body?: string };
        let msg = String(err.body ?? e);
        try {
          msg = (JSON.parse(msg) as { message?: string }).message ?? msg;
        } catch {
          /* not JSON */
        }
        if (err.code === 429 && performance.now() < end) {
          await sleep(200);
          continue;
        }
        return `${err.code ?? ''} ${msg}`;
      }
    }
  }

  const fixtures = [...new Set(RELEASES.map((r) => r.crd.fixture))];
  for (const fixture of fixtures) {
    const entries = RELEASES.filter((r) => r.crd.fixture === fixture);
    it(`${fixture}: every lab DGD for ${entries.map((e) => RELEASE_OF[e.id]).join(', ')} passes strict validation`, async () => {
      const served = await installCrd(fixture);
      for (const e of entries) assert.deepEqual([...served].sort(), [...e.crd.served].sort(), `${e.id}: the table's served versions`);

      // Strictness is really on: an unknown field fails.
      const probe = renderDgd(
        deploySpec(['dynamo-lab', 'deploy'], RELEASE_OF[entries[0]!.id]!, served.includes('v1alpha1') ? 'v1alpha1' : 'v1beta1'),
      );
      const bad = await strictCreate({ ...probe, spec: { ...(probe.spec as object), notAField: true } } as KubeObject);
      assert.match(bad ?? '', /unknown field "spec\.notAField"/, 'strict validation must reject unknown fields');

      let checked = 0;
      const failures: string[] = [];
      const check = async (what: string, obj: KubeObject) => {
        const err = await strictCreate(obj);
        checked++;
        if (err) failures.push(`${what}: ${err}`);
      };

      // 1. `dynamo-lab deploy` commands, rendered for every release this CRD stands for.
      for (const e of entries) {
        const release = RELEASE_OF[e.id]!;
        for (const c of cmds.filter((x) => x.argv[0] === 'dynamo-lab' && x.argv[1] === 'deploy' && !x.argv.includes('--workers-only'))) {
          const forced = flagValue(c.argv, '--api-version') as DgdVersion | undefined;
          for (const version of (forced ? [forced] : served) as DgdVersion[]) {
            if (!served.includes(version)) {
              failures.push(`${c.lab}/${c.step}: forces ${version}, which ${release} does not serve`);
              continue;
            }
            await check(`${c.lab}/${c.step} deploy @${release} ${version}`, renderDgd(deploySpec(c.argv, release, version)));
          }
        }
      }

      // 2. Manifests the labs apply, and 3. the patches they make, against the lab's own release.
      for (const c of cmds.filter((x) => entries.includes(releaseInfo(x.release)))) {
        if (c.argv[0] === 'kubectl' && c.argv[1] === 'apply' && flagValue(c.argv, '-f')?.startsWith('manifests/')) {
          const obj = readManifest(flagValue(c.argv, '-f')!);
          if (obj.kind === 'DynamoGraphDeployment') await check(`${c.lab}/${c.step} ${flagValue(c.argv, '-f')}`, obj);
        }
        if (c.argv[0] === 'kubectl' && c.argv[1] === 'patch' && /^dynamographdeployments/.test(c.argv[2]!)) {
          const name = c.argv[3]!;
          const baseCmd = cmds.find(
            (x) =>
              x.lab === c.lab &&
              x.argv[1] === 'apply' &&
              flagValue(x.argv, '-f') &&
              readManifest(flagValue(x.argv, '-f')!).metadata?.name === name,
          );
          assert.ok(baseCmd, `${c.lab}/${c.step}: no applied manifest named ${name} to patch`);
          const baseObj = readManifest(flagValue(baseCmd.argv, '-f')!);
          const type = flagValue(c.argv, '--type');
          const file = flagValue(c.argv, '--patch-file');
          const inline = flagValue(c.argv, '-p');
          let patched: unknown;
          try {
            if (type === 'merge')
              patched = mergePatch(baseObj, file ? parse(readFileSync(join(REPO_ROOT, file), 'utf8')) : JSON.parse(inline!));
            else if (type === 'json') patched = jsonPatch(baseObj, JSON.parse(inline!));
            else throw new Error(`unsupported patch type ${type}`);
          } catch (err) {
            failures.push(`${c.lab}/${c.step}: ${(err as Error).message}`);
            continue;
          }
          // The patch addresses the version it names.
          const named = /^dynamographdeployments\.(v1\w+)\.nvidia\.com$/.exec(c.argv[2]!)?.[1];
          assert.equal(named, baseObj.apiVersion.split('/')[1], `${c.lab}/${c.step}: patches ${named}, manifest is ${baseObj.apiVersion}`);
          await check(`${c.lab}/${c.step} patch ${file ?? inline?.slice(0, 40)}`, patched as KubeObject);
        }
      }
      assert.deepEqual(failures, [], `${fixture}: rejected objects`);
      assert.ok(checked > 0, `${fixture}: nothing checked`);
      process.stderr.write(`# ${fixture}: ${checked} objects passed strict validation\n`);

      // Item 7 regression: the seed's 0.8+ cache shape is rejected by the 0.5.0/0.7.1 schema and
      // accepted from 0.8 on (where model-cache-pvcs.yaml is the right file).
      const side = readManifest('manifests/router-ab/router-on-deployment.yaml');
      const seedShape = mergePatch(
        side,
        parse(readFileSync(join(REPO_ROOT, 'manifests/router-ab/model-cache-pvcs.yaml'), 'utf8')),
      ) as KubeObject;
      const perService = mergePatch(
        side,
        parse(readFileSync(join(REPO_ROOT, 'manifests/router-ab/model-cache-service-pvc.yaml'), 'utf8')),
      ) as KubeObject;
      const shape = entries[0]!.pvcShape;
      if (served.includes('v1alpha1')) {
        const seedErr = await strictCreate(seedShape);
        const svcErr = await strictCreate(perService);
        if (shape === 'service.pvc') {
          assert.match(seedErr ?? '', /unknown field "spec\.pvcs"/, `${fixture}: spec.pvcs must be rejected`);
          assert.equal(svcErr, undefined, `${fixture}: per-service pvc`);
        } else {
          assert.equal(seedErr, undefined, `${fixture}: spec.pvcs + volumeMounts`);
          assert.match(svcErr ?? '', /unknown field "spec\.services\.VllmDecodeWorker\.pvc"/, `${fixture}: per-service pvc is gone`);
        }
      }
    });
  }

  it('item 9: on a platform serving v1beta1, the v1alpha1 services path does not exist in the v1beta1 object', async () => {
    // main's CRD is the one installed last above; a JSON patch on /spec/services/... of the
    // v1beta1 shape fails, which is what unversioned `kubectl patch dynamographdeployment` hits.
    const v1b = renderDgd(deploySpec(['dynamo-lab', 'deploy'], '1.6.1', 'v1beta1'));
    assert.throws(
      () =>
        jsonPatch(v1b, [
          { op: 'replace', path: '/spec/services/VllmDecodeWorker/extraPodSpec/mainContainer/startupProbe/failureThreshold', value: 60 },
        ]),
      /does not exist/,
    );
    assert.equal(await strictCreate(v1b), undefined);
  });
});
