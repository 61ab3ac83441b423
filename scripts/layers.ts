/**
 * The import-direction rule of src/, as data and a checker (run by test/unit/layering.test.ts,
 * or by hand: `node dist/scripts/layers.js`).
 *
 *   cli -> ui -> lab -> cluster, server, sim, bench, engine -> router, tokenizer -> base
 *
 * A module may import its own folder and any folder of a lower rank; folders of the same rank
 * may not import each other except for the edges in PEER_EDGES. src/router is the pure core:
 * besides base it imports no I/O module. A dynamic import must name its module literally, so
 * no edge is hidden from this check or from the type checker.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAYER_RANK: Readonly<Record<string, number>> = {
  base: 0,
  router: 1,
  tokenizer: 1,
  cluster: 2,
  server: 2,
  sim: 2,
  bench: 2,
  /** The real Dynamo (frontend + mocker from the peers venv) behind the lab's --engine dynamo. */
  engine: 2,
  lab: 3,
  ui: 4,
  cli: 5,
};

/** Same-rank imports that are allowed: the benchmark replays through the simulated engine. */
export const PEER_EDGES: ReadonlySet<string> = new Set(['bench->sim']);

/** Modules the pure router core must not import (network, files, processes, HTTP clients). */
const IO_MODULES =
  /^(node:)?(fs|fs\/promises|net|http|https|http2|dgram|child_process|worker_threads|readline|tls)$|^(undici|zeromq|nats|execa|@kubernetes\/client-node)$/;

export interface ImportEdge {
  /** Importing file, relative to src/ (e.g. `lab/runner.ts`). */
  readonly from: string;
  /** The specifier as written. */
  readonly spec: string;
  /** Target file relative to src/ for a relative specifier, undefined for a package. */
  readonly to?: string;
  /** Dynamic import with a computed (non-literal) argument. */
  readonly computed?: boolean;
}

/** Import / export-from / side-effect import / dynamic import() specifiers of one source text. */
export function importSpecifiers(text: string): Array<{ spec: string; computed?: boolean }> {
  const out: Array<{ spec: string; computed?: boolean }> = [];
  // Strip comments so commented-out imports do not count (strings are kept: specifiers live there).
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  for (const m of code.matchAll(/\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/g))
    out.push({ spec: m[1]! });
  for (const m of code.matchAll(/\bimport\s*\(\s*([^)]*?)\s*\)/g)) {
    const arg = m[1]!;
    const lit = /^(['"])([^'"`]+)\1$/.exec(arg) ?? /^`([^`$]+)`$/.exec(arg);
    if (lit) out.push({ spec: lit[2] ?? lit[1]! });
    else out.push({ spec: arg, computed: true });
  }
  return out;
}

/** Every import edge of the .ts/.tsx files under `srcDir`. */
export function scanSources(srcDir: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.tsx?$/.test(name) && !name.endsWith('.d.ts')) {
        const from = relative(srcDir, p).split(sep).join('/');
        for (const { spec, computed } of importSpecifiers(readFileSync(p, 'utf8'))) {
          if (computed) edges.push({ from, spec, computed });
          else if (spec.startsWith('.')) {
            const to = relative(srcDir, resolve(dirname(p), spec))
              .split(sep)
              .join('/');
            edges.push({ from, spec, to });
          } else edges.push({ from, spec });
        }
      }
    }
  };
  walk(srcDir);
  return edges;
}

const layerOf = (path: string) => path.split('/')[0]!;

/** The edges that break the rule, each with the reason. */
export function violations(
  edges: readonly ImportEdge[],
  rank: Readonly<Record<string, number>> = LAYER_RANK,
  peers: ReadonlySet<string> = PEER_EDGES,
): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const from = layerOf(e.from);
    if (e.computed) {
      out.push(`${e.from}: import(${e.spec}) is computed; name the module literally so the import is checked`);
      continue;
    }
    if (rank[from] === undefined) {
      out.push(`${e.from}: src/${from} is not in the layer table (scripts/layers.ts)`);
      continue;
    }
    if (e.to === undefined) {
      if (from === 'router' && IO_MODULES.test(e.spec)) out.push(`${e.from}: the router core must stay pure, but imports ${e.spec}`);
      continue;
    }
    if (e.to.startsWith('..')) continue; // outside src/ (package.json and the like)
    const to = layerOf(e.to);
    if (to === from) continue;
    const rFrom = rank[from]!;
    const rTo = rank[to];
    if (rTo === undefined) out.push(`${e.from}: imports src/${to}, which is not in the layer table`);
    else if (rTo > rFrom) out.push(`${e.from}: imports ${e.spec}, but ${from} is below ${to} (imports go down only)`);
    else if (rTo === rFrom && !peers.has(`${from}->${to}`))
      out.push(`${e.from}: imports ${e.spec}, but ${from} and ${to} are peers (no sideways imports)`);
  }
  return out;
}

/** src/ of this checkout, from the compiled (dist/scripts) or the source (scripts) location. */
export function srcRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${sep}dist${sep}`) ? resolve(here, '..', '..', 'src') : resolve(here, '..', 'src');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const bad = violations(scanSources(srcRoot()));
  for (const v of bad) console.error(v);
  console.log(bad.length ? `${bad.length} layering violation(s)` : 'imports go down only');
  process.exit(bad.length ? 1 : 0);
}
