/** ClientStream on its own: dedupe by number, gaps, the window, credit, ends whose chunks are missing, and abort. */
import { describe, expect, it } from 'vitest';
import { ClientStream } from '../../src/client/streams.js';
import { ClientProducers } from '../../src/client/producers.js';
import { DEFAULTS } from '../../src/protocol/limits.js';
import { waitFor } from '../../src/testing/wait.js';
import { encodeValue } from '../../src/protocol/codec.js';
import { CancelledError, ProtocolError } from '../../src/protocol/errors.js';
import { createStub } from '../../src/protocol/stub.js';

function harness(window = 4, signal?: AbortSignal, bufferChars?: number) {
  const sent: Array<Record<string, unknown>> = [];
  let forgotten = 0;
  const stream = new ClientStream<number>('s1', 'count', window, (text) => (sent.push(JSON.parse(text)), true), () => forgotten++, signal, () => bufferChars);
  const chunk = (seq: number, value: unknown = seq) => stream.take({ type: 'stream_chunk', id: 's1', seq, value: encodeValue(value) });
  return { stream, sent, chunk, forgotten: () => forgotten };
}

describe('ClientStream', () => {
  it('drops a chunk it already has (sent again after a reconnect) and reads each once', async () => {
    const { stream, chunk } = harness();
    chunk(0); chunk(1); chunk(0); chunk(1); chunk(2);
    stream.take({ type: 'stream_end', id: 's1', count: 3 });
    const values: number[] = [];
    for await (const v of stream) values.push(v);
    expect(values).toEqual([0, 1, 2]);
  });

  it('an end whose chunks have not all arrived is ignored until they come again', async () => {
    const { stream, chunk } = harness();
    chunk(0);
    stream.take({ type: 'stream_end', id: 's1', count: 2 }); // chunk 1 was lost with a socket
    const it = stream[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 0, done: false });
    const pending = it.next();
    chunk(1);
    expect(await pending).toEqual({ value: 1, done: false });
    stream.take({ type: 'stream_end', id: 's1', count: 2 });
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });

  it('a gap or a chunk past the window fails the stream with ProtocolError and cancels it', async () => {
    const gap = harness();
    gap.chunk(0); gap.chunk(2);
    const it = gap.stream[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe(0);
    await expect(it.next()).rejects.toBeInstanceOf(ProtocolError);
    expect(gap.sent).toContainEqual({ type: 'cancel', id: 's1' });

    const flood = harness(2);
    flood.chunk(0); flood.chunk(1); flood.chunk(2);
    const all: number[] = [];
    await expect((async () => { for await (const v of flood.stream) all.push(v); })()).rejects.toThrow(/past its window of 2/);
    expect(flood.sent).toContainEqual({ type: 'cancel', id: 's1' });
  });

  it('grants credit after half a window is read, and (from a gateway that does not say its byte bound) when it waits with unacknowledged chunks', async () => {
    const { stream, sent, chunk } = harness(4);
    chunk(0); chunk(1); chunk(2); chunk(3);
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    expect(sent).toEqual([]);
    await it.next(); // 2 read = half of 4
    expect(sent).toEqual([{ type: 'stream_credit', id: 's1', received: 4, limit: 6 }]);
    await it.next(); await it.next();
    expect(sent.at(-1)).toEqual({ type: 'stream_credit', id: 's1', received: 4, limit: 8 });
    chunk(4);
    await it.next(); // read, not yet half a window since the last credit
    const count = sent.length;
    const waiting = it.next(); // starved, with chunk 4 unacknowledged
    expect(sent.length).toBe(count + 1);
    expect(sent.at(-1)).toEqual({ type: 'stream_credit', id: 's1', received: 5, limit: 9 });
    chunk(5);
    expect(await waiting).toEqual({ value: 5, done: false });
  });

  it('with the gateway\'s byte bound known, a reader faster than the stream sends no credit per chunk; half the bound received is acknowledged at once', async () => {
    const { stream, sent, chunk } = harness(8, undefined, 40);
    const it = stream[Symbol.asyncIterator]();
    for (let seq = 0; seq < 3; seq++) {
      const waiting = it.next(); // starved each time
      chunk(seq); // '[0]': 3 characters
      expect(await waiting).toEqual({ value: seq, done: false });
    }
    expect(sent).toEqual([]); // 3 read of a window of 8, 9 characters of 40 unacknowledged: nothing to say yet
    chunk(3, 'x'.repeat(10)); // 14 characters more: 23 ≥ 20, half the bound
    expect(sent).toEqual([{ type: 'stream_credit', id: 's1', received: 4, limit: 8 }]); // acknowledges, grants nothing new
    await it.next(); // the 4th read: half the window, the usual grant
    expect(sent.at(-1)).toEqual({ type: 'stream_credit', id: 's1', received: 4, limit: 12 });
  });

  it('abort rejects the pending next() with CancelledError at once, sends cancel once, and leaves no listener', async () => {
    const controller = new AbortController();
    let listeners = 0;
    const signal = controller.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...a: Parameters<typeof add>) => (listeners++, add(...a))) as typeof add;
    signal.removeEventListener = ((...a: Parameters<typeof remove>) => (listeners--, remove(...a))) as typeof remove;
    const { stream, sent, forgotten } = harness(4, signal);
    expect(listeners).toBe(1);
    const pending = stream.next();
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toBeInstanceOf(CancelledError);
    expect(sent.filter((f) => f.type === 'cancel')).toHaveLength(1);
    expect(listeners).toBe(0);
    expect(forgotten()).toBeGreaterThan(0);
    await expect(stream.next()).rejects.toBeInstanceOf(CancelledError);
  });

  it('return() cancels an open stream once; a stream read to its end is released, not cancelled again', async () => {
    const open = harness();
    open.chunk(0);
    await open.stream.return();
    await open.stream.return();
    expect(open.sent).toEqual([{ type: 'cancel', id: 's1' }]);

    const ended = harness();
    ended.chunk(0);
    ended.stream.take({ type: 'stream_end', id: 's1', count: 1 });
    for await (const _ of ended.stream) void _;
    await ended.stream.return();
    expect(ended.sent).toEqual([{ type: 'cancel', id: 's1' }]); // the release after the end, only
  });
});

