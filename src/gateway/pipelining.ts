/**
 * Whether a client is pipelining: sending calls while earlier ones still
 * run. Only then is it worth making a call or an answer wait a timer turn
 * for others to join it (calls-to-mesh.ts). A client that waits for each
 * answer before its next call gains nothing from the wait, even while some
 * other call of its runs for long (a held-open wait, a slow job).
 *
 * A new call is pipelined if the call taken just before it still runs; an
 * answer has others close behind if a call taken after it still runs.
 */
export class Pipelining {
  /** running calls, by id, each with the order it was taken in (so insertion order is that order) */
  readonly #running = new Map<string, number>();
  #taken = 0;
  /** the id of the call taken last */
  #last: string | undefined;
  /** the order of the newest call still running, 0 if none */
  #newest = 0;

  /** Call `id` starts running. True: the call taken before it still runs. */
  started(id: string): boolean {
    const behind = this.#last !== undefined && this.#running.has(this.#last);
    this.#newest = ++this.#taken;
    this.#running.set(id, this.#newest);
    this.#last = id;
    return behind;
  }

  /** Call `id` is settled (answered, given up, or refused without running). True: a call taken after it still runs. */
  settled(id: string): boolean {
    const order = this.#running.get(id);
    if (order === undefined) return false;
    this.#running.delete(id);
    if (order < this.#newest) return true;
    // The newest settled: the next newest is the last still running (at most maxInFlightCalls to look at, and only when the newest settles).
    let newest = 0;
    for (const other of this.#running.values()) newest = other;
    this.#newest = newest;
    return false;
  }

  get size(): number {
    return this.#running.size;
  }
}
