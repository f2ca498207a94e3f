/**
 * Deadlines for many pending things on one timer.
 *
 * In workerd a timer costs several microseconds to set and again to clear —
 * per call, that was a tenth of the gateway's time (bench: roundtrip). Here a
 * single timer runs while anything is due: it is never cleared when an entry
 * settles, only re-armed when an earlier deadline arrives. So that a stale
 * timer cannot keep an idle gateway from hibernating for long, it fires at
 * least every `maxTimerMs` and stops once nothing is pending.
 */
export class Deadlines<K> {
  readonly #due = new Map<K, { at: number; expire: () => void }>();
  readonly #maxTimerMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  constructor(maxTimerMs = 1_000) {
    this.#maxTimerMs = maxTimerMs;
  }

  get size(): number {
    return this.#due.size;
  }

  has(key: K): boolean {
    return this.#due.has(key);
  }

  /** Calls `expire` in `ms` unless `delete(key)` comes first. */
  add(key: K, ms: number, expire: () => void): void {
    // NaN or Infinity would never expire (and a timer would not say so): refuse them.
    if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError(`A deadline must be a finite number of milliseconds ≥ 0, got ${ms}.`);
    const at = Date.now() + ms;
    this.#due.set(key, { at, expire });
    if (at < this.#timerAt) this.#arm(at);
  }

  /** True if the key was pending (its deadline will not fire). */
  delete(key: K): boolean {
    return this.#due.delete(key);
  }

  /** Forgets every pending deadline. */
  clear(): void {
    this.#due.clear();
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const now = Date.now();
    this.#timerAt = Math.min(at, now + this.#maxTimerMs);
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, this.#timerAt - now));
  }

  #sweep(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [key, entry] of this.#due) {
      if (entry.at <= now) {
        this.#due.delete(key);
        try {
          entry.expire();
        } catch (error) {
          // one failing callback must not stop the sweep (the others would never expire)
          console.error('meshgate: a deadline callback threw:', error);
        }
      } else if (entry.at < next) {
        next = entry.at;
      }
    }
    // expire() may have added entries (and armed a timer) itself
    if (next < this.#timerAt) this.#arm(next);
  }
}