describe('ClientProducers', () => {
  it('a credit runs at most a window past what was sent, and a producer that never waits yields to the event loop', async () => {
    const sent: Array<Record<string, unknown>> = [];
    const producers = new ClientProducers((text) => (sent.push(JSON.parse(text)), true));
    let made = 0;
    producers.start('p1', (async function* () {
      for (;;) yield made++; // always ready
    })());
    let timerRanAfter = -1;
    setTimeout(() => (timerRanAfter = sent.length), 0);
    producers.take({ type: 'stream_credit', id: 'p1', received: 0, limit: 1e9 }); // a gateway asking for everything
    await waitFor(() => sent.length >= DEFAULTS.maxStreamWindow && timerRanAfter >= 0, 'the pump to stop at a window');
    await new Promise((resolve) => setTimeout(resolve, 20)); // nothing to await: nothing more may be sent
    expect(sent.length).toBe(DEFAULTS.maxStreamWindow);
    expect(timerRanAfter).toBeLessThan(DEFAULTS.maxStreamWindow); // the timer did not wait for the whole window
    producers.stopAll();
  });
});

describe('a streaming call on its stub', () => {
  const stub = createStub<{ words(): AsyncIterable<string>; plain(): number }>(async (method) => (method === 'words' ? (async function* () { yield 'a'; yield 'b'; })() : 7));

  it('iterates the stream the call answers with', async () => {
    const words: string[] = [];
    for await (const word of stub.words()) words.push(word);
    expect(words).toEqual(['a', 'b']);
  });

  it('says what to do when iterated without its call, or when the method returned no stream', async () => {
    const detached = stub.words()[Symbol.asyncIterator];
    expect(() => detached.call(undefined as never)).toThrow(/called without its call; iterate the call itself/);
    const iterator = (stub.plain() as unknown as AsyncIterable<number>)[Symbol.asyncIterator]();
    await expect(iterator.next()).rejects.toThrow(/did not return a stream/);
  });
});
