/**
 * The client keeps under the gateway's frame rate (connection_status carries
 * it): a stream read with a window of one credits every chunk, and a flush of
 * many waiting calls sends them all at once, yet neither closes the socket
 * (1008); the frames it holds back go out in order and nothing outlives them.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FramePacer } from '../src/client/frame-pacer.js';
import type { StreamDO } from './fixtures/streams-worker.js';
import { useStreamMesh } from './support/stream-mesh.js';

// 200 frames/s in bursts of 40: the client paces at 160/s after a burst of 20.
const suite = useStreamMesh({ env: { FRAMES_PER_SECOND: '200', FRAME_BURST: '40' } });

describe('on workerd, a gateway allowing 200 frames/s in bursts of 40', () => {
  it('a stream read with streamWindow 1 (a credit per chunk) reads 300 chunks on one socket, never closed for its rate', async () => {
    const states: string[] = [];
    const client = await suite.connected('pace-stream', { onStateChange: (state) => void states.push(state) });
    const node = client.node<StreamDO>('STREAMS', 'pace', { streamWindow: 1 });
    const read: number[] = [];
    for await (const n of await node.count('pace-300', 300)) read.push(n);
    expect(read).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(states).toEqual(['connecting', 'connected']); // connected once and throughout: no 1008, no reconnect
  }, 20_000);

  it('100 calls made at once go out paced, every one answered on the first socket', async () => {
    const states: string[] = [];
    const client = await suite.connected('pace-calls', { onStateChange: (state) => void states.push(state) });
    const node = client.node<StreamDO>('STREAMS', 'pace-calls');
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => node.echo(i)));
    expect(answers).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(states).toEqual(['connecting', 'connected']);
    // 20 at once, then 160/s: the last of the 80 others leaves about 0.5 s later.
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  }, 20_000);
});

describe('FramePacer', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function pacer(open = () => true) {
    const sent: string[] = [];
    const p = new FramePacer((text) => (sent.push(text), true), open);
    return { p, sent };
  }

  it('sends at once with no limits known, and holds nothing', () => {
    const { p, sent } = pacer();
    for (let i = 0; i < 10_000; i++) p.send(`f${i}`);
    expect(sent).toHaveLength(10_000);
    expect(p.held).toBe(0);
  });

  it('sends half the burst at once, then 80 % of the rate, in order, and leaves no timer once drained', () => {
    vi.useFakeTimers();
    const { p, sent } = pacer();
    p.limits = { framesPerSecond: 100, frameBurst: 20 };
    for (let i = 0; i < 30; i++) expect(p.send(`f${i}`)).toBe(true);
    expect(sent).toHaveLength(10);
    expect(p.held).toBe(20);
    vi.advanceTimersByTime(100); // 80 frames/s: 8 more
    expect(sent).toHaveLength(18);
    vi.advanceTimersByTime(200);
    expect(sent).toEqual(Array.from({ length: 30 }, (_, i) => `f${i}`));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps pacing when the system clock is set back an hour: it runs on performance.now, not Date.now', () => {
    vi.useFakeTimers();
    const { p, sent } = pacer();
    p.limits = { framesPerSecond: 100, frameBurst: 20 };
    for (let i = 0; i < 30; i++) p.send(`f${i}`);
    expect(sent).toHaveLength(10);
    vi.setSystemTime(Date.now() - 3_600_000); // Date steps back; performance.now runs on
    vi.advanceTimersByTime(300);
    expect(sent).toHaveLength(30);
  });

  it('a frame sent while others are held waits behind them, even when a token is free', () => {
    vi.useFakeTimers();
    const { p, sent } = pacer();
    p.limits = { framesPerSecond: 10, frameBurst: 2 };
    p.send('a');
    p.send('b');
    vi.advanceTimersByTime(50); // not yet a whole token at 8/s
    p.send('c');
    vi.advanceTimersByTime(1_000);
    expect(sent).toEqual(['a', 'b', 'c']);
  });

  it('refuses (false) with no socket open, and drops what it held when the socket goes', () => {
    vi.useFakeTimers();
    let open = true;
    const { p, sent } = pacer(() => open);
    p.limits = { framesPerSecond: 10, frameBurst: 2 };
    p.send('a');
    p.send('b');
    expect(p.held).toBe(1);
    open = false;
    expect(p.send('c')).toBe(false);
    p.dropHeld();
    expect(p.held).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(sent).toEqual(['a']);
  });

  it('a reconnect brings no fresh burst: the gateway bucket is per identity', () => {
    vi.useFakeTimers();
    const { p, sent } = pacer();
    p.limits = { framesPerSecond: 10, frameBurst: 10 };
    for (let i = 0; i < 5; i++) p.send(`a${i}`);
    p.dropHeld();
    p.limits = { framesPerSecond: 10, frameBurst: 10 }; // the next connection_status says the same
    p.send('b');
    expect(sent).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
  });

  it('ignores limits that are not positive numbers (unpaced)', () => {
    const { p, sent } = pacer();
    p.limits = { framesPerSecond: -1, frameBurst: Number.NaN };
    for (let i = 0; i < 100; i++) p.send('x');
    expect(sent).toHaveLength(100);
  });

  describe('characters', () => {
    // 100 characters/s in bursts of 200: the client sends 80/s after a burst of 100.
    const limits = { framesPerSecond: 1_000, frameBurst: 1_000, bytesPerSecond: 100, byteBurst: 200 };

    it('holds a frame its character bucket cannot cover, within the frame rate, and sends it once refilled', () => {
      vi.useFakeTimers();
      const { p, sent } = pacer();
      p.limits = limits;
      const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(60));
      p.send(a!);
      p.send(b!); // 40 left: held
      p.send(c!);
      expect(sent).toEqual([a]);
      vi.advanceTimersByTime(240); // 40 + 19.2 < 60
      expect(sent).toEqual([a]);
      vi.advanceTimersByTime(20); // 40 + 20.8 ≥ 60
      expect(sent).toEqual([a, b]);
      vi.advanceTimersByTime(750); // 0.8 + 60 ≥ 60
      expect(sent).toEqual([a, b, c]);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('a frame longer than its share of the burst goes once the bucket is full, and later frames wait out the debt', () => {
      vi.useFakeTimers();
      const { p, sent } = pacer();
      p.limits = limits;
      const big = 'x'.repeat(180); // the gateway's burst of 200 covers it; the client's share of 100 never would
      p.send(big);
      p.send('y'.repeat(50));
      expect(sent).toEqual([big]);
      vi.advanceTimersByTime(1_600); // −80 + 128 = 48 < 50
      expect(sent).toHaveLength(1);
      vi.advanceTimersByTime(50);
      expect(sent).toHaveLength(2);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('a gateway that gives no character rate leaves characters unpaced', () => {
      const { p, sent } = pacer();
      p.limits = { framesPerSecond: 1_000, frameBurst: 1_000 };
      for (let i = 0; i < 100; i++) p.send('x'.repeat(10_000));
      expect(sent).toHaveLength(100);
    });
  });
});
