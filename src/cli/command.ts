/**
 * The shape of a dynamo-lab command. Each command declares its options as data (node:util
 * parseArgs config plus a description per option), so `--help` is generated from the same
 * table the parser uses.
 */
import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & {
  readonly description: string;
  /** Shown as `--flag <valueName>`. */
  readonly valueName?: string;
};

export interface GlobalOptions {
  readonly json: boolean;
  readonly verbose: boolean;
  readonly context?: string;
  readonly namespace?: string;
}

export interface CommandContext {
  readonly globals: GlobalOptions;
  /** Aborted on Ctrl+C / SIGTERM: every long-running piece of work must listen to it. */
  readonly signal: AbortSignal;
  /** Results (JSON documents, tables) go to stdout. */
  readonly stdout: NodeJS.WriteStream;
  /** Progress and messages for people go to stderr. */
  readonly stderr: NodeJS.WriteStream;
  /** true when a person can answer prompts (TTY on both ends, not CI, no --yes). */
  readonly interactive: boolean;
}

export type ParsedValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly examples?: readonly string[];
  /** Allow positional arguments (e.g. `install nats`). */
  readonly positionals?: { readonly name: string; readonly description: string; readonly min?: number; readonly max?: number };
  run(values: ParsedValues, positionals: string[], ctx: CommandContext): Promise<number | void>;
}
