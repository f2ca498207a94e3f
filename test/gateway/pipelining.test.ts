/**
 * Pipelining on its own: which calls wait a timer turn to go into the mesh
 * together, and which answers wait to go to the client together. The end
 * to end check, on workerd, is in delivery.test.ts (bursts).
 */
import { describe, expect, it } from 'vitest';
import { Pipelining } from '../../src/gateway/pipelining.js';

describe('Pipelining', () => {
  it('a client that waits for each answer is never pipelining', () => {
    const calls = new Pipelining();
    for (let n = 0; n < 5; n++) {
      expect(calls.started(`c${n}`)).toBe(false);
      expect(calls.settled(`c${n}`)).toBe(false);
    }
    expect(calls.size).toBe(0);
  });

  it('beside a long-running call, only the first sequential call counts as pipelined, and no answer waits', () => {
    const calls = new Pipelining();
    expect(calls.started('long')).toBe(false);
    expect(calls.started('c0')).toBe(true); // sent while the call before it runs
    expect(calls.settled('c0')).toBe(false);
    for (let n = 1; n < 5; n++) {
      expect(calls.started(`c${n}`)).toBe(false);
      expect(calls.settled(`c${n}`)).toBe(false);
    }
    expect(calls.settled('long')).toBe(false);
    expect(calls.size).toBe(0);
  });

  it('a client with many in flight: every call after the first is pipelined, and every answer but the newest has others behind it', () => {
    const calls = new Pipelining();
    const behind = Array.from({ length: 10 }, (_, n) => calls.started(`p${n}`));
    expect(behind).toEqual([false, ...Array(9).fill(true)]);
    const held = Array.from({ length: 10 }, (_, n) => calls.settled(`p${n}`));
    expect(held).toEqual([...Array(9).fill(true), false]);
    expect(calls.size).toBe(0);
  });

  it('answers that come out of order have others behind them until the newest still running settles', () => {
    const calls = new Pipelining();
    for (const id of ['a', 'b', 'c', 'd']) calls.started(id);
    expect(calls.settled('d')).toBe(false); // the newest: nothing was sent after it
    expect(calls.settled('a')).toBe(true); // b and c, sent after it, still run
    expect(calls.settled('c')).toBe(false); // now the newest running
    expect(calls.settled('b')).toBe(false);
    expect(calls.started('e')).toBe(false); // the call before it (d) is done
    expect(calls.settled('e')).toBe(false);
  });

  it('an answer to a call that never ran (a refusal) or one settled twice waits for nothing and changes nothing', () => {
    const calls = new Pipelining();
    calls.started('a');
    calls.started('b');
    expect(calls.settled('refused')).toBe(false);
    expect(calls.settled('a')).toBe(true);
    expect(calls.settled('a')).toBe(false);
    expect(calls.size).toBe(1);
  });
});
