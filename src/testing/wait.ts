/** Polls `check` until it returns a truthy value, bounded in time; for state that has no event to await. */
export async function waitFor<T>(check: () => Promise<T> | T, what: string, timeoutMs = 5000, intervalMs = 20): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last as Exclude<T, false | null | undefined | 0 | ''>;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value ${JSON.stringify(last)}`);
}
