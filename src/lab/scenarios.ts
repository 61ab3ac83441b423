/** Demo scenarios (labs/scenarios.yaml): named lists of chat requests. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { labsDir } from './load.js';
import type { DemoRequest } from './demo.js';
import { expandFiller } from './filler.js';

export interface Scenario {
  readonly description: string;
  /** Long shared prefixes (thousands of tokens): the kv vs round-robin TTFT check applies. */
  readonly long?: boolean;
  readonly requests: readonly DemoRequest[];
}

let cache: Record<string, Scenario> | undefined;
let rawCache: Record<string, Scenario> | undefined;

/** The scenarios as written: `{{filler:…}}` markers not expanded (the dry-run script expands them itself). */
export function loadRawScenarios(): Record<string, Scenario> {
  if (rawCache) return rawCache;
  const file = join(labsDir(), 'scenarios.yaml');
  const data = parse(readFileSync(file, 'utf8')) as { scenarios?: Record<string, Scenario> };
  if (!data?.scenarios || typeof data.scenarios !== 'object') throw new Error(`${file}: "scenarios" must be a mapping`);
  for (const [name, sc] of Object.entries(data.scenarios)) {
    if (!Array.isArray(sc.requests) || !sc.requests.every((r) => typeof r?.prompt === 'string'))
      throw new Error(`${file}: scenario ${name} needs a list of requests with a "prompt"`);
  }
  rawCache = data.scenarios;
  return rawCache;
}

export function loadScenarios(): Record<string, Scenario> {
  if (cache) return cache;
  cache = Object.fromEntries(
    Object.entries(loadRawScenarios()).map(([name, sc]) => [
      name,
      {
        ...sc,
        requests: sc.requests.map((r) => ({
          ...r,
          prompt: expandFiller(r.prompt),
          ...(r.system ? { system: expandFiller(r.system) } : {}),
        })),
      },
    ]),
  );
  return cache;
}

/** The requests of the named scenarios, each tagged with its scenario as group. */
export function scenarioRequests(names: readonly string[]): DemoRequest[] {
  const all = loadScenarios();
  return names.flatMap((n) => {
    const sc = all[n];
    if (!sc) throw new Error(`unknown scenario "${n}" (known: ${Object.keys(all).join(', ')})`);
    // Every request after the first of its scenario can reuse a prefix the scenario already sent.
    return sc.requests.map((r, i) => ({ ...r, group: n, reuses_prefix: i > 0 }));
  });
}
