// Waiting in tests: the one polling loop (`eventually`) and a plain pause.

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` (sync or async) until it returns true or `timeoutMs` has passed, pausing
 * `intervalMs` between tries; resolves with whether it held. It never throws on a timeout: the
 * test asserts on the answer (`expect(await eventually(...)).toBe(true)`), so its own message stays.
 * `check` is always tried at least once, and once more after the deadline has passed.
 */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 3_000, intervalMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

/**
 * Like `eventually`, for a value: polls `probe` until it returns something other than undefined,
 * and resolves with it (or with undefined once `timeoutMs` has passed).
 */
export async function eventuallyValue<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 3_000, intervalMs = 25): Promise<T | undefined> {
  let value: T | undefined;
  await eventually(async () => (value = await probe()) !== undefined, timeoutMs, intervalMs);
  return value;
}
