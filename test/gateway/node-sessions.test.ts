/**
 * NodeSessions on its own, over fake stubs: how many sessions stay open, when
 * each closes, and what a failed one leaves behind. The same sessions on real
 * workerd are in test/node-sessions.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_SESSION_AGE_MS, MAX_SESSION_CALLS, NodeSessions, SESSION_IDLE_MS } from '../../src/gateway/node-sessions.js';
import type { NodeCallee, NodeStub, SessionStub } from '../../src/nodes/targets.js';

type Answer = (text: string) => Promise<string>;
const echo: Answer = async (text) => `r${text}`;

/**
 * A node whose sessions answer each call text as `answer` says (an echo by
 * default), opened as `opening` says; it records what was opened and closed.
 */
function node(answer: Answer = echo, opening: 'opens' | 'lacks entry' | 'overloaded' | 'held' = 'opens') {
  const log = { opened: 0, closed: 0 };
  let release: () => void = () => {};
  const stub = {
    __meshgateSession() {
      log.opened++;
      const session = { __meshgateCallText: answer, [Symbol.dispose]: () => void log.closed++ } as unknown as SessionStub;
      const failure = opening === 'lacks entry' ? new TypeError('The RPC receiver does not implement the method "__meshgateSession".')
        : opening === 'overloaded' ? new Error('Durable Object is overloaded.') : undefined;
      const opened = failure ? Promise.reject(failure)
        : opening === 'held' ? new Promise<SessionStub>((resolve) => (release = () => resolve(session))) : Promise.resolve(session);
      opened.catch(() => {});
      // calls pipelined into the opening reach the session once it is open, and fail as a failed opening did
      const pipelined = { __meshgateCallText: (call: string) => opened.then((open) => open.__meshgateCallText(call)) };
      return Object.assign(opened, pipelined);
    },
    __meshgateCallText: async (text: string) => `direct:${text}`,
  } as unknown as NodeStub;
  return { stub, log, release: () => release() };
}

/** An echo whose 'slow' calls wait until `release()`, which lets every one held so far answer. */
function slowCalls(): { answer: Answer; release: () => void } {
  const held: Array<() => void> = [];
  const answer: Answer = async (call) => (call === 'slow' ? new Promise<void>((resolve) => held.push(resolve)).then(() => 'rslow') : `r${call}`);
  return { answer, release: () => held.splice(0).forEach((resolve) => resolve()) };
}

const to = (instance: string) => ({ binding: 'ROOM', instance });
const text = (sessions: NodeSessions, stub: NodeStub, instance: string, call: string) =>
  sessions.run(to(instance), stub, (callee: NodeCallee) => callee.__meshgateCallText(call));
/** Past the idle window (fake timers). */
const idle = () => vi.advanceTimersByTimeAsync(2 * SESSION_IDLE_MS);
/** A call that goes on the stub, so the next one to the object opens a session. */
async function warm(sessions: NodeSessions, stub: NodeStub, instance: string): Promise<void> {
  expect(await text(sessions, stub, instance, 'warm')).toBe('direct:warm');
}

