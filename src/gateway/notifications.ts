/**
 * Notifications: mesh → client calls whose caller does not wait for the answer.
 *
 * The gateway hands the frame to the socket and answers the node at once, so
 * a fan-out's node is free (and evictable) as soon as its sends are handed
 * off. What is kept here holds no timer and no promise: the frames not yet
 * answered, so they follow the client to a new socket, and when each went
 * out, so a client that leaves one unanswered past the timeout is known to
 * be silent the next time someone notifies it.
 */

interface Pending {
  frame: string;
  /** when it was first sent or queued (ms since epoch) */
  at: number;
  bytes: number;
}

const encoder = new TextEncoder();

/** A notification's id: the gateway's id prefix (ending in "-"), then "n" and a counter. */
export function notificationId(idPrefix: string, n: number): string {
  return `${idPrefix}n${n}`;
}

/** Late answers to notifications the gateway forgot (evicted, grace period over) are ignored, not reported to the client. */
export function isNotificationId(id: string): boolean {
  return /-n\d+$/.test(id);
}

export class PendingNotifications {
  /** insertion order is sending order: the first entry is the oldest */
  readonly #byId = new Map<string, Pending>();
  #bytes = 0;

  get size(): number {
    return this.#byId.size;
  }

  /** Total UTF-8 bytes of the frames kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** How long the oldest unanswered notification has waited (0 if none). */
  oldestWaitMs(now: number): number {
    const oldest = this.#byId.values().next().value;
    return oldest === undefined ? 0 : now - oldest.at;
  }

  /** Keeps `frame` if it fits the bounds (an empty set takes one however large); false if it does not. */
  add(id: string, frame: string, now: number, maxCount: number, maxBytes: number): boolean {
    const bytes = encoder.encode(frame).byteLength;
    if (this.#byId.size > 0 && (this.#byId.size >= maxCount || this.#bytes + bytes > maxBytes)) return false;
    this.#byId.set(id, { frame, at: now, bytes });
    this.#bytes += bytes;
    return true;
  }

  /** The client answered: true if `id` was a notification still waiting. */
  answer(id: string): boolean {
    const pending = this.#byId.get(id);
    if (!pending) return false;
    this.#byId.delete(id);
    this.#bytes -= pending.bytes;
    return true;
  }

  /** Frames still unanswered, oldest first (sent again on a new socket). */
  *frames(): IterableIterator<string> {
    for (const pending of this.#byId.values()) yield pending.frame;
  }

  clear(): void {
    this.#byId.clear();
    this.#bytes = 0;
  }
}
