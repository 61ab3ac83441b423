import type { Command, OptionSpec } from '../command.js';
import { UserError } from '../../base/errors.js';

/** A contract command whose implementation has not landed yet: says so plainly, exit 1. */
export function notYet(name: string, summary: string, usage: string, options: Record<string, OptionSpec> = {}, positionals?: Command['positionals']): Command {
  return {
    name,
    summary: `${summary} (not available in this version yet)`,
    usage,
    options,
    positionals,
    async run() {
      throw new UserError(`"dynamo-lab ${name}" is not available in this version yet.`, 'Run `dynamo-lab start --target local` for the local lab, or `dynamo-lab --help` for what is available.');
    },
  };
}
