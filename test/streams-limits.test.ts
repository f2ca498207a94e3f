/**
 * The stream limits on real workerd, each hit: streams open per client
 * (maxStreams), one chunk's size (maxStreamChunkBytes), the window a client
 * may grant (maxStreamWindow) and the bytes a gateway holds per stream
 * (maxStreamBufferBytes); and credit that lies is bounded.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { LimitExceededError } from '../src/client/index.js';
import type { StreamDO } from './fixtures/streams-worker.js';
import { RawSocket, callFrame, waitFor } from './support/mesh.js';
import { useStreamMesh } from './support/stream-mesh.js';

const suite = useStreamMesh({ env: { MAX_STREAMS: '2', MAX_STREAM_CHUNK_BYTES: '1000', MAX_STREAM_WINDOW: '8', MAX_STREAM_BUFFER_BYTES: '3000' },
  });
const { connected } = suite;
const sockets: RawSocket[] = [];
afterAll(() => {
  for (const s of sockets) s.ws.terminate();
});

type Buffered = AsyncIterable<unknown> & { buffered: number };

describe('maxStreams', () => {
  it('a stream past the limit is refused with LimitExceededError and its producer stopped; ending one makes room', async () => {
    const client = await connected('max');
    const node = client.node<StreamDO>('STREAMS', 'max');
    const first = (await node.count('max-1'))[Symbol.asyncIterator]();
    const second = (await node.count('max-2'))[Symbol.asyncIterator]();
    const error = await node.count('max-3').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error).toMatchObject({ limit: 'maxStreams', max: 2 });
    expect((error as Error).message).toMatch(/cancel some/);
    await first.return!();
    const third = (await node.count('max-4'))[Symbol.asyncIterator]();
    expect((await third.next()).value).toBe(0);
    await third.return!();
    await second.return!();
    expect(await node.progress('max-3')).toBeUndefined(); // the refused producer never ran: nothing was pulled from it
  });
});

describe('maxStreamChunkBytes', () => {
  it('a chunk past the limit fails the stream with LimitExceededError after the chunks before it', async () => {
    const client = await connected('chunk');
    const chunks: unknown[] = [];
    const error = await (async () => {
      for await (const chunk of client.node<StreamDO>('STREAMS', 'chunk').big(2000)) chunks.push(chunk);
    })().catch((e: unknown) => e);
    expect(chunks).toEqual(['small']);
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error).toMatchObject({ limit: 'maxStreamChunkBytes', max: 1000 });
    expect((error as Error).message).toMatch(/yield smaller chunks/);
  });
});

describe('maxStreamWindow', () => {
  it('a client asking for a window of 1000 gets 8: the producer stops there while nobody reads', async () => {
    const client = await connected('window');
    const node = client.node<StreamDO>('STREAMS', 'window', { streamWindow: 1000 });
    const stream = (await node.count('window')) as Buffered;
    await waitFor(() => stream.buffered === 8, 'the window to fill');
    await new Promise((r) => setTimeout(r, 300)); // nothing to await: nothing more may arrive
    expect(stream.buffered).toBe(8);
    expect((await node.progress('window'))!.produced).toBeLessThanOrEqual(9);
    const iterator = stream[Symbol.asyncIterator]();
    for (let i = 0; i < 30; i++) expect((await iterator.next()).value).toBe(i); // the client reads on with the window it was granted
    await iterator.return!();
  });
});

describe('maxStreamBufferBytes', () => {
  it('chunks of 1000 characters (encoded) under a 3000-character buffer: the gateway holds three unacknowledged, whatever the window', async () => {
    const sock = new RawSocket(suite.mesh.wsUrl('bytes.t'), await suite.mesh.token('bytes'));
    sockets.push(sock);
    expect(await sock.ofType('connection_status')).toMatchObject({ maxStreamBufferBytes: 3000 });
    sock.send(callFrame('b-1', { binding: 'STREAMS', instance: 'bytes' }, 'blocks', ['bytes', 996], { streamWindow: 8 }));
    await sock.next((f) => f.type === 'stream_chunk' && f.seq === 2);
    await new Promise((r) => setTimeout(r, 300)); // nothing to await: nothing more may arrive
    const chunks = (): unknown[] => sock.frames.filter((f) => f.type === 'stream_chunk').map((f) => f.seq);
    expect(chunks()).toEqual([0, 1, 2]); // under the window of 8: 2 chunks (2000) were under the bound, the 3rd reached it
    // The node may have made the next few (its own queue is bounded by the same bytes).
    const observer = await connected('bytes-observer');
    expect((await observer.node<StreamDO>('STREAMS', 'bytes').progress('bytes'))!.produced).toBeLessThanOrEqual(9);
    const tag2 = sock.frames.find((f) => f.type === 'stream_chunk' && f.seq === 2)!.tag;
    sock.send({ type: 'stream_credit', id: 'b-1', received: 3, limit: 8, tag: tag2 }); // acknowledged, not read: room for three more
    await sock.next((f) => f.type === 'stream_chunk' && f.seq === 5);
    sock.send({ type: 'cancel', id: 'b-1' });
  });

  it('meshgate\'s client, told the bound in connection_status, acknowledges as chunks arrive: it fills its window and reads on', async () => {
    const client = await connected('bytes-client');
    const node = client.node<StreamDO>('STREAMS', 'bytes-client');
    const stream = (await node.blocks('bytes-client', 996)) as Buffered;
    await waitFor(() => stream.buffered === 8, 'the window to fill, past the 3 chunks of the gateway\'s bound');
    const iterator = stream[Symbol.asyncIterator]();
    for (let i = 0; i < 20; i++) expect(((await iterator.next()).value as string).length).toBe(996);
    await iterator.return!();
  });
});

describe('credit that lies', () => {
  it('received past what was sent and a huge limit are cut to what the gateway has and its window', async () => {
    const sock = new RawSocket(suite.mesh.wsUrl('liar.t'), await suite.mesh.token('liar'));
    sockets.push(sock);
    await sock.ofType('connection_status');
    sock.send(callFrame('lie-1', { binding: 'STREAMS', instance: 'liar' }, 'count', ['liar', 1e9], { streamWindow: 2 }));
    await sock.next((f) => f.type === 'stream_chunk' && f.seq === 1);
    const tag1 = sock.frames.find((f) => f.type === 'stream_chunk' && f.seq === 1)!.tag;
    sock.send({ type: 'stream_credit', id: 'lie-1', received: 1e12, limit: 9e15, tag: tag1 });
    await sock.next((f) => f.type === 'stream_chunk' && f.seq === 9);
    await new Promise((r) => setTimeout(r, 300)); // nothing to await: nothing more may arrive
    const seqs = sock.frames.filter((f) => f.type === 'stream_chunk').map((f) => f.seq);
    expect(seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // acked cut to 2 chunks pulled; the limit to 2 + 8
    sock.send({ type: 'stream_credit', id: 'lie-1', received: 5, limit: 3 });
    expect(await sock.next((f) => f.type === 'error' && f.code === 'bad_field')).toMatchObject({ id: 'lie-1' });
    sock.send({ type: 'cancel', id: 'lie-1' });
    sock.send({ type: 'cancel', id: 'lie-1' }); // idempotent, never answered
    await waitFor(async () => (await (await connected('liar-observer')).node<StreamDO>('STREAMS', 'liar').progress('liar'))?.finalized, 'the producer to be stopped');
  });
});

describe('credit without proof', () => {
  it('acknowledging chunks takes the tag of the last one: a reader that stops reading its socket cannot ack what it never read and be sent more', async () => {
    const sock = new RawSocket(suite.mesh.wsUrl('deaf.t'), await suite.mesh.token('deaf'));
    sockets.push(sock);
    await sock.ofType('connection_status');
    sock.send(callFrame('d-1', { binding: 'STREAMS', instance: 'deaf' }, 'count', ['deaf', 1e9], { streamWindow: 4 }));
    await sock.next((f) => f.type === 'stream_chunk' && f.seq === 3);
    const seqs = (): unknown[] => sock.frames.filter((f) => f.type === 'stream_chunk').map((f) => f.seq);
    sock.send({ type: 'stream_credit', id: 'd-1', received: 4, limit: 8 }); // no tag
    expect(await sock.next((f) => f.type === 'error' && f.code === 'bad_field')).toMatchObject({ id: 'd-1', message: expect.stringMatching(/without its tag/) });
    sock.send({ type: 'stream_credit', id: 'd-1', received: 4, limit: 8, tag: 'AAAAAAAA' }); // a guess
    await waitFor(() => sock.frames.filter((f) => f.type === 'error').length === 2, 'the guess to be refused');
    await new Promise((r) => setTimeout(r, 300)); // nothing to await: nothing more may arrive
    expect(seqs()).toEqual([0, 1, 2, 3]);
    const tag3 = sock.frames.find((f) => f.type === 'stream_chunk' && f.seq === 3)!.tag;
    sock.send({ type: 'stream_credit', id: 'd-1', received: 4, limit: 8, tag: tag3 });
    await sock.next((f) => f.type === 'stream_chunk' && f.seq === 7);
    expect(seqs()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    sock.send({ type: 'cancel', id: 'd-1' });
  });
});

describe('streamIdleMs', () => {
  const IDLE_MS = 1000;
  const idle = useStreamMesh({ env: { STREAM_IDLE_MS: String(IDLE_MS) } });
  const memory = async (instance: string): Promise<{ streams: number; streamTimers: number }> =>
    ((await idle.mesh.state(instance)) as unknown as { memory: { streams: number; streamTimers: number } }).memory;

  it('a stream nobody reads, and one whose producer says nothing, end after it with LimitExceededError: producers stopped, the gateway holds nothing, no timer left', async () => {
    const client = await idle.connected('idle');
    const node = client.node<StreamDO>('STREAMS', 'idle');
    const unread = (await node.count('idle-unread'))[Symbol.asyncIterator]();
    const silent = (await node.words('idle-silent', 'late words', 30_000))[Symbol.asyncIterator]();
    const silentRead = silent.next().catch((e: unknown) => e);
    for (let i = 0; i < 3; i++) expect((await unread.next()).value).toBe(i);
    await waitFor(async () => (await node.progress('idle-unread'))?.finalized, 'the unread stream\'s producer to be stopped');
    await waitFor(async () => (await node.progress('idle-silent'))?.finalized, 'the silent producer to be stopped');
    expect(await node.progress('idle-unread')).toMatchObject({ aborted: true });
    expect(await node.progress('idle-silent')).toMatchObject({ aborted: true });
    const silentError = await silentRead;
    expect(silentError).toBeInstanceOf(LimitExceededError);
    expect(silentError).toMatchObject({ limit: 'streamIdleMs', max: IDLE_MS });
    expect((silentError as Error).message).toMatch(/made no progress for 1000 ms.*read the streams you open or cancel them/);
    // The unread one: the chunks that had arrived are read first, then the error.
    const values: number[] = [];
    let caught: unknown;
    try {
      for (let i = 0; i < 100; i++) values.push((await unread.next()).value as number);
    } catch (error) {
      caught = error;
    }
    expect(values).toEqual(Array.from({ length: values.length }, (_, i) => i + 3));
    expect(values.length).toBeGreaterThan(0);
    expect(caught).toMatchObject({ name: 'LimitExceededError', limit: 'streamIdleMs' });
    expect(await memory(client.instanceName!)).toMatchObject({ streams: 0, streamTimers: 0 });
    expect(client.openStreams).toBe(0);
  });

  it('a client that answers a node with a stream and then says nothing: the node\'s loop ends with LimitExceededError, the client is told to stop', async () => {
    const sock = new RawSocket(idle.mesh.wsUrl('mute.t'), await idle.mesh.token('mute'));
    sockets.push(sock);
    await sock.ofType('connection_status');
    sock.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; id: string };
      if (frame.type === 'incoming_call') sock.send({ type: 'incoming_call_response', id: frame.id, ok: true, stream: true });
    });
    const observer = await idle.connected('mute-observer');
    const { values, error } = await observer.node<StreamDO>('STREAMS', 'mute').readClient('mute.t', 1e9);
    expect(values).toEqual([]);
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error).toMatchObject({ limit: 'streamIdleMs', max: IDLE_MS });
    await sock.next((f) => f.type === 'cancel');
    expect((await memory('mute.t')).streamTimers).toBe(0);
  });

  it('a reader that reads slowly but steadily is progress: its stream outlives the limit', async () => {
    const client = await idle.connected('steady');
    const node = client.node<StreamDO>('STREAMS', 'steady', { streamWindow: 2 }); // a credit every chunk read
    const iterator = (await node.count('steady'))[Symbol.asyncIterator]();
    const started = Date.now();
    for (let i = 0; i < 9; i++) {
      expect((await iterator.next()).value).toBe(i);
      await new Promise((r) => setTimeout(r, IDLE_MS / 4)); // the slow reader is the point: nothing to await
    }
    expect(Date.now() - started).toBeGreaterThan(2 * IDLE_MS);
    expect((await node.progress('steady'))!.finalized).toBe(false);
    await iterator.return!();
    await waitFor(async () => (await memory(client.instanceName!)).streamTimers === 0, 'the idle timer to go with the last stream');
  });
});
