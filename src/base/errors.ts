/**
 * Typed errors that carry what happened and what to try (exit codes per the CLI contract:
 * 0 ok, 1 failure a user can fix, 2 usage error, 130 interrupted).
 */
export class UserError extends Error {
  readonly exitCode: number = 1;
  constructor(
    message: string,
    readonly tryMessage?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export class UsageError extends UserError {
  override readonly exitCode = 2;
  constructor(message: string, tryMessage = 'Run with --help to see the options.') {
    super(message, tryMessage);
    this.name = 'UsageError';
  }
}

export class InterruptedError extends Error {
  readonly exitCode = 130;
  constructor(message = 'Interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}

export function exitCodeOf(err: unknown): number {
  if (err && typeof err === 'object' && 'exitCode' in err && typeof (err as { exitCode: unknown }).exitCode === 'number') {
    return (err as { exitCode: number }).exitCode;
  }
  return 1;
}
