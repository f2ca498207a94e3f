/**
 * The client's pacer and batches against a hostile or misconfigured gateway
 * status and a careless application: a rate so small its wait overflows the
 * timer, and calls that settle while their frames are still held back.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FramePacer } from '../src/client/frame-pacer.js';

describe('FramePacer against a hostile connection_status', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('framesPerSecond 1e-9 holds frames on one timer that does not fire within 200 ms (a wait past 2^31 ms would fire at once, every ms)', async () => {
    const delays: number[] = [];
    const real = globalThis.setTimeout;
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      delays.push(ms ?? 0);
      return real(fn, ms);
    }) as typeof setTimeout);
    const sent: string[] = [];
    const p = new FramePacer((text) => (sent.push(text), true), () => true);
    p.limits = { framesPerSecond: 1e-9, frameBurst: 2 };
    p.send('a');
    p.send('b');
    await new Promise((r) => real(r, 200));
    p.dropHeld();
    expect(sent).toEqual(['a']);
    expect(delays.length).toBe(1); // armed once, not re-armed ~200 times
    expect(delays[0]).toBeLessThanOrEqual(2_147_483_647);
  });
});
