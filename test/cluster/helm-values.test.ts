/**
 * Cluster tier, real helm + real charts, offline (`helm template`): every value key the project
 * passes to the NATS and etcd charts (manifests/helm/*-values.yaml and the labs' `--set` flags)
 * must change the rendered output when its value changes. A key the chart does not read renders
 * the same either way: that is a key the chart silently ignores (issue item 1: the seeds'
 * `preUpgradeHook.enabled` for bitnami/etcd, whose key is `preUpgradeJob.enabled`).
 * Also: every lab/CLI helm install of these charts pins the version the values were checked
 * against (item 13).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { TOOLING, releaseInfo } from '../../src/cluster/releases.js';
import { CHARTS, installPlan } from '../../src/cluster/helm.js';
import { CHARTS_DIR, REPO_ROOT, flagValue, helmSets, labClusterCommands, realHelm, realPartsMissing } from './real-parts.js';

const skip = realPartsMissing({ helm: true, charts: true });

type ChartId = 'nats' | 'etcd';
const CHART_OF: Record<string, ChartId> = { 'nats/nats': 'nats', 'bitnami/etcd': 'etcd' };

function template(chart: ChartId, args: string[]): string {
  const c = TOOLING.charts[chart];
  try {
    return execFileSync(realHelm(), ['template', chart, join(CHARTS_DIR, c.file), '--namespace', `${chart}-system`, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    // A render error is still proof the chart reads the key.
    return `RENDER ERROR: ${(err as { stderr?: string }).stderr ?? String(err)}`;
  }
}

/**
 * The rendered output with its random parts removed: the etcd chart generates a fresh JWT key
 * (and checksums of it) on every render, which would make every key look "read".
 */
function normalize(out: string): string {
  if (out.startsWith('RENDER ERROR')) return out;
  const docs = out
    .split(/^---\s*$/m)
    .map((d) => parse(d) as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => Boolean(d));
  const scrub = (o: unknown): unknown => {
    if (Array.isArray(o)) return o.map(scrub);
    if (o && typeof o === 'object') {
      const r: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(o)) if (!k.startsWith('checksum/')) r[k] = scrub(v);
      return r;
    }
    return o;
  };
  return JSON.stringify(
    docs
      .map((d) =>
        d.kind === 'Secret'
          ? { ...d, data: Object.keys((d.data as object) ?? {}), stringData: Object.keys((d.stringData as object) ?? {}) }
          : d,
      )
      .map(scrub),
  );
}

/** A different value of the same type. */
function mutate(v: unknown): unknown {
  if (typeof v === 'boolean') return !v;
  if (typeof v === 'number') return v + 3;
  const s = String(v);
  if (s === 'true' || s === 'false') return s === 'true' ? 'false' : 'true';
  if (/^\d+$/.test(s)) return String(Number(s) + 3);
  const size = /^(\d+)([KMGT]i)$/.exec(s);
  if (size) return `${Number(size[1]) + 3}${size[2]}`;
  return `${s}-changed`;
}

function leaves(o: unknown, prefix = ''): Array<[string, unknown]> {
  if (o && typeof o === 'object' && !Array.isArray(o))
    return Object.entries(o).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
  return [[prefix, o]];
}

function setPath(o: Record<string, unknown>, path: string, v: unknown): Record<string, unknown> {
  const copy = structuredClone(o);
  const keys = path.split('.');
  let cur = copy as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) cur = cur[k] as Record<string, unknown>;
  cur[keys.at(-1)!] = v;
  return copy;
}

