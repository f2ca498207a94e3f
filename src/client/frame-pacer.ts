/**
 * Keeps the client under the gateway's rates: frames, and characters of
 * frames. The gateway closes a socket past either bucket (1008), which every
 * reconnect would hit again; a client that learns the buckets
 * (connection_status) sends at most a share of each and holds the rest back,
 * in order, on one timer. A stream read with a window of one or two credits
 * every chunk, so a fast one would otherwise cross the gateway's frame rate by
 * itself; a client sending large arguments crosses its character rate.
 *
 * Frames held back when the socket goes are dropped: a call's frame never
 * left, so the call is queued again (not resent as maybe-run); other frames
 * count as lost in flight (streams resume after the reconnect).
 */

/** The share of the gateway's rate and burst the client uses: its clock and the network may bunch frames. */
const RATE_SHARE = 0.8;
const BURST_SHARE = 0.5;
/**
 * The longest the drain sleeps: under a tiny rate it still wakes to drop
 * held frames no longer wanted (calls that timed out), so they cannot pile
 * up; and a delay past 2^31 ms would fire at once, every millisecond.
 */
const MAX_WAIT_MS = 1_000;

/**
 * One of the gateway's buckets as the client keeps it, at its share. A
 * gateway of this release makes its character burst at least twice its
 * largest frame, so the share holds any frame. Against one that does not, a
 * longer frame goes once the share is full, leaving it in debt, rather than
 * never.
 */
class SharedBucket {
  rate = Infinity;
  burst = Infinity;
  tokens = Infinity;
  at = 0;

  /** The gateway's rate and burst; a gateway that does not say (or says nonsense) leaves this unpaced. */
  adopt(perSecond: unknown, burst: unknown, now: number): void {
    const usable = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0;
    if (!usable(perSecond) || !usable(burst)) {
      this.rate = this.burst = this.tokens = Infinity;
      return;
    }
    const rate = perSecond * RATE_SHARE;
    const share = Math.max(1, Math.floor(burst * BURST_SHARE));
    if (rate === this.rate && share === this.burst) return;
    // The gateway's bucket is per identity and survives reconnects: start from the burst once, never refill on a reconnect.
    if (this.rate === Infinity) {
      this.tokens = share;
      this.at = now;
    }
    this.rate = rate;
    this.burst = share;
    this.tokens = Math.min(this.tokens, share);
  }

  /** What must be in the bucket before `cost` may go. */
  #needed(cost: number): number {
    return Math.min(cost, this.burst);
  }

  ready(cost: number, now: number): boolean {
    if (this.rate === Infinity) return true;
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
      this.at = now;
    }
    return this.tokens >= this.#needed(cost);
  }

  take(cost: number): void {
    if (this.rate !== Infinity) this.tokens -= cost;
  }

  /** ms until `cost` may go (0 unpaced). */
  waitMs(cost: number): number {
    return this.rate === Infinity ? 0 : Math.ceil(((this.#needed(cost) - this.tokens) / this.rate) * 1000);
  }
}

/** A clock that never steps back (Date.now does, when the system clock is set): a step back would stall refills. */
const now = (): number => performance.now();

export interface FrameLimits {
  framesPerSecond: number;
  frameBurst: number;
  /** characters (UTF-16 code units) of frames */
  bytesPerSecond: number;
  byteBurst: number;
}

/** What a held frame's sender wants to know: whether it is still to go, and that it was dropped unsent. */
export interface HeldFrameHooks {
  wanted?(): boolean;
  dropped?(): void;
  /** set by the pacer: true while the frame is held back, not yet sent */
  held?: boolean;
}

export class FramePacer {
  readonly #send: (text: string) => boolean;
  readonly #open: () => boolean;
  readonly #frames = new SharedBucket();
  readonly #chars = new SharedBucket();
  /** frames held back, oldest first from `#head` (an index, so taking one is O(1)) */
  #held: Array<{ text: string; hooks: HeldFrameHooks | undefined }> = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** `send` writes to the open socket (false: none is open); `open` says whether one is. */
  constructor(send: (text: string) => boolean, open: () => boolean) {
    this.#send = send;
    this.#open = open;
  }

  /** The gateway's buckets (connection_status); a bucket the gateway does not say leaves frames unpaced by it. */
  set limits(limits: Partial<FrameLimits>) {
    const at = now();
    this.#frames.adopt(limits.framesPerSecond, limits.frameBurst, at);
    this.#chars.adopt(limits.bytesPerSecond, limits.byteBurst, at);
  }

  /** Frames held back now (for tests and monitoring). */
  get held(): number {
    return this.#held.length - this.#head;
  }

  /**
   * Sends now, or after the frames held before it; false (nothing kept) if no
   * socket is open. A held frame whose `wanted` says no by its turn (a call
   * that timed out or was cancelled meanwhile) is dropped without a token;
   * one dropped unsent (the socket went) is told so by `dropped`, since it
   * never left: a call is then queued again, not resent as maybe-run.
   */
  send(text: string, hooks?: HeldFrameHooks): boolean {
    if (!this.#open()) return false;
    if (this.held === 0 && this.#take(text.length)) return this.#send(text);
    this.#held.push({ text, hooks });
    if (hooks) hooks.held = true;
    this.#arm();
    return true;
  }

  /** The socket went: what was held back is dropped; a held call is queued again (its `dropped`), the rest as if lost in flight. */
  dropHeld(): void {
    const held = this.#held.slice(this.#head);
    this.#held = [];
    this.#head = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const { hooks } of held) {
      if (!hooks) continue;
      hooks.held = false;
      hooks.dropped?.();
    }
  }

  /** Takes a frame of `chars` characters from both buckets, or nothing (false) if either is short. */
  #take(chars: number): boolean {
    const at = now();
    // both refilled first: `&&` must not skip one
    const ready = this.#frames.ready(1, at);
    if (!(this.#chars.ready(chars, at) && ready)) return false;
    this.#frames.take(1);
    this.#chars.take(chars);
    return true;
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    // Timed for the frame at the head, wanted when the timer is set: one that stops being wanted meanwhile holds the rest back until it fires (at most MAX_WAIT_MS).
    const next = this.#held[this.#head]?.text.length ?? 0;
    const waitMs = Math.max(this.#frames.waitMs(1), this.#chars.waitMs(next));
    this.#timer = setTimeout(() => this.#drain(), Math.min(MAX_WAIT_MS, Math.max(1, waitMs)));
  }

  #drain(): void {
    this.#timer = undefined;
    if (!this.#open()) return this.dropHeld();
    while (this.held > 0) {
      const { text, hooks } = this.#held[this.#head]!;
      if (hooks?.wanted && !hooks.wanted()) {
        this.#head++;
        hooks.held = false;
        continue;
      }
      if (!this.#take(text.length)) break;
      this.#head++;
      if (hooks) hooks.held = false;
      if (!this.#send(text)) hooks?.dropped?.();
    }
    if (this.held === 0) {
      this.#held = [];
      this.#head = 0;
    } else {
      if (this.#head > 1024) {
        this.#held = this.#held.slice(this.#head);
        this.#head = 0;
      }
      this.#arm();
    }
  }
}
