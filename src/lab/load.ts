/**
 * Loading and validating lab definitions from labs/<id>/lab.yaml. A lab that does not match
 * the format fails with a message that names the file and the field.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { packagePath } from '../base/paths.js';
import { LAB_FORMAT_VERSION, STEP_TYPES, type LabDefinition, type Step, type TargetWork } from './types.js';
import { substitute } from './commands.js';

export class LabFormatError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'LabFormatError';
  }
}

export function labsDir(): string {
  return process.env.DYNAMO_LAB_LABS_DIR ?? packagePath('labs');
}

export function listLabIds(dir = labsDir()): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'lab.yaml')))
    .map((d) => d.name)
    .sort();
}

const ID_RE = /^[a-z0-9][a-z0-9-]*$/;

function checkWork(file: string, where: string, work: unknown): void {
  if (work === undefined) return;
  if (!work || typeof work !== 'object') throw new LabFormatError(file, `${where} must be a mapping`);
  const w = work as Record<string, unknown>;
  if (w.commands !== undefined) {
    if (!Array.isArray(w.commands)) throw new LabFormatError(file, `${where}.commands must be a list`);
    w.commands.forEach((c, i) => {
      const argv = (c as { argv?: unknown })?.argv;
      if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
        throw new LabFormatError(
          file,
          `${where}.commands[${i}].argv must be a non-empty list of strings (commands are argv arrays, not shell strings)`,
        );
      }
    });
  }
  if (w.run !== undefined && typeof (w.run as { action?: unknown })?.action !== 'string')
    throw new LabFormatError(file, `${where}.run.action must be a string`);
}

export function validateLab(data: unknown, file: string): LabDefinition {
  if (!data || typeof data !== 'object') throw new LabFormatError(file, 'the file must hold a mapping');
  const lab = data as Record<string, unknown>;
  if (lab.format_version !== LAB_FORMAT_VERSION)
    throw new LabFormatError(file, `format_version must be ${LAB_FORMAT_VERSION}, found ${String(lab.format_version)}`);
  for (const k of ['id', 'title', 'summary'])
    if (typeof lab[k] !== 'string' || !lab[k]) throw new LabFormatError(file, `"${k}" must be a non-empty string`);
  if (!ID_RE.test(lab.id as string)) throw new LabFormatError(file, `id "${String(lab.id)}" must be lowercase letters, digits and dashes`);
  if (typeof lab.version !== 'number') throw new LabFormatError(file, '"version" must be a number (bump it when steps change)');
  if (!Array.isArray(lab.sections) || lab.sections.length === 0) throw new LabFormatError(file, '"sections" must be a non-empty list');
  const seen = new Set<string>();
  for (const [si, s] of (lab.sections as Array<Record<string, unknown>>).entries()) {
    if (typeof s?.id !== 'string' || !ID_RE.test(s.id))
      throw new LabFormatError(file, `sections[${si}].id must be lowercase letters, digits and dashes`);
    if (typeof s.title !== 'string') throw new LabFormatError(file, `section ${s.id}: title must be a string`);
    if (!Array.isArray(s.steps) || s.steps.length === 0) throw new LabFormatError(file, `section ${s.id}: steps must be a non-empty list`);
    for (const [ti, st] of (s.steps as Array<Record<string, unknown>>).entries()) {
      const where = `section ${s.id} step ${ti}`;
      if (typeof st?.id !== 'string' || !ID_RE.test(st.id))
        throw new LabFormatError(file, `${where}: id must be lowercase letters, digits and dashes`);
      if (seen.has(st.id))
        throw new LabFormatError(file, `step id "${st.id}" is used twice; step ids are saved in progress files and must be unique`);
      seen.add(st.id);
      if (!STEP_TYPES.includes(st.type as Step['type']))
        throw new LabFormatError(file, `step ${st.id}: type must be one of ${STEP_TYPES.join(', ')}`);
      if (typeof st.title !== 'string') throw new LabFormatError(file, `step ${st.id}: title must be a string`);
      checkWork(file, `step ${st.id}.local`, st.local);
      checkWork(file, `step ${st.id}.cluster`, st.cluster);
    }
  }
  return data as LabDefinition;
}

export function loadLab(id: string, dir = labsDir()): LabDefinition {
  const file = join(dir, id, 'lab.yaml');
  if (!existsSync(file)) throw new LabFormatError(file, `no lab "${id}" (available: ${listLabIds(dir).join(', ') || 'none'})`);
  let data: unknown;
  try {
    data = parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new LabFormatError(file, `not valid YAML: ${(err as Error).message}`);
  }
  const lab = validateLab(data, file);
  if (lab.id !== id) throw new LabFormatError(file, `id "${lab.id}" does not match its folder "${id}"`);
  return lab;
}

/** Substitute ${VAR} in the text a person reads (titles, bodies, hints, diagrams, notes). Commands are resolved by the runners. */
export function withVars(lab: LabDefinition, vars: Readonly<Record<string, string>>): LabDefinition {
  const t = (x: string | undefined) => (x === undefined ? undefined : substitute(x, vars));
  const work = (w: TargetWork | undefined) => (w ? { ...w, note: t(w.note) } : undefined);
  return {
    ...lab,
    title: t(lab.title)!,
    summary: t(lab.summary)!,
    sections: lab.sections.map((s) => ({
      ...s,
      title: t(s.title)!,
      steps: s.steps.map((st) => ({
        ...st,
        title: t(st.title)!,
        body: t(st.body),
        hint: t(st.hint),
        diagram: t(st.diagram),
        local: work(st.local),
        cluster: work(st.cluster),
      })),
    })),
  };
}
