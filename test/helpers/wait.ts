/**
 * Waiting in tests: poll the state a test asserts, never sleep a fixed time. The bounds are
 * generous because the suite must pass on a loaded machine (2 cores, load average 10+); a wait
 * that succeeds returns as soon as its condition holds, so a large bound costs nothing.
 */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value (or throw with `what` after `ms`). */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, ms = 20_000, intervalMs = 20): Promise<NonNullable<T>> {
  const end = performance.now() + ms;
  let last: T | undefined;
  while (performance.now() < end) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}
