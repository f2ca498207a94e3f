/**
 * Streams across connection trouble on real workerd: a drop inside the grace
 * period resumes from the next chunk the client lacks (none lost, none
 * twice); past it the iterator throws StreamInterruptedError and the
 * producer is stopped; supersession by another process ends the old
 * client's streams with SupersededError.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshClient, OutcomeUnknownError, StreamInterruptedError, SupersededError } from '../src/client/index.js';
import type { StreamDO } from './fixtures/streams-worker.js';
import { RawSocket, callFrame, startTestMesh, waitFor, type TestMesh } from './support/mesh.js';
import { createNetwork, type Network } from './support/network.js';
import { STREAM_MESH } from './support/stream-mesh.js';

const GRACE_MS = 800;
let mesh: TestMesh;
const clients: MeshClient[] = [];
const sockets: RawSocket[] = [];

beforeAll(async () => {
  mesh = await startTestMesh({ ...STREAM_MESH, graceMs: GRACE_MS });
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const s of sockets) s.ws.terminate();
  await mesh?.dispose();
});

async function connected(sub: string, instanceName?: string): Promise<{ client: MeshClient; network: Network }> {
  const network = createNetwork();
  const client = new MeshClient({
    url: mesh.url.origin, accessToken: await mesh.token(sub), WebSocket: network.WebSocket, reconnectMinDelayMs: 30, reconnectMaxDelayMs: 100,
    ...(instanceName ? { instanceName } : {}),
  });
  clients.push(client);
  await waitFor(() => client.state === 'connected', `${sub} to connect`);
  return { client, network };
}

/** Counts the stream_chunk frames each socket of a network received, by seq (to see that chunks were sent again). */
function chunkLog(network: Network): number[] {
  const seqs: number[] = [];
  const seen = new WeakSet<object>();
  const hook = (): void => {
    for (const ws of network.sockets) {
      if (seen.has(ws)) continue;
      seen.add(ws);
      ws.on('message', (data) => {
        const text = data.toString();
        if (text.includes('"stream_chunk"')) seqs.push((JSON.parse(text) as { seq: number }).seq);
      });
    }
  };
  hook();
  const timer = setInterval(hook, 5);
  (seqs as unknown as { stop(): void }).stop = () => clearInterval(timer);
  return seqs;
}

describe('a drop inside the grace period', () => {
  it('a stream whose answer came while the client was away: the resent call gets the remembered answer and the stream starts from 0', async () => {
    const { client, network } = await connected('hal');
    const { client: observer } = await connected('hal-observer');
    const answer = client.node<StreamDO>('STREAMS', 'later').countLater('later', 300, 5);
    const probe = observer.node<StreamDO>('STREAMS', 'later');
    await waitFor(async () => (await probe.progress('later')) !== undefined, 'the call to reach the node');
    network.offline = true;
    network.drop(); // the call runs; its answer comes while no socket is open
    await waitFor(async () => (await probe.progress('later'))?.finalized, 'the node to answer');
    network.offline = false;
    const values: number[] = [];
    for await (const value of await answer) values.push(value);
    expect(values).toEqual([0, 1, 2, 3, 4]);
  });


  it('the stream continues on the new socket from the next chunk it lacks: every word once, in order', async () => {
    const { client, network } = await connected('gil');
    const log = chunkLog(network);
    const text = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const words: string[] = [];
    const reading = (async () => {
      for await (const word of client.node<StreamDO>('STREAMS', 'resume').words('resume', text, 15)) {
        words.push(word);
        if (words.length === 10) network.drop(); // mid-stream, with more being produced meanwhile
      }
    })();
    await reading;
    (log as unknown as { stop(): void }).stop();
    expect(words).toEqual(text.split(' '));
    expect(network.sockets.length).toBeGreaterThanOrEqual(2); // it did reconnect
    expect(client.openStreams).toBe(0);
  });

  it('a slow reader\'s stream survives the drop: after the reconnect its resume brings the chunks past its window, each once, in order', async () => {
    const { client, network } = await connected('hoa');
    const log = chunkLog(network);
    const iterator = (await client.node<StreamDO>('STREAMS', 'resume2').count('resume2'))[Symbol.asyncIterator]();
    const values: number[] = [];
    for (let i = 0; i < 5; i++) values.push((await iterator.next()).value as number);
    await waitFor(() => log.length >= 32, 'the window to be sent');
    network.drop();
    await waitFor(() => client.state === 'reconnecting', 'the drop to be noticed');
    await waitFor(() => client.state === 'connected', 'the reconnect');
    for (let i = 5; i < 200; i++) values.push((await iterator.next()).value as number);
    await iterator.return!();
    (log as unknown as { stop(): void }).stop();
    expect(values).toEqual(Array.from({ length: 200 }, (_, i) => i));
    // The first socket got the window (0–31, or a grant more); everything past it came on the new socket, after the resume.
    expect(log.filter((seq) => seq === 150)).toHaveLength(1);
  });
});

