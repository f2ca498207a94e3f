/**
 * The client's pacer and batches against a hostile or misconfigured gateway
 * status and a careless application: a rate so small its wait overflows the
 * timer, and calls that settle while their frames are still held back.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { SocketClass } from '../src/client/socket.js';
import { FramePacer } from '../src/client/frame-pacer.js';
import { MeshClient } from '../src/client/index.js';
import { CallTimeoutError } from '../src/protocol/errors.js';
import { decodeServerMessage } from '../src/protocol/frames.js';
import { withTestMesh } from './support/mesh.js';

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
    expect(delays[0]).toBeLessThanOrEqual(1_000);
  });

  it('under framesPerSecond 1e-9, held frames no longer wanted (their calls timed out) are dropped within a second, not kept for ever', () => {
    vi.useFakeTimers();
    try {
      const sent: string[] = [];
      const p = new FramePacer((text) => (sent.push(text), true), () => true);
      p.limits = { framesPerSecond: 1e-9, frameBurst: 2 };
      p.send('a');
      let live = true;
      for (let i = 0; i < 10_000; i++) p.send(`held${i}`, { wanted: () => live });
      expect(p.held).toBe(10_000);
      live = false;
      vi.advanceTimersByTime(1_000);
      expect(p.held).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
      expect(sent).toEqual(['a']);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('on workerd, a gateway allowing 2 frames/s (the client paces at 1.6/s after one frame)', () => {
  it('calls that time out while their frames are held back are never sent: the gateway does not run what the app was told timed out', async () => {
    await withTestMesh({ env: { FRAMES_PER_SECOND: '2', FRAME_BURST: '2' } }, async (mesh) => {
      const client = new MeshClient({ url: mesh.url.origin, accessToken: await mesh.token('hal'), WebSocket: WebSocket as unknown as SocketClass });
      try {
        await client.connect();
        const counter = client.node<{ increment(by: number): number }>('COUNTER', 'hal-held', { timeoutMs: 300 });
        const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => counter.increment(1)));
        // the first went at once; the other four were held past their 300 ms
        expect(outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason)).toSatisfy((reasons: unknown[]) =>
          reasons.length >= 4 && reasons.every((r) => r instanceof CallTimeoutError));
        // a call made now is held behind whatever is still held: when it is answered, the others have gone out or been dropped
        const count = await client.node<{ increment(by: number): number }>('COUNTER', 'hal-held', { timeoutMs: 20_000 }).increment(0);
        expect(count).toBe(5 - outcomes.filter((o) => o.status === 'rejected').length);
      } finally {
        client.disconnect();
      }
    });
  }, 30_000);
});

describe('on workerd, held frames when the socket goes', () => {
  it('calls still held back (never sent) when the connection drops are sent after the reconnect, not failed as "outcome unknown"', async () => {
    await withTestMesh({ env: { FRAMES_PER_SECOND: '2', FRAME_BURST: '2' }, graceMs: 60_000 }, async (mesh) => {
      const client = await mesh.testing.client({ sub: 'ida' });
      const counter = client.node<{ increment(by: number): number }>('COUNTER', 'ida-held', { timeoutMs: 20_000 });
      await counter.increment(0); // connected, and the client's one-frame burst spent: what follows is held
      const calls = Array.from({ length: 3 }, () => counter.increment(1));
      const cut = mesh.testing.cutNetwork(client);
      await mesh.testing.waitForGatewayState(client, 'gracePeriod');
      await mesh.testing.endGracePeriod(client); // the next connect must re-subscribe: the gateway has no memory of what was sent
      cut.restore();
      const outcomes = (await Promise.allSettled(calls)).map((o) => (o.status === 'fulfilled' ? 'ran' : (o.reason as Error).name));
      // on a loaded machine the first may have left before the cut (then its outcome is rightly unknown); the others never did
      expect(['ran', 'OutcomeUnknownError']).toContain(outcomes[0]);
      expect(outcomes.slice(1)).toEqual(['ran', 'ran']);
    });
  }, 30_000);
});

describe('a batch from the gateway', () => {
  it('with one frame the client cannot read (a newer frame type) keeps the others: their calls are answered, not left to time out', () => {
    const bad: unknown[] = [];
    const frames = decodeServerMessage(JSON.stringify([
      { type: 'call_response', id: 'a', ok: true, result: '[1]' },
      { type: 'from_a_newer_gateway' },
      { type: 'call_response', id: 'b', ok: true, result: '[2]' },
    ]), (error) => bad.push(error));
    expect(frames.map((f) => (f as { id?: string }).id)).toEqual(['a', 'b']);
    expect(bad).toHaveLength(1);
    expect(() => decodeServerMessage('[]', () => undefined)).toThrow(/1 to 256/);
  });
});
