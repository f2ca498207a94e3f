/** Gateway helpers on their own: the one-timer deadlines (on fake timers; the end-to-end deadline tests run on workerd: limits, gateway-calls), burst splitting, frame buckets and the answer memory. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadlines } from '../src/gateway/deadlines.js';
import { chunksBySize } from '../src/gateway/calls.js';
import { TokenBuckets } from '../src/gateway/frame-rate.js';
import { defaultGatewayConfig, misconfiguredRate } from '../src/gateway/config.js';
import { AnswerMemory, utf8Length } from '../src/protocol/answer-memory.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Deadlines', () => {
  it('expires each entry at its own deadline, earliest first, and not a settled one', () => {
    const deadlines = new Deadlines<string>();
    const expired: string[] = [];
    deadlines.add('late', 5_000, () => expired.push('late'));
    deadlines.add('early', 300, () => expired.push('early'));
    deadlines.add('settled', 100, () => expired.push('settled'));
    expect(deadlines.delete('settled')).toBe(true);
    vi.advanceTimersByTime(299);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(['early']);
    vi.advanceTimersByTime(4_699);
    expect(expired).toEqual(['early']);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(['early', 'late']);
    expect(deadlines.size).toBe(0);
    expect(deadlines.delete('late')).toBe(false);
  });

  it('sets one timer for many entries, and none is left once nothing is pending', () => {
    const deadlines = new Deadlines<number>();
    for (let n = 0; n < 100; n++) deadlines.add(n, 60_000, () => {});
    expect(vi.getTimerCount()).toBe(1);
    for (let n = 0; n < 99; n++) deadlines.delete(n);
    expect(vi.getTimerCount()).toBe(1);
    // The last one settled: no timer may outlive the work (it would keep the Durable Object in memory).
    deadlines.delete(99);
    expect(vi.getTimerCount()).toBe(0);
    expect(deadlines.armed).toBe(false);
  });

  it('a deadline past what one timer can wait (2³¹−1 ms) is waited for in steps, not at once', () => {
    const deadlines = new Deadlines<string>();
    let expired = false;
    const ms = 30 * 24 * 3600_000; // 30 days
    const setTimer = vi.spyOn(globalThis, 'setTimeout');
    deadlines.add('far', ms, () => (expired = true));
    expect(setTimer.mock.calls[0]![1]).toBe(2 ** 31 - 1); // a longer one would fire at once, and again, in a loop
    setTimer.mockRestore();
    vi.advanceTimersByTime(2 ** 31 - 2);
    expect(expired).toBe(false);
    vi.advanceTimersByTime(ms - (2 ** 31 - 2) - 1);
    expect(expired).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1);
    expect(expired).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a timer set for a settled entry re-arms for the next deadline, and none is left after the last expires', () => {
    const deadlines = new Deadlines<string>();
    let expired = false;
    deadlines.add('first', 1_000, () => {});
    deadlines.add('a', 3_500, () => (expired = true));
    deadlines.delete('first');
    vi.advanceTimersByTime(3_000);
    expect(expired).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(500);
    expect(expired).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('clear() and an expiry that deletes the rest leave no timer', () => {
    const deadlines = new Deadlines<string>();
    deadlines.add('a', 100, () => deadlines.delete('b'));
    deadlines.add('b', 5_000, () => {});
    vi.advanceTimersByTime(100);
    expect(vi.getTimerCount()).toBe(0);
    deadlines.add('c', 100, () => {});
    deadlines.clear();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an entry added by an expiring one gets its own deadline', () => {
    const deadlines = new Deadlines<string>();
    const expired: string[] = [];
    deadlines.add('first', 100, () => {
      expired.push('first');
      deadlines.add('second', 50, () => expired.push('second'));
    });
    vi.advanceTimersByTime(150);
    expect(expired).toEqual(['first', 'second']);
  });

  it('keeps a value per entry until it expires or is deleted', () => {
    const deadlines = new Deadlines<string, { frame: string }>();
    const expired: string[] = [];
    deadlines.add('a', 100, () => expired.push('a'), { frame: 'A' });
    deadlines.add('b', 200, () => expired.push('b'), { frame: 'B' });
    expect(deadlines.get('a')).toEqual({ frame: 'A' });
    expect([...deadlines.values()]).toEqual([{ frame: 'A' }, { frame: 'B' }]);
    vi.advanceTimersByTime(100);
    expect(expired).toEqual(['a']);
    expect(deadlines.get('a')).toBeUndefined();
    expect(deadlines.delete('b')).toBe(true);
    expect([...deadlines.values()]).toEqual([]);
  });

  it('clear() drops every pending entry', () => {
    const deadlines = new Deadlines<string>();
    let expired = 0;
    deadlines.add('a', 10, () => expired++);
    deadlines.add('b', 20, () => expired++);
    deadlines.clear();
    vi.advanceTimersByTime(2_000);
    expect(expired).toBe(0);
    expect(deadlines.has('a')).toBe(false);
  });
});

describe('Deadlines with slack', () => {
  it('expires no earlier than the deadline and at most the slack later', () => {
    const deadlines = new Deadlines<string>({ slackMs: 100 });
    let expiredAt: number | undefined;
    const start = Date.now();
    deadlines.add('a', 1_000, () => (expiredAt = Date.now()));
    vi.advanceTimersByTime(999);
    expect(expiredAt).toBeUndefined();
    vi.advanceTimersByTime(101);
    expect(expiredAt! - start).toBeGreaterThanOrEqual(1_000);
    expect(expiredAt! - start).toBeLessThanOrEqual(1_100);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('entries that come and go one at a time share one timer, which outlives the last by at most the slack', () => {
    const deadlines = new Deadlines<number>({ slackMs: 100 });
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    try {
      for (let n = 0; n < 50; n++) {
        deadlines.add(n, 60_000, () => {});
        deadlines.delete(n);
        vi.advanceTimersByTime(1);
      }
      expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    } finally {
      setTimeoutSpy.mockRestore();
    }
    // 50 ms passed since the timer was set: it fires within the other 50, finds nothing and is gone.
    expect(deadlines.armed).toBe(true);
    vi.advanceTimersByTime(50);
    expect(deadlines.armed).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a long entry re-arms for its own deadline, and the timer goes as soon as it settles', () => {
    const deadlines = new Deadlines<string>({ slackMs: 100 });
    let expired = false;
    deadlines.add('long', 60_000, () => (expired = true));
    vi.advanceTimersByTime(100); // the first timer fires at the slack and re-arms for the deadline itself
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(10_000);
    deadlines.delete('long');
    // due in 50 s, far past the slack: cleared at once, not left to keep the object in memory
    expect(vi.getTimerCount()).toBe(0);
    expect(expired).toBe(false);
  });

  it('a short deadline added after a long one still expires in time', () => {
    const deadlines = new Deadlines<string>({ slackMs: 100 });
    const expired: string[] = [];
    deadlines.add('long', 60_000, () => expired.push('long'));
    vi.advanceTimersByTime(100);
    deadlines.add('short', 500, () => expired.push('short'));
    vi.advanceTimersByTime(600);
    expect(expired).toEqual(['short']);
  });

  it('refuses a slack that is not a finite number ≥ 0', () => {
    for (const slackMs of [Number.NaN, Number.POSITIVE_INFINITY, -1]) expect(() => new Deadlines({ slackMs })).toThrow(/finite number of milliseconds/);
  });
});

describe('Deadlines input', () => {
  it('refuses a deadline that would never expire (NaN, Infinity) or lies in the past', () => {
    const deadlines = new Deadlines<string>();
    for (const ms of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      expect(() => deadlines.add('x', ms, () => {})).toThrow(/finite number of milliseconds/);
    }
    expect(deadlines.size).toBe(0);
  });
});

describe('chunksBySize (bursts that fit one RPC message)', () => {
  const call = (chars: number) => [undefined, { args: 'x'.repeat(chars) }] as const;
  it('keeps the order and splits before a call that would pass the budget; a call larger than the budget goes alone', () => {
    const calls = [call(4), call(4), call(3), call(12), call(1), call(1)];
    const chunks = chunksBySize([...calls], 10);
    expect(chunks.map((chunk) => chunk.map((c) => c[1].args.length))).toEqual([[4, 4], [3], [12], [1, 1]]);
    expect(chunks.flat()).toEqual(calls);
  });
});

describe('misconfiguredRate', () => {
  it('accepts the defaults and names the first rate or size that is not a positive finite number', () => {
    expect(misconfiguredRate(defaultGatewayConfig())).toBeUndefined();
    const cases = [
      ['framesPerSecond', Number.NaN, 1], ['frameBurst', 0.5, 1], ['bytesPerSecond', -1, 1], ['byteBurst', Infinity, 1],
      ['maxFrameBytes', '4096', 256], ['maxFrameBytes', 255, 256], ['maxFrameBytes', Number.MAX_VALUE, 256], ['framesPerSecond', -Number.MAX_VALUE, 1],
    ] as const;
    for (const [field, value, min] of cases) {
      const reason = misconfiguredRate({ ...defaultGatewayConfig(), [field]: value })!;
      expect(reason).toBe(`Gateway misconfigured: config.${field} must be a number from ${min} to 2^53, got ${String(value)}${field === 'maxFrameBytes' ? '' : '; 1e12 lifts it'}`);
      expect(new TextEncoder().encode(reason).length).toBeLessThanOrEqual(123); // fits a close reason whole
    }
    expect(misconfiguredRate({ ...defaultGatewayConfig(), frameBurst: 1, maxFrameBytes: 256, bytesPerSecond: 1e12, byteBurst: Number.MAX_SAFE_INTEGER })).toBeUndefined();
  });
});

describe('TokenBuckets', () => {
  const ws = {} as WebSocket;
  it('lets a burst through, refuses past it, and refills at the sustained rate', () => {
    const buckets = new TokenBuckets();
    const take = (now: number) => buckets.take(ws, 10, 3, 1, now);
    expect([1, 2, 3, 4].map(() => take(1_000))).toEqual([true, true, true, false]);
    expect(take(1_050)).toBe(false); // half a frame refilled
    expect(take(1_100)).toBe(true);
    expect([1, 2, 3, 4].map(() => take(60_000))).toEqual([true, true, true, false]); // never above the burst
  });

  it('a cost takes that many tokens, or none when fewer are left', () => {
    const buckets = new TokenBuckets();
    expect(buckets.take(ws, 100, 300, 200, 0)).toBe(true);
    expect(buckets.take(ws, 100, 300, 150, 0)).toBe(false); // 100 left: refused, and nothing taken
    expect(buckets.take(ws, 100, 300, 100, 0)).toBe(true);
    expect(buckets.take(ws, 100, 300, 100, 500)).toBe(false); // 50 refilled
    expect(buckets.take(ws, 100, 300, 100, 1_000)).toBe(true);
  });

  it('a clock that steps back refills nothing at once and never stalls the bucket; what it counts twice stays within the burst', () => {
    const buckets = new TokenBuckets();
    const take = (now: number) => buckets.take(ws, 10, 2, 1, now);
    expect([take(3_600_000), take(3_600_000), take(3_600_000)]).toEqual([true, true, false]);
    expect(take(0)).toBe(false); // an hour back: no token from the step itself
    expect(take(100)).toBe(true); // refilling again 100 ms later, not an hour later
    expect([take(60_000), take(60_000), take(60_000)]).toEqual([true, true, false]); // never above the burst
  });

  it('a NaN time when the bucket is made does not leave it empty for good', () => {
    const buckets = new TokenBuckets();
    expect([buckets.take(ws, 10, 1, 1, Number.NaN), buckets.take(ws, 10, 1, 1, 1_000)]).toEqual([true, false]);
    expect(buckets.take(ws, 10, 1, 1, 1_100)).toBe(true);
  });

  it('a NaN limit refuses instead of allowing everything; Infinity allows everything', () => {
    expect(new TokenBuckets().take(ws, Number('x'), Number('x'), 1, 1)).toBe(false);
    const open = new TokenBuckets();
    expect(Array.from({ length: 100 }, (_, i) => open.take(ws, Infinity, Infinity, 1e9, i % 2)).every(Boolean)).toBe(true);
  });
});

describe('AnswerMemory', () => {
  it('counts UTF-8 bytes (surrogate pairs as 4), bounded by count and bytes, newest kept', () => {
    expect(utf8Length('aé€😀')).toBe(1 + 2 + 3 + 4);
    for (const text of ['', 'plain ascii', 'x'.repeat(10_000), `${'x'.repeat(1_000)}é`, '\ud800 lone', '\u007f\u0080']) {
      expect(utf8Length(text)).toBe(Buffer.byteLength(text)); // a lone surrogate: 3 bytes, as its replacement character
    }
    const memory = new AnswerMemory(() => ({ count: 3, bytes: 10 }));
    memory.remember('a', 'xxxx');
    memory.remember('b', 'éé'); // 4 bytes
    expect(memory.bytes).toBe(8);
    memory.remember('c', 'yyyy'); // 12 > 10: 'a' goes
    expect([memory.get('a'), memory.get('b'), memory.bytes]).toEqual([undefined, 'éé', 8]);
    memory.remember('d', 'z'.repeat(50)); // larger than the bound alone: kept, the rest go
    expect([memory.size, memory.bytes]).toEqual([1, 50]);
  });

  it('replays an answer at most once per channel', () => {
    const memory = new AnswerMemory(() => ({ count: 10, bytes: 1_000 }));
    const first = {};
    const second = {};
    memory.remember('id', 'answer', first);
    expect(memory.replay('id', first)).toBeNull();
    expect(memory.replay('id', second)).toBe('answer');
    expect(memory.replay('id', second)).toBeNull();
    expect(memory.replay('unknown', second)).toBeUndefined();
  });
});
