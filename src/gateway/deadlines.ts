/**
 * Entries that expire: a map whose every entry has a deadline, all on one timer.
 *
 * The timer is set for the earliest deadline and never outlives the work for
 * long: a timer left armed keeps a Durable Object in memory (billed) after
 * its work is done. While entries remain, a settled one leaves the timer
 * alone (setting a workerd timer costs microseconds); it fires, finds
 * nothing due and re-arms for the next deadline.
 *
 * With `slackMs` (see DeadlineOptions) a deadline may pass by up to that much
 * before it expires, and the timer may stay armed that long after the last
 * entry settles, which saves setting and clearing it once per entry when
 * entries come and go one at a time (sequential calls).
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface DeadlineOptions {
  /**
   * How late an expiry may be, and how long the timer may outlive the last
   * entry, in ms (0: exact, and cleared the moment nothing is pending).
   */
  slackMs?: number;
}

export class Deadlines<K, V = undefined> {
  readonly #due = new Map<K, { at: number; value: V; expire: () => void }>();
  readonly #slackMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  constructor({ slackMs = 0 }: DeadlineOptions = {}) {
    if (!(Number.isFinite(slackMs) && slackMs >= 0)) throw new RangeError(`Deadline slack must be a finite number of milliseconds ≥ 0, got ${slackMs}.`);
    this.#slackMs = slackMs;
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

  *keys(): IterableIterator<K> {
    yield* this.#due.keys();
  }

  *values(): IterableIterator<V> {
    for (const entry of this.#due.values()) yield entry.value;
  }

  /** Keeps `value` under `key` for `ms`; then removes it and calls `expire`, unless `delete(key)` came first. */
  add(key: K, ms: number, expire: () => void, ...[value]: undefined extends V ? [value?: V] : [value: V]): void {
    // NaN or Infinity would never expire (and a timer would not say so): refuse them.
    if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError(`A deadline must be a finite number of milliseconds ≥ 0, got ${ms}.`);
    const now = Date.now();
    const at = now + ms;
    this.#due.set(key, { at, value: value as V, expire });
    // An armed timer that fires by then, give or take the slack, will see this entry. A new timer is set
    // no later than the slack from now, so it never outlives the last entry by more than that.
    if (at + this.#slackMs < this.#timerAt) this.#arm(this.#slackMs > 0 ? Math.min(at, now + this.#slackMs) : at);
  }

  /** True if the key was pending (its deadline will not fire). */
  delete(key: K): boolean {
    if (!this.#due.delete(key)) return false;
    // Nothing pending: a timer due within the slack is left to fire and find nothing; a later one goes now.
    if (this.#due.size === 0 && this.#timerAt > Date.now() + this.#slackMs) this.#disarm();
    return true;
  }

  /** Forgets every pending entry; none of their deadlines fires. */
  clear(): void {
    this.#due.clear();
    this.#disarm();
  }

  /** True while a timer is set (with nothing pending, at most `slackMs` more). */
  get armed(): boolean {
    return this.#timer !== undefined;
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    // Past 2³¹−1 ms a timer fires at once (and would re-arm in a loop): wait that long, sweep, re-arm.
    this.#timer = setTimeout(() => this.#sweep(), Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())));
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
    // expire() may have added entries (and armed a timer) itself, or deleted the rest
    if (this.#due.size > 0 && next < this.#timerAt) this.#arm(next);
  }
}
