/**
 * How many frames a client may send: a token bucket, refilled
 * continuously. Computed from timestamps when a frame arrives, so it holds
 * no timer and costs an idle gateway nothing.
 */
export interface FrameRateLimit {
  /** frames per second a socket may send, sustained */
  framesPerSecond: number;
  /** frames a socket may send at once, above the sustained rate */
  frameBurst: number;
}

export class FrameBuckets {
  readonly #buckets = new WeakMap<object, { tokens: number; at: number }>();

  /** Takes one frame's token from `owner`'s bucket; false when it is over its limit. */
  take(owner: object, limit: FrameRateLimit, now = Date.now()): boolean {
    let bucket = this.#buckets.get(owner);
    if (!bucket) {
      bucket = { tokens: limit.frameBurst, at: now };
      this.#buckets.set(owner, bucket);
    }
    if (now > bucket.at) bucket.tokens = Math.min(limit.frameBurst, bucket.tokens + ((now - bucket.at) / 1000) * limit.framesPerSecond);
    bucket.at = now;
    // written so that a NaN limit (a typo in the config) refuses, visibly, instead of allowing everything
    if (!(bucket.tokens >= 1)) return false;
    bucket.tokens -= 1;
    return true;
  }
}