describe('NodeSessions', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('takes Durable Object targets only, and none at all with a bound below 1', async () => {
    expect(new NodeSessions(() => 4).takes(to('a'))).toBe(true);
    expect(new NodeSessions(() => 4).takes({ binding: 'WORKER' })).toBe(false);
    const none = new NodeSessions(() => 0);
    const { stub, log } = node();
    for (let n = 0; n < 3; n++) expect(await text(none, stub, 'a', 'x')).toBe('direct:x');
    expect(log.opened).toBe(0);
  });

  it('an isolated call goes on the stub and opens nothing; one soon after it opens a session; calls while one runs on the stub stay there', async () => {
    const sessions = new NodeSessions(() => 4);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { stub, log } = node();
    const onStub = stub as unknown as { __meshgateCallText(text: string): Promise<string> };
    const direct = onStub.__meshgateCallText;
    onStub.__meshgateCallText = async (call) => (call === 'slow' ? held.then(() => 'direct:slow') : direct(call));
    await warm(sessions, stub, 'a');
    await vi.advanceTimersByTimeAsync(SESSION_IDLE_MS);
    const slow = text(sessions, stub, 'a', 'slow'); // the call before settled too long ago: on the stub
    expect(await text(sessions, stub, 'a', 'x')).toBe('direct:x'); // one runs on the stub: this one may not overtake it
    expect(log.opened).toBe(0);
    release();
    expect(await slow).toBe('direct:slow');
    expect(await text(sessions, stub, 'a', 'y')).toBe('ry');
    expect(sessions.size).toBe(1);
    expect(log.opened).toBe(1);
  });

  it('keeps one session per object while calls come, closes it once idle, and opens a new one after MAX_SESSION_CALLS', async () => {
    const sessions = new NodeSessions(() => 4);
    const { stub, log } = node();
    await warm(sessions, stub, 'a');
    for (let n = 0; n < MAX_SESSION_CALLS + 1; n++) expect(await text(sessions, stub, 'a', `t${n}`)).toBe(`rt${n}`);
    expect(log).toEqual({ opened: 2, closed: 1 });
    expect(sessions.size).toBe(1);
    await vi.advanceTimersByTimeAsync(SESSION_IDLE_MS / 2);
    expect(await text(sessions, stub, 'a', 'later')).toBe('rlater'); // within the window: the same session
    await idle();
    expect(sessions.size).toBe(0);
    expect(log).toEqual({ opened: 2, closed: 2 });
  });

  it('does not replace a session while calls run through it (their order would not hold), only once it is idle', async () => {
    const sessions = new NodeSessions(() => 4);
    const { answer, release } = slowCalls();
    const { stub, log } = node(answer);
    await warm(sessions, stub, 'a');
    const slow = text(sessions, stub, 'a', 'slow');
    for (let n = 0; n < MAX_SESSION_CALLS + 10; n++) await text(sessions, stub, 'a', 'fast');
    expect(log.opened).toBe(1);
    release();
    await slow;
    await text(sessions, stub, 'a', 'next');
    expect(log).toEqual({ opened: 2, closed: 1 });
  });

  it('a session that lived MAX_SESSION_AGE_MS is replaced at its next call; one that runs a call longer than the idle window stays open for it', async () => {
    const sessions = new NodeSessions(() => 4);
    const { answer, release } = slowCalls();
    const { stub, log } = node(answer);
    await warm(sessions, stub, 'a');
    const slow = text(sessions, stub, 'a', 'slow');
    await vi.advanceTimersByTimeAsync(5 * SESSION_IDLE_MS); // its lease came due with the call running: renewed
    expect(log).toEqual({ opened: 1, closed: 0 });
    release();
    await slow;
    for (let step = 0; step < MAX_SESSION_AGE_MS / (SESSION_IDLE_MS / 2); step++) {
      await text(sessions, stub, 'a', 'keep');
      await vi.advanceTimersByTimeAsync(SESSION_IDLE_MS / 2);
    }
    expect(await text(sessions, stub, 'a', 'x')).toBe('rx');
    expect(log).toEqual({ opened: 2, closed: 1 });
  });

  it('a session never idle is replaced at four times MAX_SESSION_CALLS, its running call still finishing through it', async () => {
    const sessions = new NodeSessions(() => 4);
    const { answer, release } = slowCalls();
    const { stub, log } = node(answer);
    await warm(sessions, stub, 'a');
    const slow = text(sessions, stub, 'a', 'slow');
    for (let n = 0; n < 4 * MAX_SESSION_CALLS; n++) await text(sessions, stub, 'a', 'fast');
    expect(log).toEqual({ opened: 2, closed: 0 });
    release();
    expect(await slow).toBe('rslow');
    expect(log.closed).toBe(1);
  });

  it('holds at most maxOpen sessions: a new one takes the place of the oldest idle one; with every one busy, the call goes on the stub', async () => {
    const sessions = new NodeSessions(() => 2);
    const { answer, release } = slowCalls();
    const { stub, log } = node(answer);
    for (const instance of ['a', 'b', 'c', 'd']) await warm(sessions, stub, instance);
    const slowA = text(sessions, stub, 'a', 'slow');
    expect(await text(sessions, stub, 'b', 'x')).toBe('rx');
    expect(await text(sessions, stub, 'c', 'x')).toBe('rx'); // b was idle: it closed to make room
    expect(log).toEqual({ opened: 3, closed: 1 });
    const slowC = text(sessions, stub, 'c', 'slow');
    // a and c are busy: closing either would let a later call to it overtake the one it runs
    expect(await text(sessions, stub, 'd', 'x')).toBe('direct:x');
    expect(log).toEqual({ opened: 3, closed: 1 });
    release();
    expect(await Promise.all([slowA, slowC])).toEqual(['rslow', 'rslow']);
    await idle();
    expect(log).toEqual({ opened: 3, closed: 3 });
  });

  it('a failed call closes its session once the other calls through it settle, and the next call opens a new one', async () => {
    const sessions = new NodeSessions(() => 4);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { stub, log } = node(async (call) => {
      if (call === 'fail') throw new Error('the session broke');
      if (call === 'slow') await held;
      return 'r1';
    });
    await warm(sessions, stub, 'a');
    const slow = text(sessions, stub, 'a', 'slow');
    await expect(text(sessions, stub, 'a', 'fail')).rejects.toThrow('the session broke');
    expect(log.closed).toBe(0);
    release();
    await slow;
    expect(log.closed).toBe(1);
    expect(await text(sessions, stub, 'a', 'ok')).toBe('r1');
    expect(log.opened).toBe(2);
  });

  it('a node with no session entry ran nothing: the call goes to its stub, and that binding is not offered a session again', async () => {
    const sessions = new NodeSessions(() => 4);
    const { stub, log } = node(echo, 'lacks entry');
    await warm(sessions, stub, 'a');
    expect(await text(sessions, stub, 'a', 'x')).toBe('direct:x');
    expect(sessions.takes(to('b'))).toBe(false);
    expect(await text(sessions, stub, 'a', 'y')).toBe('direct:y');
    expect(log.opened).toBe(1);
    expect(sessions.size).toBe(0);
  });

  it('an opening that fails for another reason fails its call (it is not sent again), and a later call may open a new session', async () => {
    const sessions = new NodeSessions(() => 4);
    const { stub, log } = node(echo, 'overloaded');
    await warm(sessions, stub, 'a');
    await expect(text(sessions, stub, 'a', 'x')).rejects.toThrow('overloaded');
    expect(sessions.takes(to('a'))).toBe(true);
    expect(sessions.size).toBe(0);
    await expect(text(sessions, stub, 'a', 'x')).rejects.toThrow('overloaded');
    expect(log.opened).toBe(2);
  });
});
