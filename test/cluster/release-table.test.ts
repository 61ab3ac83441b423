/**
 * The Dynamo release table (src/cluster/releases.ts) and what reads it: frontend flags vs the
 * 1.6 `--router-policy-config` file, dynamoNamespace, the helm minimum, and the lab texts that
 * state per-release facts (router metrics, tie-break, discovery backend, versioned patches).
 * Each test names the issue item it guards.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  RELEASES,
  TOOLING,
  helmMinimum,
  helmVersionOk,
  releaseInfo,
  routerArgs,
  POLICY_CONFIG_MOUNT,
  POLICY_CONFIG_FILE,
} from '../../src/cluster/releases.js';
import { POLICY_DIGEST_ENV, renderDgd, renderPolicyConfigMap, type DeploySpec } from '../../src/cluster/manifests.js';
import { buildDgdPlan } from '../../src/cluster/deploy.js';
import { REPO_ROOT, flagValue, labClusterCommands, labTexts } from './real-parts.js';

const HELP = join(REPO_ROOT, '..', 'shared', 'reference', 'dynamo-1.6.1-frontend-help.txt');

const base: DeploySpec = {
  name: 'kv-routing',
  namespace: 'dynamo-cloud',
  version: 'v1alpha1',
  release: '0.8.0',
  model: 'Qwen/Qwen3-0.6B',
  workers: 2,
  router: 'kv',
  nodePort: 30200,
  hfSecret: false,
};

describe('release table', () => {
  it('covers 0.5, 0.7, 0.8, 1.0, 1.2 and 1.6 in order and maps versions to entries', () => {
    assert.deepEqual(
      RELEASES.map((r) => r.id),
      ['0.5', '0.7', '0.8', '1.0', '1.2', '1.6'],
    );
    assert.equal(releaseInfo('0.5.0').id, '0.5');
    assert.equal(releaseInfo('v0.7.1').id, '0.7');
    assert.equal(releaseInfo('0.9.1').id, '0.8');
    assert.equal(releaseInfo('1.1.0').id, '1.0');
    assert.equal(releaseInfo('1.5.0-rc1').id, '1.2');
    assert.equal(releaseInfo('1.6.1').id, '1.6');
    assert.equal(releaseInfo('latest').id, '1.6');
  });

  it('item 6: >= 1.6 passes the three knobs in a --router-policy-config file, not the deprecated flags', () => {
    const a16 = routerArgs('1.6.1', 'kv', { overlapWeight: 1.5, temperature: 0.1 });
    assert.deepEqual(a16, [
      '--http-port',
      '8000',
      '--router-mode',
      'kv',
      '--router-policy-config',
      `${POLICY_CONFIG_MOUNT}/${POLICY_CONFIG_FILE}`,
    ]);
    for (const f of releaseInfo('1.6.1').router.deprecatedFlags) assert.ok(!a16.includes(f), f);
    // The deprecation is what the real 1.6.1 --help says, flag by flag.
    const help = readFileSync(HELP, 'utf8').replace(/\s+/g, ' ');
    for (const f of ['--router-kv-overlap-score-credit', '--router-prefill-load-scale', '--router-temperature']) {
      assert.ok(releaseInfo('1.6.1').router.deprecatedFlags.includes(f));
      assert.match(
        help,
        new RegExp(`${f} is deprecated and will be removed in v1\\.7; use \\w+ in the default policy parameters in --router-policy-config`),
      );
    }
    assert.deepEqual(routerArgs('1.2.0', 'kv', { overlapWeight: 1.5, temperature: 0.1 }), [
      '--http-port',
      '8000',
      '--router-mode',
      'kv',
      '--router-kv-overlap-score-credit',
      '1.0',
      '--router-prefill-load-scale',
      '1.5',
      '--router-temperature',
      '0.1',
    ]);
    assert.deepEqual(routerArgs('0.8.0', 'kv', { overlapWeight: 1.5, temperature: 0.1 }), [
      '--http-port',
      '8000',
      '--router-mode',
      'kv',
      '--kv-overlap-score-weight',
      '1.5',
      '--router-temperature',
      '0.1',
    ]);
    assert.deepEqual(routerArgs('1.6.1', 'round-robin', {}), ['--http-port', '8000', '--router-mode', 'round-robin']);
  });

  it('item 6: deploy at 1.6 ships the policy file in a ConfigMap mounted where the flag points, in both DGD shapes', () => {
    for (const version of ['v1alpha1', 'v1beta1'] as const) {
      const spec = { ...base, version, release: '1.6.1', overlapWeight: 1.5, temperature: 0.1 };
      const plan = buildDgdPlan(spec, undefined);
      assert.deepEqual(
        plan.map((p) => p.body.kind),
        ['ConfigMap', 'DynamoGraphDeployment', 'Service'],
      );
      const cm = renderPolicyConfigMap(spec)!;
      const doc = parse((cm as unknown as { data: Record<string, string> }).data[POLICY_CONFIG_FILE]!) as {
        worker_selection: { instances: Array<{ parameters: Record<string, number> }> };
      };
      assert.deepEqual(doc.worker_selection.instances[0]!.parameters, {
        overlap_score_credit: 1,
        prefill_load_scale: 1.5,
        router_temperature: 0.1,
      });
      const json = JSON.stringify(renderDgd(spec));
      assert.match(json, new RegExp(`"configMap":\\{"name":"${cm.metadata.name}"\\}`));
      assert.match(json, new RegExp(`"mountPath":"${POLICY_CONFIG_MOUNT}"`));
    }
    assert.equal(renderPolicyConfigMap({ ...base, release: '1.2.0' }), undefined);
  });

  it('item 6: at 1.6 new knobs change the frontend pod template (the policy file is read at start-up only)', () => {
    // Without this the operator keeps the old frontend pod (a ConfigMap change rolls nothing),
    // the frontend keeps the old policy, and `deploy` (frontendWillChange) does not wait.
    const frontend = (spec: DeploySpec): unknown => {
      const dgd = renderDgd(spec) as unknown as {
        spec: { services?: { Frontend: unknown }; components?: Array<{ name: string }> };
      };
      return dgd.spec.services?.Frontend ?? dgd.spec.components?.find((c) => c.name === 'Frontend');
    };
    for (const version of ['v1alpha1', 'v1beta1'] as const) {
      const a = { ...base, version, release: '1.6.1', overlapWeight: 1, temperature: 0 };
      const b = { ...a, overlapWeight: 1.5, temperature: 0.1 };
      assert.notDeepEqual(frontend(a), frontend(b), `${version}: knobs 1/0 vs 1.5/0.1`);
      assert.deepEqual(frontend(a), frontend({ ...a }), `${version}: same knobs, same pod template`);
      assert.match(JSON.stringify(frontend(b)), new RegExp(`"name":"${POLICY_DIGEST_ENV}","value":"[0-9a-f]{16}"`));
      // Releases that take flags already change the args; no digest there.
      assert.doesNotMatch(JSON.stringify(renderDgd({ ...a, release: '1.2.0' })), new RegExp(POLICY_DIGEST_ENV));
    }
  });

  it('item 12: dynamoNamespace is rendered only for releases that honour it (before 0.8)', () => {
    for (const r of ['0.5.0', '0.7.1', '0.8.0', '1.0.2', '1.6.1']) {
      const json = JSON.stringify(renderDgd({ ...base, release: r }));
      assert.equal(json.includes('dynamoNamespace'), releaseInfo(r).dynamoNamespace === 'honoured', r);
    }
    assert.equal(releaseInfo('0.8.0').dynamoNamespace, 'ignored');
    // Manifests applied by labs at >= 0.8 carry no dynamoNamespace.
    for (const c of labClusterCommands().filter((x) => x.argv[0] === 'kubectl' && x.argv[1] === 'apply')) {
      const f = flagValue(c.argv, '-f')!;
      if (!f.startsWith('manifests/')) continue;
      const text = readFileSync(join(REPO_ROOT, f), 'utf8');
      if (releaseInfo(c.release).dynamoNamespace === 'ignored')
        assert.doesNotMatch(text, /^\s+dynamoNamespace:/m, `${c.lab}/${c.step}: ${f}`);
    }
  });

  it('item 5: deploy --discovery-backend sets the 0.8+ annotation nvidia.com/dynamo-discovery-backend', () => {
    const dgd = renderDgd({ ...base, discoveryBackend: 'etcd' });
    assert.deepEqual(dgd.metadata.annotations, { 'nvidia.com/dynamo-discovery-backend': 'etcd' });
    assert.equal(renderDgd(base).metadata.annotations, undefined);
  });

  it('CI builds the helm version the tests expect (build-helm.sh default = TOOLING.helm.tested >= min)', () => {
    const sh = readFileSync(join(REPO_ROOT, 'scripts', 'cluster-env', 'build-helm.sh'), 'utf8');
    assert.equal(/HELM_VERSION="\$\{HELM_VERSION:-([\d.]+)\}"/.exec(sh)?.[1], TOOLING.helm.tested);
    assert.ok(helmVersionOk(`v${TOOLING.helm.tested}`).ok);
  });

  it('every release row pins the Helm minimum and the NATS / etcd chart versions; the check follows the row', () => {
    for (const r of RELEASES) {
      assert.match(r.tooling.helmMin, /^\d+\.\d+\.\d+$/, r.id);
      assert.match(r.tooling.charts.nats, /^\d+\.\d+\.\d+$/, r.id);
      assert.match(r.tooling.charts.etcd, /^\d+\.\d+\.\d+$/, r.id);
      assert.equal(helmMinimum(`${r.from.join('.')}.0`), r.tooling.helmMin, r.id);
    }
    // Without a release, the strictest row's minimum; the check compares against what it is given.
    assert.equal(helmMinimum(), '3.13.0');
    assert.equal(helmVersionOk('v3.14.0', '3.15.0').ok, false);
    assert.equal(helmVersionOk('v3.15.1', '3.15.0').ok, true);
  });

  it('item 10: helm minimum 3.13 (uninstall --ignore-not-found) and the version check', () => {
    assert.equal(TOOLING.helm.min, '3.13.0');
    assert.deepEqual(helmVersionOk('v3.12.3+g3a31588'), { ok: false, version: '3.12.3' });
    assert.equal(helmVersionOk('v3.13.0').ok, true);
    assert.equal(helmVersionOk('v3.22').ok, true);
    assert.equal(helmVersionOk('v4.1.4+g1').ok, true);
    assert.equal(helmVersionOk('garbage').ok, false);
    // Every lab that cleans up with --ignore-not-found says which Helm it needs.
    const withFlag = new Set(
      labClusterCommands()
        .filter((c) => c.argv[0] === 'helm' && c.argv[1] === 'uninstall' && c.argv.includes('--ignore-not-found'))
        .map((c) => `${c.lab}/${c.step}`),
    );
    assert.ok(withFlag.size >= 2);
    for (const t of labTexts().filter((x) => withFlag.has(`${x.lab}/${x.step}`)))
      assert.match(t.text, /Helm 3\.13\s+or\s+newer/, `${t.lab}/${t.step}`);
  });
});

describe('lab texts state per-release facts from the table', () => {
  it('item 4: a dynamo_component_router_* metric is only presented as there for releases that have it', () => {
    for (const t of labTexts()) {
      const rel = releaseInfo(t.release);
      for (const m of t.text.matchAll(/dynamo_component_router_\w+/g)) {
        if (rel.routerMetrics.some((n) => m[0].startsWith(n))) continue;
        // Allowed only with an explicit "from 1.0" qualification in the same text.
        assert.match(
          t.text,
          /from (Dynamo )?1\.0/i,
          `${t.lab}/${t.step} (release ${t.release}) points at ${m[0]}, which its release does not export`,
        );
      }
    }
    assert.deepEqual(releaseInfo('0.8.0').routerMetrics, []);
    assert.ok(releaseInfo('1.0.0').routerMetrics.includes('dynamo_component_router_kv_hit_rate'));
  });

  it('item 11: tie-break statements match the release (tree size first up to 1.1)', () => {
    for (const t of labTexts()) {
      if (!/\bties?\b/i.test(t.text)) continue;
      const rel = releaseInfo(t.release);
      if (rel.router.tieBreak.startsWith('smaller tree size'))
        assert.match(t.text, /tree size/, `${t.lab}/${t.step}: release ${t.release} breaks ties by tree size first`);
    }
  });

  it("item 5: discovery at 0.8 is discoveryBackend / the nvidia.com annotation; the seed's annotation is called out as non-existent", () => {
    const dist = labTexts().filter((t) => t.lab === 'distributed');
    const all = dist.map((t) => t.text).join('\n');
    const rel = releaseInfo(dist[0]!.release);
    assert.ok(all.includes(rel.discovery.platformValue!), 'names the platform value');
    assert.ok(all.includes(rel.discovery.annotation!), 'names the per-DGD annotation');
    // Named and called out, not dropped silently.
    assert.ok(all.includes('dynamo.nvidia.com/discovery-backend'), "the seed's annotation is named");
    for (const t of dist) {
      if (t.text.includes('dynamo.nvidia.com/discovery-backend'))
        assert.match(t.text, /do not exist/, `${t.step}: the seed annotation must be called out`);
      assert.doesNotMatch(t.text, /registry moves to etcd when the platform's operator is configured\s+with the etcd address/, t.step);
    }
    assert.ok(
      labClusterCommands().some(
        (c) => c.lab === 'distributed' && c.argv[1] === 'deploy' && flagValue(c.argv, '--discovery-backend') === 'etcd',
      ),
    );
  });

  it('item 9: every kubectl patch of a DGD names the API version', () => {
    const patches = labClusterCommands().filter((c) => c.argv[0] === 'kubectl' && c.argv[1] === 'patch');
    assert.ok(patches.length >= 2);
    for (const c of patches)
      assert.match(
        c.argv[2]!,
        /^dynamographdeployments\.v1(alpha|beta)1\.nvidia\.com$/,
        `${c.lab}/${c.step}: ${c.argv.slice(0, 4).join(' ')}`,
      );
  });

  it('item 8: a lab on a release whose CRDs come from the dynamo-crds chart installs that chart before the platform', () => {
    for (const lab of new Set(labClusterCommands().map((c) => c.lab))) {
      const cmds = labClusterCommands().filter((c) => c.lab === lab);
      const platform = cmds.findIndex((c) => c.argv[0] === 'helm' && c.argv.some((a) => a.includes('dynamo-platform')));
      if (platform < 0) continue;
      if (releaseInfo(cmds[0]!.release).crd.install !== 'dynamo-crds chart first') continue;
      const crds = cmds.findIndex((c) => c.argv[0] === 'helm' && c.argv[1] === 'install' && c.argv[2] === 'dynamo-crds');
      assert.ok(crds >= 0 && crds < platform, `${lab}: helm install dynamo-crds must come before the platform`);
      assert.equal(flagValue(cmds[crds]!.argv, '--namespace'), 'default');
      assert.match(cmds[crds]!.argv[3]!, new RegExp(`dynamo-crds-${cmds[0]!.release.replace(/\./g, '\\.')}\\.tgz$`));
    }
  });

  it('the labs say plainly where a seed instruction is outdated, at the step that replaces it', () => {
    // [lab, step, what the text must say, issue item]
    const callouts: Array<[string, string, RegExp, string]> = [
      ['distributed', 'install-etcd', /seed's `preUpgradeHook\.enabled` is not a key of this chart/, '1'],
      ['grove', 'install-etcd', /seed's `preUpgradeHook\.enabled` is not a key of this chart/, '1'],
      ['kv-demo', 'routing-decisions', /seed's `grep -E "\(routing\|overlap\|score\)"` matches none/, '2'],
      ['kv-routing', 'router-view', /seed grepped the frontend for "overlap\|score\|routing", which finds none/, '2'],
      ['distributed', 'deploy-nats-kv', /seed's annotations `dynamo\.nvidia\.com\/discovery-backend: "nats"`.*do not exist/, '5'],
      ['router-ab', 'shared-model-cache', /seed's `spec\.pvcs`.*the 0\.5\.0 CRD has neither field/, '7'],
      ['router-ab', 'platform', /seed goes straight to the platform install and has no CRD step/, '8'],
      ['router-ab', 'troubleshooting', /seed's `kubectl patch dynamographdeployment` does not/, '9'],
      ['distributed', 'deploy-k8s-native', /seed's manifest sets `dynamoNamespace: .*the operator ignores that field/, '12'],
      ['kv-routing', 'start-sim-workers', /seed's manifest sets `dynamoNamespace: .*the operator ignores that field/, '12'],
      ['kv-routing', 'start-nats', /without `--version` you get whatever chart is newest/, '13'],
      ['kv-demo', 'tune-weight-temperature', /seed patched the DGD and then ran `kubectl wait/, 'kubectl wait claim'],
    ];
    const texts = labTexts();
    for (const [lab, step, re, item] of callouts) {
      const t = texts.find((x) => x.lab === lab && x.step === step);
      assert.ok(t, `${lab}/${step} exists (item ${item})`);
      assert.match(t.text.replace(/\s+/g, ' '), re, `${lab}/${step} (item ${item})`);
    }
  });

  it('unverified claims settled: no "one line per request" for real vLLM workers, no kubectl wait right after a patch', () => {
    for (const t of labTexts()) assert.doesNotMatch(t.text, /^Each worker logs one line per request/m, `${t.lab}/${t.step}`);
    // Where a lab greps real workers for the cache line, it says the line is periodic.
    const cacheSteps = new Set(
      labClusterCommands()
        .filter((c) => c.argv[1] === 'logs' && flagValue(c.argv, '--pattern') === 'cache')
        .map((c) => `${c.lab}/${c.step}`),
    );
    assert.ok(cacheSteps.size >= 2);
    for (const t of labTexts().filter((x) => cacheSteps.has(`${x.lab}/${x.step}`)))
      assert.match(t.text, /about every 10 seconds while (it is )?busy/, `${t.lab}/${t.step}: vLLM's stats line is periodic`);
    const cmds = labClusterCommands();
    cmds.forEach((c, i) => {
      if (c.argv[0] === 'kubectl' && c.argv[1] === 'patch' && !c.manual) {
        const next = cmds[i + 1];
        assert.ok(
          !(next && next.lab === c.lab && next.argv[0] === 'kubectl' && next.argv[1] === 'wait'),
          `${c.lab}/${c.step}: kubectl wait after a patch can return on the old Ready pod`,
        );
      }
    });
  });
});
