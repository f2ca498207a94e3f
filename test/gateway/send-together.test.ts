/**
 * GatewaySockets on its own: the batches `together` makes for a client that
 * batches stay within maxFrameBytes; `sendSoon` holds answers for one timer
 * turn and sends them as one batch, and nothing sent after them overtakes them.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GatewaySockets, safeClose, safeSend } from '../../src/gateway/sockets.js';
import { MAX_BATCH_FRAMES } from '../../src/protocol/frames.js';

type FakeSocket = WebSocket & { sent: string[]; closed?: number };

function socket(): FakeSocket {
  const sent: string[] = [];
  const ws = { sent, send: (text: string) => void sent.push(text), close: (code: number) => void (ws.closed = sent.length, code) } as { sent: string[]; closed?: number };
  return ws as unknown as FakeSocket;
}

/** The frames a socket was sent, batches taken apart, as their ids. */
const ids = (ws: FakeSocket) => ws.sent.flatMap((m) => (m.startsWith('[') ? JSON.parse(m) : [JSON.parse(m)])).map((f: { id: string }) => f.id);
const answer = (id: string) => JSON.stringify({ type: 'call_response', id, ok: true, result: '[1]' });

describe('GatewaySockets.together', () => {
  it('never makes a batch longer than maxChars, even when the frames fit exactly but for the brackets', () => {
    const sockets = new GatewaySockets({} as DurableObjectState);
    const ws = socket();
    sockets.takesBatches(ws);
    const frame = (n: number) => JSON.stringify({ type: 'call_response', id: 'x', ok: true, result: 'y'.repeat(n) });
    const texts = [frame(40), frame(40), frame(40)];
    const L = texts[0]!.length;
    for (const maxChars of [2 * L + 1, 2 * L + 2, 2 * L + 3, 3 * L + 3, 3 * L + 4]) {
      ws.sent.length = 0;
      sockets.together(() => {
        for (const text of texts) sockets.send(ws, text);
      }, maxChars);
      expect(ws.sent.every((m) => m.length <= maxChars), `maxChars ${maxChars}: ${ws.sent.map((m) => m.length).join(', ')}`).toBe(true);
      expect(ws.sent.flatMap((m) => (m.startsWith('[') ? JSON.parse(m) : [JSON.parse(m)])).length).toBe(3);
    }
  });
});

describe('GatewaySockets.sendSoon', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('holds answers for a socket that batches until the next timer turn, then sends them as one batch in order', () => {
    const sockets = new GatewaySockets({} as DurableObjectState);
    const [a, b] = [socket(), socket()];
    sockets.takesBatches(a);
    sockets.takesBatches(b);
    for (const id of ['a1', 'a2', 'a3']) sockets.sendSoon(a, answer(id), 1 << 20);
    sockets.sendSoon(b, answer('b1'), 1 << 20);
    expect(a.sent).toEqual([]);
    expect(vi.getTimerCount()).toBe(1); // one timer for every socket held
    vi.runAllTimers();
    expect(a.sent).toHaveLength(1);
    expect(ids(a)).toEqual(['a1', 'a2', 'a3']);
    expect(b.sent).toEqual([answer('b1')]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a socket that never sent a batch gets each answer at once, and no timer is set', () => {
    const sockets = new GatewaySockets({} as DurableObjectState);
    const ws = socket();
    sockets.sendSoon(ws, answer('x'), 1 << 20);
    expect(ws.sent).toEqual([answer('x')]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('anything else sent on the socket, or its close, first sends what is held: nothing overtakes an answer', () => {
    const sockets = new GatewaySockets({} as DurableObjectState);
    const ws = socket();
    sockets.takesBatches(ws);
    sockets.sendSoon(ws, answer('held1'), 1 << 20);
    sockets.sendSoon(ws, answer('held2'), 1 << 20);
    safeSend(ws, JSON.stringify({ type: 'incoming_call', id: 'push' }));
    expect(ids(ws)).toEqual(['held1', 'held2', 'push']);
    sockets.sendSoon(ws, answer('last'), 1 << 20);
    safeClose(ws, 1000, 'bye');
    expect(ids(ws)).toEqual(['held1', 'held2', 'push', 'last']);
    expect(ws.closed).toBe(ws.sent.length); // closed after the last answer went
    vi.runAllTimers();
    expect(ids(ws)).toHaveLength(4); // the timer sends nothing twice
  });

  it('a held batch stays within maxChars', () => {
    const sockets = new GatewaySockets({} as DurableObjectState);
    const ws = socket();
    sockets.takesBatches(ws);
    const maxChars = 2 * answer('n0').length + 3;
    for (let n = 0; n < 5; n++) sockets.sendSoon(ws, answer(`n${n}`), maxChars);
    vi.runAllTimers();
    expect(ws.sent.every((m) => m.length <= maxChars)).toBe(true);
    expect(ids(ws)).toEqual(['n0', 'n1', 'n2', 'n3', 'n4']);
    expect(ws.sent.length).toBe(3);
  });

  it('holds at most one batch per socket: a full one goes at once, by frames and by characters', () => {
    const sockets = new GatewaySockets({} as DurableObjectState);
    const [few, large] = [socket(), socket()];
    sockets.takesBatches(few);
    sockets.takesBatches(large);
    for (let n = 0; n < MAX_BATCH_FRAMES * 2 + 1; n++) sockets.sendSoon(few, answer(`f${n}`), 1 << 20);
    expect(few.sent).toHaveLength(2); // two full batches sent without the timer, one answer held
    const big = (id: string) => JSON.stringify({ type: 'call_response', id, ok: true, result: 'x'.repeat(64 * 1024) });
    const maxChars = 1 << 20;
    for (let n = 0; n < 600; n++) sockets.sendSoon(large, big(`b${n}`), maxChars);
    const heldChars = 600 * big('b000').length - large.sent.reduce((sum, m) => sum + m.length, 0);
    expect(heldChars).toBeLessThan(maxChars + 64 * 1024); // what is still held: under one batch (the batch's own commas aside)
    expect(large.sent.every((m) => m.length <= maxChars)).toBe(true);
    vi.runAllTimers();
    expect(ids(few)).toEqual(Array.from({ length: MAX_BATCH_FRAMES * 2 + 1 }, (_, n) => `f${n}`));
    expect(ids(large)).toEqual(Array.from({ length: 600 }, (_, n) => `b${n}`));
  });

  it('its timer is cleared once another send has sent everything held: nothing is left pending', () => {
    const sockets = new GatewaySockets({} as DurableObjectState);
    const [a, b] = [socket(), socket()];
    sockets.takesBatches(a);
    sockets.takesBatches(b);
    sockets.sendSoon(a, answer('a1'), 1 << 20);
    sockets.sendSoon(b, answer('b1'), 1 << 20);
    safeSend(a, answer('a2'));
    expect(vi.getTimerCount()).toBe(1); // b's answer still waits for it
    safeClose(b, 1000, 'bye');
    expect(vi.getTimerCount()).toBe(0);
    expect([ids(a), ids(b)]).toEqual([['a1', 'a2'], ['b1']]);
    sockets.sendSoon(a, answer('a3'), 1 << 20); // and a later hold arms a timer again
    expect(vi.getTimerCount()).toBe(1);
    vi.runAllTimers();
    expect(ids(a)).toEqual(['a1', 'a2', 'a3']);
  });
});
