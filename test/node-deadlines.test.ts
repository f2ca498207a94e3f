/** A node's side of call deadlines (src/nodes/call-deadlines.ts) on fake timers; end to end: gateway-calls.test.ts › a node that never answers. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { nodeDeadlines, NODE_DEADLINE_SLACK_MS, withinDeadline } from '../src/nodes/call-deadlines.js';
import type { CallContext } from '../src/nodes/envelope.js';
import { signalOf } from '../src/nodes/signals.js';
import { OutcomeUnknownError } from '../src/protocol/errors.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const origin = { kind: 'client' as const, gateway: 'GATEWAY', instance: 'a.t', sub: 'a' };
const contextOf = (): CallContext => ({ origin, caller: origin, chain: [origin], state: {} });

describe('withinDeadline on a Durable Object’s shared timer', () => {
  it('async calls that come and go share one timer, which is gone within the slack after the last', async () => {
    const deadlines = nodeDeadlines();
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    try {
      for (let n = 0; n < 20; n++) expect(await withinDeadline(Promise.resolve(n), 'm', 60_000, contextOf(), deadlines)).toBe(n);
      expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
    } finally {
      setTimeoutSpy.mockRestore();
    }
    vi.advanceTimersByTime(NODE_DEADLINE_SLACK_MS);
    expect(deadlines.armed).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a method still running past the deadline: the caller gets OutcomeUnknownError within the slack, and the method its aborted signal', async () => {
    const deadlines = nodeDeadlines();
    const context = contextOf();
    let settled: unknown;
    void withinDeadline(new Promise(() => {}), 'slowMethod', 1_000, context, deadlines).catch((error) => (settled = error));
    await vi.advanceTimersByTimeAsync(999);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1 + NODE_DEADLINE_SLACK_MS);
    expect(settled).toBeInstanceOf(OutcomeUnknownError);
    expect(((settled as Error).cause as Error).message).toMatch(/stopped waiting after 1000 ms/);
    expect(signalOf(context).aborted).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a sync result is handed back as it is, with no timer', async () => {
    const deadlines = nodeDeadlines();
    expect(await withinDeadline('now', 'm', 1_000, contextOf(), deadlines)).toBe('now');
    expect(deadlines.armed).toBe(false);
  });
});

describe('withinDeadline without a shared timer (a Worker: an instance per request)', () => {
  it('expires exactly at the deadline and clears its own timer when the method settles first', async () => {
    let settled: unknown;
    void withinDeadline(new Promise(() => {}), 'm', 500, contextOf()).catch((error) => (settled = error));
    await vi.advanceTimersByTimeAsync(499);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toBeInstanceOf(OutcomeUnknownError);
    expect(await withinDeadline(Promise.resolve(1), 'm', 500, contextOf())).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
