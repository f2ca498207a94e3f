/**
 * A cancelled call's `cancel` frame reaches the gateway even when it cannot
 * leave at once: the socket was down, or the pacer held it back when the
 * socket went. And no `cancel` is sent for a call the gateway never heard of
 * (its frame still held back), so it costs no frame of the gateway's rate.
 * OutgoingCalls and a FramePacer on fake timers; the end-to-end case is in
 * streams-cancel.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FramePacer } from '../../src/client/frame-pacer.js';
import { OutgoingCalls } from '../../src/client/outgoing.js';
import { CancelledError, OutcomeUnknownError } from '../../src/protocol/errors.js';

const COUNTER = { binding: 'COUNTER', instance: 'x' };

/** Calls going out through a pacer onto a switchable socket; `sent` is every frame that left, parsed. */
function rig(maxQueued = 100) {
  const socket = { open: true, sent: [] as Array<{ type: string; id: string }> };
  const pacer = new FramePacer((text) => (socket.open ? (socket.sent.push(JSON.parse(text)), true) : false), () => socket.open);
  const calls = new OutgoingCalls(maxQueued, 60_000, 1 << 20);
  const send = (text: string, hooks?: Parameters<FramePacer['send']>[1]) => pacer.send(text, hooks);
  const call = (signal: AbortSignal) => calls.start(COUNTER, 'slow', [], { signal }, send).catch((e: unknown) => e);
  const drop = () => {
    socket.open = false;
    pacer.dropHeld();
  };
  const reconnect = (subscriptionRequired = false) => {
    socket.open = true;
    calls.flush(send, subscriptionRequired, (m) => new OutcomeUnknownError(m));
  };
  const of = (type: string) => socket.sent.filter((f) => f.type === type).map((f) => f.id);
  return { socket, pacer, calls, call, drop, reconnect, of };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('a cancelled call’s cancel frame', () => {
  it('goes at once when the socket is open and nothing is held', async () => {
    const { call, of } = rig();
    const stop = new AbortController();
    const outcome = call(stop.signal);
    stop.abort();
    expect(await outcome).toBeInstanceOf(CancelledError);
    expect(of('cancel')).toEqual(of('call'));
  });

  it('cancelled while the socket is down (the call had gone out before): goes first on the next socket', async () => {
    const { call, drop, reconnect, of, socket } = rig();
    const stop = new AbortController();
    const outcome = call(stop.signal);
    const id = of('call')[0];
    drop();
    stop.abort();
    expect(await outcome).toBeInstanceOf(CancelledError);
    expect(of('cancel')).toEqual([]);
    reconnect();
    expect(socket.sent.at(-1)).toEqual({ type: 'cancel', id });
  });

  it('held back by the pacer when the socket went: sent after the reconnect, not lost', async () => {
    const { pacer, call, drop, reconnect, of } = rig();
    pacer.limits = { framesPerSecond: 1, frameBurst: 2 }; // one frame at once, then one every 1.25 s
    const stop = new AbortController();
    const outcome = call(stop.signal);
    stop.abort(); // the call left; its cancel is held for the next token
    expect(await outcome).toBeInstanceOf(CancelledError);
    expect(pacer.held).toBe(1);
    drop();
    expect(of('cancel')).toEqual([]);
    reconnect();
    vi.advanceTimersByTime(2_000); // the client paces at 80 % of the gateway's rate
    expect(of('cancel')).toEqual(of('call'));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('is never sent for a call whose own frame was still held: the gateway never heard of it', async () => {
    const { pacer, call, of, socket } = rig();
    pacer.limits = { framesPerSecond: 1, frameBurst: 2 };
    const first = new AbortController();
    const second = new AbortController();
    void call(first.signal); // takes the one token
    const held = call(second.signal);
    expect(pacer.held).toBe(1);
    second.abort();
    expect(await held).toBeInstanceOf(CancelledError);
    vi.advanceTimersByTime(3_000);
    expect(socket.sent).toHaveLength(1); // the first call only: neither the held call nor a cancel for it
    expect(of('cancel')).toEqual([]);
    expect(pacer.held).toBe(0);
    first.abort();
  });

  it('is dropped when the gateway lost its memory of the client (it knows none of the calls)', async () => {
    const { call, drop, reconnect, of } = rig();
    const stop = new AbortController();
    const outcome = call(stop.signal);
    drop();
    stop.abort();
    await outcome;
    reconnect(true);
    expect(of('cancel')).toEqual([]);
  });

  it(`at most maxQueuedCalls wait for a socket (the oldest are forgotten)`, async () => {
    const { call, drop, reconnect, of } = rig(3);
    const stops = Array.from({ length: 5 }, () => new AbortController());
    const outcomes = stops.map((s) => call(s.signal));
    const ids = of('call');
    drop();
    for (const s of stops) s.abort();
    await Promise.all(outcomes);
    reconnect();
    expect(of('cancel')).toEqual(ids.slice(2));
  });
});