/** Keys (of one source) whose change leaves the chart's output unchanged. */
function ignoredKeys(chart: ChartId, pairs: Array<[string, unknown]>, asSet: boolean, valuesDoc?: Record<string, unknown>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-lab-values-'));
  try {
    const render = (doc: Record<string, unknown> | undefined, sets: Array<[string, unknown]>) => {
      const args: string[] = [];
      if (doc) {
        const f = join(dir, `v${Math.random().toString(36).slice(2)}.yaml`);
        writeFileSync(f, stringify(doc));
        args.push('--values', f);
      }
      for (const [k, v] of sets) args.push('--set', `${k}=${String(v)}`);
      return normalize(template(chart, args));
    };
    const base = asSet ? render(undefined, pairs) : render(valuesDoc, []);
    assert.doesNotMatch(base, /^RENDER ERROR/, `${chart}: the project's own values do not render: ${base}`);
    // The comparison is only meaningful if the same values render the same output.
    assert.equal(
      asSet ? render(undefined, pairs) : render(valuesDoc, []),
      base,
      `${chart}: rendering is not deterministic after normalising`,
    );
    const ignored: string[] = [];
    for (const [k, v] of pairs) {
      const changed = asSet
        ? render(
            undefined,
            pairs.map(([k2, v2]) => [k2, k2 === k ? mutate(v2) : v2]),
          )
        : render(setPath(valuesDoc!, k, mutate(v)), []);
      if (changed === base) ignored.push(k);
    }
    return ignored;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('cluster: chart values against the real charts (helm template)', { skip, timeout: 600_000 }, () => {
  it('helm is the real binary at the tested version (>= the table minimum)', () => {
    const v = execFileSync(realHelm(), ['version', '--short'], { encoding: 'utf8' }).trim();
    assert.match(v, new RegExp(`^v${TOOLING.helm.tested.replace(/\./g, '\\.')}`), v);
  });

  for (const chart of ['nats', 'etcd'] as const) {
    it(`manifests/helm/${chart}-values.yaml: every key changes the ${chart} ${TOOLING.charts[chart].version} chart's output`, () => {
      const doc = parse(readFileSync(join(REPO_ROOT, 'manifests', 'helm', `${chart}-values.yaml`), 'utf8')) as Record<string, unknown>;
      const keys = leaves(doc);
      assert.ok(keys.length >= 4, 'values file has keys');
      assert.deepEqual(ignoredKeys(chart, keys, false, doc), [], `keys the ${chart} chart ignores`);
    });
  }

  it("every lab's `--set` key changes the chart's output", () => {
    const installs = labClusterCommands().filter((c) => c.argv[0] === 'helm' && c.argv[1] === 'upgrade' && CHART_OF[c.argv[4]!]);
    assert.ok(installs.length >= 4, `found ${installs.length} lab helm installs`);
    for (const c of installs) {
      const chart = CHART_OF[c.argv[4]!]!;
      const sets = helmSets(c.argv);
      assert.ok(sets.length > 0, `${c.lab}/${c.step}`);
      assert.deepEqual(ignoredKeys(chart, sets, true), [], `${c.lab}/${c.step}: --set keys the ${chart} chart ignores`);
    }
  });

  it("a key the chart ignores is detected (the seeds' preUpgradeHook.enabled)", () => {
    assert.deepEqual(
      ignoredKeys(
        'etcd',
        [
          ['auth.rbac.create', false],
          ['preUpgradeHook.enabled', false],
        ],
        true,
      ),
      ['preUpgradeHook.enabled'],
    );
  });

  it("every helm install of NATS/etcd pins the chart version of its lab's release row (the one the values were checked against)", () => {
    const installs = labClusterCommands().filter((c) => c.argv[0] === 'helm' && c.argv[1] === 'upgrade' && CHART_OF[c.argv[4]!]);
    assert.ok(installs.length >= 4, `the labs install NATS and etcd (${installs.length} installs found)`);
    for (const c of installs) {
      const chart = CHART_OF[c.argv[4]!]!;
      assert.equal(
        flagValue(c.argv, '--version'),
        releaseInfo(c.release).tooling.charts[chart],
        `${c.lab}/${c.step} (release ${c.release}): ${c.argv.join(' ')}`,
      );
      assert.equal(
        TOOLING.charts[chart].version,
        releaseInfo(c.release).tooling.charts[chart],
        'the packaged chart the tests render is that version',
      );
    }
    const saved = process.env.DYNAMO_LAB_CHARTS_DIR;
    delete process.env.DYNAMO_LAB_CHARTS_DIR;
    try {
      for (const id of ['nats', 'etcd'] as const) {
        const up = installPlan(CHARTS[id], {}).at(-1)!;
        assert.equal(flagValue(up, '--version'), TOOLING.charts[id].version, up.join(' '));
      }
    } finally {
      if (saved !== undefined) process.env.DYNAMO_LAB_CHARTS_DIR = saved;
    }
  });
});
