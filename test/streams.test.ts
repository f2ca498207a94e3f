/**
 * Streams from a node to a client on real workerd: chunks keep their types,
 * a slow reader pauses the producer (credit), and the gateway forgets a
 * stream once it is read to the end.
 */
import { describe, expect, it } from 'vitest';
import { toReadableStream } from '../src/client/index.js';
import { DEFAULTS } from '../src/protocol/limits.js';
import type { StreamDO, StreamWorker } from './fixtures/streams-worker.js';
import { grownObjects, inspectHeap } from './support/heap.js';
import { waitFor } from './support/mesh.js';
import { createNetwork } from './support/network.js';
import { useStreamMesh } from './support/stream-mesh.js';

// The inspector, to read the isolate's heap after a GC.
const suite = useStreamMesh({ miniflare: { inspectorPort: 0 } });
const { connected } = suite;

const gatewayStreams = async (instance: string): Promise<number> => ((await suite.mesh.state(instance)) as unknown as { memory: { streams: number } }).memory.streams;

describe('a method that returns a stream', () => {
  it('an async generator: the client iterates its chunks, each keeping its type through the codec', async () => {
    const client = await connected('ada');
    const chunks: unknown[] = [];
    for await (const chunk of client.node<StreamDO>('STREAMS', 'typed').typed()) chunks.push(chunk);
    expect(chunks).toHaveLength(7);
    expect(chunks[0]).toEqual(new Date(Date.UTC(2026, 0, 2)));
    expect(chunks[1]).toEqual(new Map([['a', 1n]]));
    expect(chunks[2]).toEqual(new Set([1, 2]));
    expect(chunks[3]).toBeUndefined();
    expect(chunks[4]).toEqual(new Uint8Array([1, 2, 3]));
    expect(chunks[5]).toBeInstanceOf(RangeError);
    expect(chunks[5]).toMatchObject({ message: 'as a value', detail: 7 });
    expect(chunks[6]).toEqual({ who: 'ada' }); // the call context reaches the producer
    await waitFor(async () => (await gatewayStreams(client.instanceName!)) === 0, 'the gateway to forget the ended stream');
    expect(client.openStreams).toBe(0);
  });

  it('awaiting the call gives the stream; a ReadableStream result works, and toReadableStream turns a stream into one', async () => {
    const client = await connected('bea');
    const stream = await client.node<StreamDO>('STREAMS', 'readable').readable(5);
    const reader = toReadableStream(stream).getReader();
    const read: string[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) read.push(r.value);
    expect(read).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
  });

  it('a Worker streams too', async () => {
    const client = await connected('cid');
    const values: number[] = [];
    for await (const value of client.node<StreamWorker>('STREAM_WORKER').count(4)) values.push(value);
    expect(values).toEqual([0, 10, 20, 30]);
  });

  it('an error thrown by the producer reaches the reader after the chunks before it, with its type and fields', async () => {
    const client = await connected('dot');
    const values: number[] = [];
    let caught: unknown;
    try {
      for await (const value of client.node<StreamDO>('STREAMS', 'fail').failAfter(3)) values.push(value);
    } catch (error) {
      caught = error;
    }
    expect(values).toEqual([0, 1, 2]);
    expect(caught).toBeInstanceOf(RangeError);
    expect(caught).toMatchObject({ message: 'the producer failed', at: 3 });
  });

  it('a node reads another node\'s stream', async () => {
    const client = await connected('eve');
    expect(await client.node<StreamDO>('STREAMS', 'reader').collectFrom('source', 100)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('iterating a method that returns no stream says so', async () => {
    const client = await connected('fay');
    const stub = client.node<{ progress(key: string): unknown }>('STREAMS', 'x') as unknown as { progress(key: string): AsyncIterable<unknown> };
    await expect((async () => {
      for await (const _ of stub.progress('none')) void _;
    })()).rejects.toThrow(/did not return a stream/);
  });
});

describe('flow control', () => {
  it('a producer that could yield a billion chunks stays within the window of a slow reader; a fast reader of 12,000 chunks sends a credit per half window and the heap stays flat', async () => {
    const network = createNetwork();
    const client = await connected('gus', { WebSocket: network.WebSocket });
    let credits = 0;
    const socket = network.sockets[0]!;
    const send = socket.send.bind(socket) as (data: string) => void;
    socket.send = ((data: string) => {
      if (data.includes('"stream_credit"')) credits++;
      send(data);
    }) as typeof socket.send;
    const node = client.node<StreamDO>('STREAMS', 'flow');
    const iterator = (await node.count('flow'))[Symbol.asyncIterator]();
    const heap = await inspectHeap(suite.mesh.mf);
    try {
      for (let i = 0; i < 5; i++) expect((await iterator.next()).value).toBe(i);
      const pausedFrom = await heap.usedAfterGc();
      // Nothing to await here: the point is that nothing happens while nobody reads.
      await new Promise((r) => setTimeout(r, 1000));
      const paused = (await node.progress('flow'))!;
      const window = DEFAULTS.streamWindow;
      expect(paused.produced).toBeLessThanOrEqual(5 + window + 1);
      expect(paused.produced).toBeGreaterThanOrEqual(window); // it did run ahead, by the window
      expect((await heap.usedAfterGc()).used - pausedFrom.used).toBeLessThan(256 * 1024);

      // Reading on as fast as it comes: the producer stays at most a window (plus what one grant adds) ahead,
      // the client sends a credit per half window read (a frame per chunk would pass framesPerSecond: closed with 1008),
      // and what the isolate retains after a GC does not grow with the chunks read. RSS is not the measure: it
      // holds each message's native garbage until V8 collects it (tens of MiB here), then tcmalloc keeps the pages.
      let maxAhead = 0;
      let mid: Awaited<ReturnType<typeof heap.snapshot>> | undefined;
      credits = 0;
      for (let read = 5; read < 12_005; read++) {
        expect((await iterator.next()).value).toBe(read);
        if (read % 2_000 === 0) maxAhead = Math.max(maxAhead, (await node.progress('flow'))!.produced - (read + 1));
        if (read === 6_005) mid = await heap.snapshot(); // past the JIT's warm-up
      }
      const end = await heap.snapshot();
      expect(maxAhead).toBeLessThanOrEqual(window + 1);
      expect(credits).toBeLessThanOrEqual(12_000 / (window / 2) + 2);
      // 6,000 chunks later: no kind of object is kept per chunk, and the bytes retained did not grow by 44 per chunk.
      expect(grownObjects(mid!.objects, end.objects)[0]!.added).toBeLessThan(1_000);
      expect(end.used - mid!.used).toBeLessThan(256 * 1024);
      expect(network.sockets).toHaveLength(1);
      await iterator.return!();
      await waitFor(async () => (await node.progress('flow'))!.finalized, 'the producer to be stopped');
    } finally {
      heap.close();
    }
  }, 60_000);

  it('the client holds at most its window of unread chunks (streamWindow per call)', async () => {
    const client = await connected('hal');
    const node = client.node<StreamDO>('STREAMS', 'window', { streamWindow: 4 });
    const stream = (await node.count('window')) as AsyncIterable<number> & { buffered: number };
    await waitFor(() => stream.buffered === 4, 'the window to fill');
    // A window of 4: the producer stops at 4 (it was asked for chunks 0–3).
    expect((await node.progress('window'))!.produced).toBeLessThanOrEqual(5);
    expect(stream.buffered).toBe(4);
    const iterator = stream[Symbol.asyncIterator]();
    for (let i = 0; i < 10; i++) expect((await iterator.next()).value).toBe(i);
    await iterator.return!();
  });
});
