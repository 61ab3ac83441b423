/**
 * The real parts the cluster tier uses besides the control plane: a real `helm` (built by
 * scripts/cluster-env/build-helm.sh), the real charts in ../shared/data/charts and the real
 * DynamoGraphDeployment CRDs in ../shared/data/crds. Also the labs' cluster commands with their
 * variables filled in, so tests can check exactly what a user would run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse } from 'yaml';
import { ROOT, helmStub, type HelmStub } from './helpers.js';
import { TOOLING } from '../../src/cluster/releases.js';
import { listLabIds, loadLab } from '../../src/lab/load.js';
import { substitute } from '../../src/lab/commands.js';
import type { LabDefinition } from '../../src/lab/types.js';

/** The shared folder beside the clone (CI: ../shared from the repository root). */
export const SHARED = process.env.DYNAMO_LAB_SHARED ?? join(ROOT, '..', 'shared');
export const CHARTS_DIR = join(SHARED, 'data', 'charts');
export const CRDS_DIR = join(SHARED, 'data', 'crds');

/** The helm binary: DYNAMO_LAB_HELM_BIN, else the cached build of the tested version. */
export function realHelm(): string {
  return (
    process.env.DYNAMO_LAB_HELM_BIN ??
    join(process.env.DYNAMO_LAB_HELM_DIR ?? join(homedir(), '.cache', 'dynamo-lab', 'helm', TOOLING.helm.tested), 'helm')
  );
}

/**
 * `undefined` when real helm and the shared charts/CRDs are there; otherwise why the tests
 * skip. With DYNAMO_LAB_REQUIRE_CLUSTER=1 (CI) anything missing is an error.
 */
export function realPartsMissing(
  need: { helm?: boolean; charts?: boolean; crds?: boolean } = { helm: true, charts: true, crds: true },
): string | undefined {
  const missing: string[] = [];
  if (need.helm && !existsSync(realHelm())) missing.push(`helm (${realHelm()}; build it with scripts/cluster-env/build-helm.sh)`);
  if (need.charts && !existsSync(join(CHARTS_DIR, TOOLING.charts.nats.file))) missing.push(`charts (${CHARTS_DIR})`);
  if (need.crds && !existsSync(join(CRDS_DIR, 'dgd-v0.5.0.yaml.gz'))) missing.push(`CRDs (${CRDS_DIR})`);
  if (!missing.length) return undefined;
  const msg = `real parts missing: ${missing.join(', ')}`;
  if (process.env.DYNAMO_LAB_REQUIRE_CLUSTER === '1') throw new Error(`DYNAMO_LAB_REQUIRE_CLUSTER=1 but ${msg}`);
  process.stderr.write(`# skipped: ${msg}\n`);
  return msg;
}

/**
 * The helm a test runs: the real one (scripts/cluster-env/build-helm.sh) when it is built, which CI
 * requires (DYNAMO_LAB_REQUIRE_CLUSTER=1 makes a missing one an error); the recording stub only on
 * a machine without it. Tests that need a failure real helm cannot give use helmStub() directly.
 */
export function helmForTests(): Pick<HelmStub, 'bin' | 'remove'> & { log?: string; real: boolean } {
  if (!realPartsMissing({ helm: true })) return { bin: realHelm(), real: true, remove: () => {} };
  return { ...helmStub(), real: false };
}

/** A release's real CRD object (gunzipped, first YAML document with a kind). */
export function loadCrd(
  fixture: string,
): Record<string, unknown> & { spec: { versions: Array<{ name: string; served: boolean; storage: boolean }> } } {
  const text = gunzipSync(readFileSync(join(CRDS_DIR, fixture))).toString('utf8');
  for (const doc of text.split(/^---\s*$/m)) {
    const o = parse(doc) as { kind?: string } | null;
    if (o?.kind === 'CustomResourceDefinition') return o as never;
  }
  throw new Error(`${fixture}: no CustomResourceDefinition`);
}

export interface LabCommand {
  readonly lab: string;
  readonly step: string;
  readonly release: string;
  readonly argv: string[];
  readonly manual: boolean;
}

export function labs(): LabDefinition[] {
  return listLabIds().map((id) => loadLab(id));
}

/** Every cluster command of every lab (steps and verifies), variables substituted with the lab's defaults. */
export function labClusterCommands(): LabCommand[] {
  const out: LabCommand[] = [];
  for (const lab of labs()) {
    const vars = { ...(lab.vars ?? {}) };
    const release = vars.RELEASE_VERSION ?? '';
    for (const sec of lab.sections) {
      for (const st of sec.steps) {
        for (const w of [st.cluster, st.verify?.cluster]) {
          for (const c of w?.commands ?? [])
            out.push({ lab: lab.id, step: st.id, release, argv: c.argv.map((a) => substitute(a, vars)), manual: Boolean(c.manual) });
        }
      }
    }
  }
  return out;
}

/** Every text a lab shows for a step (body, hint, notes), with the lab's release. */
export function labTexts(): Array<{ lab: string; step: string; release: string; text: string }> {
  const out: Array<{ lab: string; step: string; release: string; text: string }> = [];
  for (const lab of labs()) {
    const release = lab.vars?.RELEASE_VERSION ?? '';
    for (const sec of lab.sections) {
      for (const st of sec.steps) {
        const text = [st.title, st.body, st.diagram, st.hint, st.cluster?.note, st.verify?.cluster?.note, st.local?.note]
          .filter(Boolean)
          .join('\n');
        out.push({ lab: lab.id, step: st.id, release, text });
      }
    }
  }
  return out;
}

/** `--set k=v` pairs of a helm argv. */
export function helmSets(argv: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--set' && argv[i + 1]) {
      const eq = argv[i + 1]!.indexOf('=');
      out.push([argv[i + 1]!.slice(0, eq), argv[i + 1]!.slice(eq + 1)]);
    }
  }
  return out;
}

/** The value of `--flag v` in an argv. */
export function flagValue(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

export const REPO_ROOT = ROOT;
