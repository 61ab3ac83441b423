/**
 * Lab definitions are data (labs/<id>/lab.yaml). These types describe that data; the engine
 * (reducer + runners) is generic and never special-cases a lab or a step id.
 */

export const LAB_FORMAT_VERSION = 1;

export type Target = 'local' | 'cluster';

export const STEP_TYPES = ['explain', 'check', 'command', 'apply', 'request', 'logs', 'verify', 'bench'] as const;
export type StepType = (typeof STEP_TYPES)[number];

/** A command as an argv array; never a shell string. */
export interface CommandSpec {
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Names of env vars whose values are secret: masked wherever the command is shown. */
  readonly secretEnv?: readonly string[];
  /** Print-only on the cluster target (e.g. an interactive `kubectl run -it`). */
  readonly manual?: boolean;
}

/** A generic local operation of the engine (see src/lab/actions/), with parameters. */
export interface LocalAction {
  readonly action: string;
  readonly with?: Readonly<Record<string, unknown>>;
}

export interface TargetWork {
  /** Commands run in order (cluster target: kubectl/helm/curl; local: rarely needed). */
  readonly commands?: readonly CommandSpec[];
  /** A manifest template under manifests/, shown and applied. */
  readonly manifest?: string;
  /** Built-in operation (local target: start sim workers, the embedded router, the demo…). */
  readonly run?: LocalAction;
  /** What this step does on this target, when there is no command to show. */
  readonly note?: string;
}

export interface Step {
  readonly id: string;
  readonly type: StepType;
  readonly title: string;
  /** Explanation shown before the step runs (plain text, may hold simple markdown). */
  readonly body?: string;
  /** An ASCII diagram shown with the body. */
  readonly diagram?: string;
  readonly hint?: string;
  /** Cleanup-style steps that remove things: confirmation in interactive mode. */
  readonly dangerous?: boolean;
  readonly local?: TargetWork;
  readonly cluster?: TargetWork;
  /** Checkpoint run after the work; the step is done only when it passes. */
  readonly verify?: { readonly local?: LocalAction; readonly cluster?: TargetWork };
  /** Which seed step(s) this covers (for the coverage table). */
  readonly covers?: readonly string[];
}

export interface Section {
  readonly id: string;
  readonly title: string;
  readonly steps: readonly Step[];
}

export interface LabDefinition {
  readonly format_version: number;
  readonly id: string;
  readonly title: string;
  readonly summary: string;
  readonly version: number;
  readonly seed?: string;
  readonly legacy?: boolean;
  readonly duration?: string;
  readonly needs?: { readonly gpus?: number };
  /** Variables substituted as ${NAME} in commands and manifests (env overrides them). */
  readonly vars?: Readonly<Record<string, string>>;
  readonly sections: readonly Section[];
}

/** A step with its position, as the engine walks the lab. */
export interface FlatStep {
  readonly index: number;
  readonly sectionId: string;
  readonly sectionTitle: string;
  readonly step: Step;
}

export function flattenSteps(lab: LabDefinition): FlatStep[] {
  const out: FlatStep[] = [];
  for (const s of lab.sections) for (const step of s.steps) out.push({ index: out.length, sectionId: s.id, sectionTitle: s.title, step });
  return out;
}
