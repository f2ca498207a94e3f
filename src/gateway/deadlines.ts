/**
 * Entries that expire: a map whose every entry has a deadline, all on one timer.
 *
 * In workerd a timer costs several microseconds to set and again to clear —
 * per call, that was a tenth of the gateway's time (bench: roundtrip). Here a
 * single timer runs while anything is due: it is never cleared when an entry
 * settles, only re-armed when an earlier deadline arrives. So that a stale
 * timer cannot keep an idle gateway from hibernating for long, it fires at
 * least every `maxTimerMs` and stops once nothing is pending.
 */
export class Deadlines<K, V = undefined> {
  readonly #due = new Map<K, { at: number; value: V; expire: () => void }>();
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

  get(key: K): V | undefined {
    return this.#due.get(key)?.value;
  }

  *values(): IterableIterator<V> {
    for (const entry of this.#due.values()) yield entry.value;
  }

  /** Keeps `value` under `key` for `ms`; then removes it and calls `expire`, unless `delete(key)` came first. */
  add(key: K, ms: number, expire: () => void, ...[value]: undefined extends V ? [value?: V] : [value: V]): void {
    // NaN or Infinity would never expire (and a timer would not say so): refuse them.
    if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError(`A deadline must be a finite number of milliseconds ≥ 0, got ${ms}.`);
    const at = Date.now() + ms;
    this.#due.set(key, { at, value: value as V, expire });
    if (at < this.#timerAt) this.#arm(at);
  }

  /** True if the key was pending (its deadline will not fire). */
  delete(key: K): boolean {
    return this.#due.delete(key);
  }

  /** Forgets every pending entry; none of their deadlines fires. */
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
