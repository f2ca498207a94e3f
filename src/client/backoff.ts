/**
 * Exponential backoff with jitter: wait number n (from 0) is a random time in
 * [base/2, base], base = min(max, min·2ⁿ). The exponent is capped so that a
 * long outage never makes 0·∞ (NaN) of a zero minimum.
 */
export function backoffDelay(minMs: number, maxMs: number, retry: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(retry, 64));
  return Math.round(base / 2 + (base / 2) * random());
}

/** The same schedule with its own count, for callers that keep no state of their own. */
export class Backoff {
  #retry = 0;

  constructor(
    readonly minMs: number,
    readonly maxMs: number,
    readonly random: () => number = Math.random,
  ) {}

  next(): number {
    return backoffDelay(this.minMs, this.maxMs, this.#retry++, this.random);
  }

  reset(): void {
    this.#retry = 0;
  }
}

/** At most one retry pending, due after the backoff for retry number n (the count is the caller's). */
export class RetryTimer {
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly minMs: number,
    readonly maxMs: number,
    readonly due: () => void,
  ) {}

  schedule(retry: number): void {
    this.cancel();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.due();
    }, backoffDelay(this.minMs, this.maxMs, retry));
  }

  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
