/**
 * `--engine` for `dynamo-lab start`: which implementation backs the local lab actions.
 * `embedded` (default) needs nothing but Node; `dynamo` runs the real Dynamo 1.6.1 frontend +
 * mocker from the peers venv, which is created here on first use, after asking (--yes: proceed).
 */
import { createInterface } from 'node:readline/promises';
import chalk from 'chalk';
import { UsageError, UserError } from '../base/errors.js';
import { ensureVenv, findPython, installCommands, PINS, venvDir } from '../engine/venv.js';
import { LAB_ENGINES, type LabEngine } from '../lab/session.js';

export const ENGINE_OPTION = {
  type: 'string',
  valueName: 'embedded|dynamo',
  description:
    'Local target only: embedded router + simulated workers (default), or the real Dynamo 1.6.1 frontend + mocker from a Python venv',
} as const;

export function parseEngine(v: unknown, target: string): LabEngine {
  const engine = (v as string | undefined) ?? 'embedded';
  if (!(LAB_ENGINES as readonly string[]).includes(engine))
    throw new UsageError(`--engine must be ${LAB_ENGINES.join(' or ')}, not "${engine}".`);
  if (engine === 'dynamo' && target !== 'local') throw new UsageError('--engine dynamo runs on the local target only: add --target local.');
  return engine as LabEngine;
}

/** Make sure the peers venv exists (ask before creating it unless `yes`); throws a UserError with the exact commands. */
export async function prepareDynamoEngine(opts: { yes: boolean; stderr: NodeJS.WritableStream; interactive: boolean }): Promise<void> {
  try {
    await ensureVenv({ create: false });
    return;
  } catch {
    /* missing or incomplete: create it below */
  }
  const dir = venvDir();
  let python: string;
  try {
    python = await findPython();
  } catch (err) {
    throw new UserError(
      `--engine dynamo needs Python >= 3.10: ${(err as Error).message.split('\n')[0]}`,
      `Install python3 and python3-venv (or set DYNAMO_LAB_PYTHON), then:\n  ${installCommands().join('\n  ')}`,
    );
  }
  opts.stderr.write(
    `--engine dynamo needs a Python venv at ${dir} with ai-dynamo ${PINS['ai-dynamo']}, aiperf ${PINS.aiperf} and sglang-router ${PINS['sglang-router']} from PyPI (about 1 GB, a few minutes).\n`,
  );
  if (!opts.yes) {
    if (!opts.interactive)
      throw new UserError(
        `the Dynamo venv ${dir} is missing`,
        `Re-run with --yes to create it, or run:\n  ${installCommands(python).join('\n  ')}`,
      );
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const answer = (await rl.question('Create it now? [y/N] ')).trim().toLowerCase();
    rl.close();
    if (answer !== 'y' && answer !== 'yes')
      throw new UserError('the Dynamo venv was not created', `Create it yourself with:\n  ${installCommands(python).join('\n  ')}`);
  }
  let n = 0;
  const started = performance.now();
  try {
    await ensureVenv({
      say: (l) => opts.stderr.write(chalk.dim(l) + '\n'),
      progress: (l) => {
        n++;
        opts.stderr.write(chalk.dim(`  [${Math.round((performance.now() - started) / 1000)}s, ${n}] pip: ${l}`) + '\n');
      },
    });
  } catch (err) {
    throw new UserError(
      `could not create the Dynamo venv: ${(err as Error).message.split('\n')[0]}`,
      (err as Error).message.split('\n').slice(1).join('\n'),
    );
  }
  opts.stderr.write(`the Dynamo venv is ready (${Math.round((performance.now() - started) / 1000)} s)\n`);
}
