/**
 * Progress files: $XDG_STATE_HOME/dynamo-lab/progress/<target>/<lab>.json, rewritten
 * atomically (temp file + rename) after every transition.
 *
 * Format (formatVersion 1):
 *   { "formatVersion": 1, "lab": "kv-routing", "labVersion": 1, "target": "local",
 *     "updatedAt": ISO, "steps": { "<step id>": { "status": "done", "finishedAt": ISO } } }
 *
 * Self-healing: an unreadable or foreign file is moved aside (…json.broken-<ts>) and the lab
 * starts fresh; steps that no longer exist are dropped; a lab whose version changed keeps
 * the statuses of the step ids that still exist.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stateDir } from '../base/paths.js';
import type { StepStatus } from './state.js';

const PROGRESS_FORMAT_VERSION = 1;

export interface ProgressFile {
  readonly formatVersion: number;
  readonly lab: string;
  readonly labVersion: number;
  readonly target: string;
  readonly updatedAt: string;
  readonly steps: Readonly<Record<string, { readonly status: StepStatus; readonly finishedAt?: string }>>;
}

export function progressPath(labId: string, target: string, dir = stateDir()): string {
  return join(dir, 'progress', target, `${labId}.json`);
}

export interface LoadedProgress {
  readonly statuses: Record<string, StepStatus>;
  /** A note for the user when the file had to be repaired. */
  readonly notice?: string;
}

export function loadProgress(path: string, labId: string, knownStepIds: readonly string[]): LoadedProgress {
  if (!existsSync(path)) return { statuses: {} };
  let data: ProgressFile;
  try {
    data = JSON.parse(readFileSync(path, 'utf8')) as ProgressFile;
    if (data?.formatVersion !== PROGRESS_FORMAT_VERSION || data.lab !== labId || typeof data.steps !== 'object' || data.steps === null) {
      throw new Error('not a progress file of this lab and format');
    }
  } catch (err) {
    const aside = `${path}.broken-${Date.now()}`;
    try {
      renameSync(path, aside);
    } catch {
      /* leave it; we overwrite on the next save */
    }
    return {
      statuses: {},
      notice: `Progress file ${path} could not be used (${(err as Error).message}); starting fresh. The old file was moved to ${aside}.`,
    };
  }
  const statuses: Record<string, StepStatus> = {};
  for (const id of knownStepIds) {
    const s = data.steps[id]?.status;
    if (s === 'done' || s === 'skipped') statuses[id] = s;
  }
  return { statuses };
}

export function saveProgress(path: string, content: Omit<ProgressFile, 'formatVersion' | 'updatedAt'>): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const file: ProgressFile = { formatVersion: PROGRESS_FORMAT_VERSION, updatedAt: new Date().toISOString(), ...content };
  writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n');
  renameSync(tmp, path);
}

export function resetProgress(path: string): void {
  rmSync(path, { force: true });
}
