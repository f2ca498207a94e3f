/**
 * How much a client may send: token buckets, refilled continuously, one for
 * its frames and one for their characters. Computed from timestamps when a
 * message arrives, so they hold no timer and cost an idle gateway nothing.
 */
import type { GatewayConfig } from './config.js';

/**
 * The character burst a gateway applies and announces: never below two frames
 * of the largest size it takes. A client paces under half the burst, so its
 * share then always holds its largest frame, and the other half absorbs the
 * network bunching frames that the client sent apart.
 */
export function byteBurstOf(limit: Pick<GatewayConfig, 'byteBurst' | 'maxFrameBytes'>): number {
  return Math.max(limit.byteBurst, 2 * limit.maxFrameBytes);
}

export class TokenBuckets {
  readonly #buckets = new WeakMap<object, { tokens: number; at: number }>();

  /** Takes `cost` tokens from `owner`'s bucket (`perSecond` refill, at most `burst`); false, taking none, when it has fewer. */
  take(owner: object, perSecond: number, burst: number, cost = 1, now = Date.now()): boolean {
    let bucket = this.#buckets.get(owner);
    if (!bucket) {
      bucket = { tokens: burst, at: now };
      this.#buckets.set(owner, bucket);
    }
    if (now > bucket.at) bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
    // Moved back too when the clock steps back: that can count some time twice (never past the burst), where
    // keeping the mark would stall the bucket until the clock caught up, for as long as the step.
    bucket.at = now;
    // written so that a NaN limit (a typo in the config) refuses, visibly, instead of allowing everything
    if (!(bucket.tokens >= cost)) return false;
    bucket.tokens -= cost;
    return true;
  }
}
