/**
 * NodeSessions on its own, over fake stubs: how many sessions stay open, when
 * each closes, and what a failed one leaves behind. The same sessions on real
 * workerd are in test/node-sessions.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_SESSION_CALLS, NodeSessions, SESSION_IDLE_MS, type SessionStub } from '../../src/gateway/node-sessions.js';
import { answerText } from '../../src/nodes/packed-envelope.js';
import type { NodeStub } from '../../src/nodes/targets.js';

/** A node whose sessions answer each call text with it, or as `answer` says; it records what was opened and closed. */
function node(answer: (text: string) => Promise<string> = async (text) => answerText({ ok: true, result: JSON.stringify(text) }) as string) {
  const log = { opened: 0, closed: 0 };
  const stub = {
    __meshgateSession() {
      log.opened++;
      const session: SessionStub = {
        callText: answer,
        [Symbol.dispose]: () => void log.closed++,
      };
      return Object.assign(Promise.resolve(session), session);
    },
  } as unknown as NodeStub;
  return { stub, log };
}

const to = (instance: string) => ({ binding: 'ROOM', instance });
/** Past the idle deadline and its slack (fake timers). */
const idle = () => vi.advanceTimersByTimeAsync(3 * SESSION_IDLE_MS);

describe('NodeSessions', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('takes Durable Object targets only', () => {
    const sessions = new NodeSessions(() => 4);
    expect(sessions.takes(to('a'))).toBe(true);
    expect(sessions.takes({ binding: 'WORKER' })).toBe(false);
  });

  it('keeps one session per object while calls come, closes it once idle, and opens a new one after MAX_SESSION_CALLS', async () => {
    const sessions = new NodeSessions(() => 4);
    const { stub, log } = node();
    for (let n = 0; n < MAX_SESSION_CALLS + 1; n++) expect(await sessions.callText(stub, to('a'), `t${n}`)).toEqual({ ok: true, result: `"t${n}"` });
    expect(log).toEqual({ opened: 2, closed: 1 });
    expect(sessions.size).toBe(1);
    await idle();
    expect(sessions.size).toBe(0);
    expect(log).toEqual({ opened: 2, closed: 2 });
  });

  it('holds at most maxOpen sessions: calls to more objects close the oldest', async () => {
    const sessions = new NodeSessions(() => 2);
    const { stub, log } = node();
    for (const instance of ['a', 'b', 'c', 'd']) await sessions.callText(stub, to(instance), 'x');
    expect(sessions.size).toBe(2);
    expect(log).toEqual({ opened: 4, closed: 2 });
    await idle();
    expect(log.closed).toBe(4);
  });

  it('a failed call closes its session once the other calls through it settle, and the next call opens a new one', async () => {
    const sessions = new NodeSessions(() => 4);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { stub, log } = node(async (text) => {
      if (text === 'fail') throw new Error('the session broke');
      if (text === 'slow') await held;
      return answerText({ ok: true, result: '1' }) as string;
    });
    const slow = sessions.callText(stub, to('a'), 'slow');
    await expect(sessions.callText(stub, to('a'), 'fail')).rejects.toThrow('the session broke');
    expect(log.closed).toBe(0);
    release();
    await slow;
    expect(log.closed).toBe(1);
    expect(await sessions.callText(stub, to('a'), 'ok')).toEqual({ ok: true, result: '1' });
    expect(log.opened).toBe(2);
  });

  it('a node with no session entry ran nothing: undefined, and that binding is not offered one again', async () => {
    const sessions = new NodeSessions(() => 4);
    const { stub } = node(async () => {
      throw new TypeError('The RPC receiver does not implement the method "__meshgateSession".');
    });
    expect(await sessions.callText(stub, to('a'), 'x')).toBeUndefined();
    expect(sessions.takes(to('b'))).toBe(false);
    expect(sessions.size).toBe(0);
  });
});
