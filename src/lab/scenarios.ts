/** Demo scenarios (labs/scenarios.yaml): named lists of chat requests. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { labsDir } from './load.js';
import type { DemoRequest } from './demo.js';

export interface Scenario {
  readonly description: string;
  readonly requests: readonly DemoRequest[];
}

let cache: Record<string, Scenario> | undefined;

export function loadScenarios(): Record<string, Scenario> {
  if (cache) return cache;
  const file = join(labsDir(), 'scenarios.yaml');
  const data = parse(readFileSync(file, 'utf8')) as { scenarios?: Record<string, Scenario> };
  if (!data?.scenarios || typeof data.scenarios !== 'object') throw new Error(`${file}: "scenarios" must be a mapping`);
  for (const [name, sc] of Object.entries(data.scenarios)) {
    if (!Array.isArray(sc.requests) || !sc.requests.every((r) => typeof r?.prompt === 'string')) throw new Error(`${file}: scenario ${name} needs a list of requests with a "prompt"`);
  }
  cache = data.scenarios;
  return cache;
}

/** The requests of the named scenarios, each tagged with its scenario as group. */
export function scenarioRequests(names: readonly string[]): DemoRequest[] {
  const all = loadScenarios();
  return names.flatMap((n) => {
    const sc = all[n];
    if (!sc) throw new Error(`unknown scenario "${n}" (known: ${Object.keys(all).join(', ')})`);
    return sc.requests.map((r) => ({ ...r, group: n }));
  });
}
