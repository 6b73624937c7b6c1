/**
 * Errors the user can fix (bad flags, bad files, bad data). The CLI prints their message alone,
 * without a stack trace, and exits with code 2; any other error is a bug or an environment problem
 * and is printed in full with exit code 1.
 */
export class UsageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}

/** The message of anything thrown, for wrapping with context. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
