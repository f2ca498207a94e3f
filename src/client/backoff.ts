/** Exponential backoff with jitter: attempt n waits a random time in [base/2, base], base = min(max, min·2ⁿ). */
export class Backoff {
  #attempt = 0;

  constructor(
    readonly minMs: number,
    readonly maxMs: number,
    readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** this.#attempt);
    if (base < this.maxMs) this.#attempt++;
    return Math.round(base / 2 + (base / 2) * this.random());
  }

  reset(): void {
    this.#attempt = 0;
  }
}