describe('past the grace period', () => {
  it('the iterator throws StreamInterruptedError after the chunks it had, and the producer and a running call are stopped', async () => {
    const { client, network } = await connected('ida');
    const { client: observer } = await connected('ida-observer'); // stays online to watch the node
    const instance = client.instanceName!;
    const node = observer.node<StreamDO>('STREAMS', 'gone');
    const controller = new AbortController();
    const call = client.node<StreamDO>('STREAMS', 'gone', { signal: controller.signal }).waitForCancel('gone-call', 30_000).catch((e: unknown) => e);
    const iterator = (await client.node<StreamDO>('STREAMS', 'gone').count('gone'))[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toBe(0);
    await waitFor(async () => (await node.progress('gone-call')) !== undefined, 'the call to start');
    network.offline = true;
    network.drop();
    await waitFor(async () => (await mesh.state(instance)).alarm !== null, 'the grace period to start');
    await waitFor(async () => (await mesh.state(instance)).alarm === null, 'the grace period to end', 5000);
    // The client is gone for good: what it started is stopped.
    await waitFor(async () => (await node.progress('gone'))?.finalized, 'the producer to be stopped');
    expect(await node.progress('gone')).toMatchObject({ aborted: true });
    await waitFor(async () => (await node.progress('gone-call'))?.finalized, 'the call to see its signal abort');
    expect(await node.progress('gone-call')).toMatchObject({ aborted: true, abortReason: 'CancelledError' });
    network.offline = false;
    await waitFor(() => client.state === 'connected', 'the reconnect');
    let caught: unknown;
    const values: number[] = [];
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        values.push(next.value as number);
      }
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(StreamInterruptedError);
    expect(caught).toMatchObject({ code: 'stream_interrupted', method: 'count' });
    expect(values).toEqual(Array.from({ length: values.length }, (_, i) => i + 1)); // what it had, intact
    expect(await call).toBeInstanceOf(OutcomeUnknownError);
  });

  it('a credit for a stream the gateway does not know is answered with stream_error StreamInterruptedError', async () => {
    const sock = new RawSocket(mesh.wsUrl('jon.t'), await mesh.token('jon'));
    sockets.push(sock);
    await sock.ofType('connection_status');
    sock.send({ type: 'stream_credit', id: 'no-such-stream', received: 3, limit: 10 });
    const frame = await sock.next((f) => f.type === 'stream_error');
    expect(frame).toMatchObject({ id: 'no-such-stream', count: 3 });
    expect(String(frame.error)).toMatch(/StreamInterruptedError/);
  });
});

describe('supersession by another process', () => {
  it('ends the old client\'s streams with SupersededError; the producer is stopped once no socket claims the stream', async () => {
    const { client } = await connected('kim', 'kim.shared');
    const node = client.node<StreamDO>('STREAMS', 'superseded');
    const iterator = (await node.count('superseded'))[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toBe(0);
    const { client: other } = await connected('kim', 'kim.shared');
    await waitFor(() => client.state === 'superseded', 'the old client to be superseded');
    let caught: unknown;
    try {
      for (let i = 0; i < 1000; i++) if ((await iterator.next()).done) break;
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SupersededError);
    const plain = other.node<StreamDO>('STREAMS', 'superseded');
    await waitFor(async () => (await plain.progress('superseded'))?.finalized, 'the unclaimed stream to be cancelled', GRACE_MS + 4000);
    expect(await plain.progress('superseded')).toMatchObject({ aborted: true });
  });
});

describe('the raw protocol', () => {
  it('a resume on a new socket sends again from `received`; a repeated credit changes nothing', async () => {
    const first = new RawSocket(mesh.wsUrl('lee.t'), await mesh.token('lee'));
    sockets.push(first);
    await first.ofType('connection_status');
    first.send(callFrame('s-1', { binding: 'STREAMS', instance: 'raw' }, 'count', ['raw', 1e9], { streamWindow: 4 }));
    expect(await first.next((f) => f.type === 'call_response' && f.id === 's-1')).toMatchObject({ ok: true, stream: true });
    await first.next((f) => f.type === 'stream_chunk' && f.seq === 3);
    // A credit proves the reader holds chunk received − 1 by echoing its tag.
    const tag1 = first.frames.find((f) => f.type === 'stream_chunk' && f.seq === 1)!.tag;
    expect(tag1).toMatch(/^[A-Za-z0-9_-]{8}$/);
    first.send({ type: 'stream_credit', id: 's-1', received: 2, limit: 6, tag: tag1 });
    first.send({ type: 'stream_credit', id: 's-1', received: 2, limit: 6, tag: tag1 });
    await first.next((f) => f.type === 'stream_chunk' && f.seq === 5);
    const second = new RawSocket(mesh.wsUrl('lee.t'), await mesh.token('lee')); // supersedes the first
    sockets.push(second);
    await second.ofType('connection_status');
    second.send({ type: 'stream_credit', id: 's-1', received: 2, limit: 6, tag: tag1 });
    await second.next((f) => f.type === 'stream_chunk' && f.seq === 5);
    const seqs = second.frames.filter((f) => f.type === 'stream_chunk').map((f) => f.seq);
    expect(seqs).toEqual([2, 3, 4, 5]);
    // Sent again, each keeps its tag.
    expect(second.frames.find((f) => f.type === 'stream_chunk' && f.seq === 3)!.tag).toBe(first.frames.find((f) => f.type === 'stream_chunk' && f.seq === 3)!.tag);
    expect(first.frames.filter((f) => f.type === 'stream_chunk').map((f) => f.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    second.send({ type: 'cancel', id: 's-1' });
  });
});
