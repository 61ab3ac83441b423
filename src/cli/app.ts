/**
 * Argument parsing, dispatch, Ctrl+C handling and error reporting for every command.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import chalk from 'chalk';
import { commands, findCommand } from './commands/index.js';
import type { Command, CommandContext, GlobalOptions, OptionSpec } from './command.js';
import { UsageError, UserError, exitCodeOf, InterruptedError } from '../base/errors.js';
import { packageRoot } from '../base/paths.js';
import { closest } from './suggest.js';

export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  help: { type: 'boolean', short: 'h', description: 'Show help for the command' },
  version: { type: 'boolean', description: 'Print the dynamo-lab version' },
  json: { type: 'boolean', description: 'Write exactly one JSON document to stdout' },
  verbose: { type: 'boolean', short: 'v', description: 'More detail, stack traces on errors' },
  context: { type: 'string', valueName: 'name', description: 'Kubernetes context (default: current context)' },
  namespace: { type: 'string', short: 'n', valueName: 'ns', description: 'Kubernetes namespace (default: dynamo)' },
  'no-color': { type: 'boolean', description: 'Disable colour' },
};

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('package.json', packageRoot()), 'utf8')) as { version: string }).version;
}

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` <${o.valueName ?? 'value'}>` : ''}${o.multiple ? '...' : ''}`;
    return [flag, o.description + (o.default !== undefined && o.type === 'string' ? ` (default: ${String(o.default)})` : '')] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return rows.map(([f, d]) => `  ${f.padEnd(width)}${d}`);
}

export function globalHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    `dynamo-lab ${packageVersion()} — learn, run and measure NVIDIA Dynamo's KV-aware routing`,
    '',
    'Usage: dynamo-lab <command> [options]',
    '',
    'Examples:',
    '  dynamo-lab start                      open the KV-routing lab (local target when no cluster is reachable)',
    '  dynamo-lab start --target local --yes --json   run the whole lab without prompts, print JSON',
    '  dynamo-lab router --sim 4             a KV router in front of 4 simulated workers',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Global options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    "Run `dynamo-lab <command> --help` for a command's options.",
  ].join('\n');
}

export function commandHelp(cmd: Command): string {
  const lines = [`Usage: ${cmd.usage}`, '', cmd.summary];
  if (cmd.examples?.length) lines.push('', 'Examples:', ...cmd.examples.map((e) => `  ${e}`));
  if (cmd.positionals) lines.push('', 'Arguments:', `  <${cmd.positionals.name}>  ${cmd.positionals.description}`);
  if (Object.keys(cmd.options).length) lines.push('', 'Options:', ...optionLines(cmd.options));
  lines.push('', 'Global options:', ...optionLines(GLOBAL_OPTIONS));
  return lines.join('\n');
}

function stripSpecs(options: Readonly<Record<string, OptionSpec>>): NonNullable<Parameters<typeof parseArgs>[0]>['options'] {
  const out: Record<
    string,
    { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean | string[] | boolean[] }
  > = {};
  for (const [k, v] of Object.entries(options)) {
    out[k] = {
      type: v.type,
      ...(v.short ? { short: v.short } : {}),
      ...(v.multiple ? { multiple: true } : {}),
      ...(v.default !== undefined ? { default: v.default } : {}),
    };
  }
  return out;
}

/** With --json: one error document on stdout (the human message still goes to stderr). */
function jsonError(err: unknown, code: number): string {
  const e = err as Error | undefined;
  const hint =
    err instanceof UserError
      ? err.tryMessage
      : err instanceof InterruptedError
        ? 'Run the same command again; a lab resumes at the step it stopped at.'
        : 'Run again with --verbose for the stack trace, and please report it.';
  const kind =
    err instanceof InterruptedError
      ? 'interrupted'
      : err instanceof UsageError
        ? 'usage'
        : err instanceof UserError
          ? 'user'
          : 'unexpected';
  return (
    JSON.stringify(
      {
        error: {
          kind,
          message: err instanceof InterruptedError ? 'Interrupted.' : (e?.message ?? String(err)),
          ...(hint ? { hint } : {}),
          exit_code: code,
        },
      },
      null,
      2,
    ) + '\n'
  );
}

/** Set while a --json command runs: true once the command wrote anything to stdout. */
let stdoutWritten = false;

