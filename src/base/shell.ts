/**
 * POSIX shell quoting, for showing a command (argv) to a person: safe characters bare, anything
 * else in single quotes. Commands are always run as argv arrays; these strings are never executed.
 */
export function quoteArg(arg: string): string {
  if (arg === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellQuote(argv: readonly string[]): string {
  return argv.map(quoteArg).join(' ');
}