function reportError(err: unknown, verbose: boolean, stderr: NodeJS.WriteStream, json = false): number {
  const code = exitCodeOf(err);
  const e = err as Error | undefined;
  if (json && !stdoutWritten) {
    process.stdout.write(jsonError(err, code));
    stdoutWritten = true;
  }
  if (err instanceof InterruptedError) {
    stderr.write(chalk.yellow('\nInterrupted.') + '\n');
    return 130;
  }
  if (err instanceof UserError) {
    stderr.write(`${chalk.red('Error:')} ${err.message}\n`);
    if (err.tryMessage) stderr.write(`${chalk.dim('Try:')} ${err.tryMessage}\n`);
  } else {
    stderr.write(`${chalk.red('Unexpected error:')} ${e?.message ?? String(err)}\n`);
    if (verbose && e?.stack) stderr.write(`${e.stack}\n`);
    else stderr.write(chalk.dim('Run again with --verbose for the stack trace, and please report it.\n'));
  }
  return code;
}

/** Parse argv, run the command, and return the process exit code. */
export async function run(argv: string[]): Promise<number> {
  const stderr = process.stderr;
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  const json = argv.includes('--json');
  stdoutWritten = false;
  if (json) {
    // Every exit path writes exactly one JSON document: remember whether the command wrote one.
    const write = process.stdout.write.bind(process.stdout) as (...a: unknown[]) => boolean;
    process.stdout.write = ((...a: unknown[]) => {
      stdoutWritten = true;
      return write(...a);
    }) as typeof process.stdout.write;
  }
  const [first, ...rest] = argv;
  if (!first || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(globalHelp() + '\n');
    return 0;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(packageVersion() + '\n');
    return 0;
  }
  const entry = findCommand(first);
  if (!entry) {
    const near = closest(
      first,
      commands.map((c) => c.name),
    );
    return reportError(
      new UsageError(
        `Unknown command "${first}".`,
        `${near ? `Did you mean \`dynamo-lab ${near}\`? ` : ''}Run \`dynamo-lab --help\` to see the commands (${commands.map((c) => c.name).join(', ')}).`,
      ),
      verbose,
      stderr,
      json,
    );
  }

  const cmd = await entry.load();
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts += 1;
    if (interrupts === 1) {
      stderr.write(
        chalk.yellow(`\n${sig === 'SIGINT' ? 'Ctrl+C' : sig}: stopping everything started by this command… (Ctrl+C again to force)\n`),
      );
      controller.abort(new InterruptedError());
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The terminal closed (tmux kill-session, ssh drop): stop what this command started too.
  process.on('SIGHUP', onSignal);

  try {
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: stripSpecs({ ...GLOBAL_OPTIONS, ...cmd.options }), allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError(
        `${(err as Error).message.replace(/\. To specify a positional argument.*$/s, '.')}`,
        `Run \`dynamo-lab ${cmd.name} --help\` to see its options.`,
      );
    }
    const positionals = parsed.positionals;
    const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
    if (values.help) {
      process.stdout.write(commandHelp(cmd) + '\n');
      return 0;
    }
    if (values.version) {
      process.stdout.write(packageVersion() + '\n');
      return 0;
    }
    const pmin = cmd.positionals?.min ?? 0;
    const pmax = cmd.positionals?.max ?? 0;
    if (positionals.length < pmin || positionals.length > pmax) {
      throw new UsageError(
        pmax === 0
          ? `"${cmd.name}" takes no arguments, got "${positionals.join(' ')}".`
          : `"${cmd.name}" expects ${pmin === pmax ? pmin : `${pmin}-${pmax}`} argument(s) <${cmd.positionals?.name}>, got ${positionals.length}.`,
        `Run \`dynamo-lab ${cmd.name} --help\`.`,
      );
    }
    const globals: GlobalOptions = {
      json: Boolean(values.json),
      verbose: Boolean(values.verbose),
      context: values.context as string | undefined,
      namespace: values.namespace as string | undefined,
    };
    const yes = Boolean((values as Record<string, unknown>).yes);
    const ctx: CommandContext = {
      globals,
      signal: controller.signal,
      stdout: process.stdout,
      stderr,
      interactive: isInteractive(yes),
    };
    const code = await cmd.run(values as Record<string, string | boolean | undefined>, positionals, ctx);
    if (controller.signal.aborted) return reportError(new InterruptedError(), verbose, stderr, json);
    if (json && !stdoutWritten && (code ?? 0) !== 0) {
      reportError(
        new UserError(`dynamo-lab ${cmd.name} failed (exit code ${code}).`, 'Run it again without --json to see its messages.'),
        verbose,
        stderr,
        json,
      );
      return code ?? 1;
    }
    return code ?? 0;
  } catch (err) {
    if (controller.signal.aborted) return reportError(new InterruptedError(), verbose, stderr, json);
    return reportError(err, verbose, stderr, json);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}

/** Interactive means a person at a terminal: not CI, TTY on stdin and stdout, no --yes. */
export function isInteractive(yes: boolean): boolean {
  const ci = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false' && process.env.CI !== '0';
  return !yes && !ci && Boolean(process.stdin.isTTY) && Boolean(process.stdout.isTTY);
}
