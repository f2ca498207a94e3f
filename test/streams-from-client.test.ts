/**
 * A client handler streams its answer to the node that called it, on real
 * workerd: chunks keep their types, the node's reading paces the client's
 * producer (credit), leaving the loop stops the producer (its finally runs),
 * and a chunk past the size limit fails the node's loop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitExceededError, MeshClient, StreamInterruptedError } from '../src/client/index.js';
import { DEFAULTS } from '../src/protocol/limits.js';
import type { StreamDO } from './fixtures/streams-worker.js';
import { encodeValue } from '../src/protocol/codec.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { RawSocket, startTestMesh, waitFor, type TestMesh } from './support/mesh.js';
import { createNetwork } from './support/network.js';
import { STREAM_MESH } from './support/stream-mesh.js';

let mesh: TestMesh;
const clients: MeshClient[] = [];

beforeAll(async () => {
  mesh = await startTestMesh(STREAM_MESH);
});
const sockets: RawSocket[] = [];
afterAll(async () => {
  for (const s of sockets) s.ws.terminate();
  for (const c of clients) c.disconnect();
  await mesh?.dispose();
});

/** A client whose `produce(n)` handler streams n chunks (or `big` ones), recording how far it got and whether its finally ran. */
async function producerClient(sub: string, chunk: (i: number) => unknown = (i) => ({ i, at: new Date(Date.UTC(2026, 0, 1, 0, 0, i % 60)) }), pauseMs = 0) {
  const record = { produced: 0, finalized: false };
  const network = createNetwork();
  const client = new MeshClient({
    url: mesh.url.origin, accessToken: await mesh.token(sub), WebSocket: network.WebSocket, reconnectMinDelayMs: 30, reconnectMaxDelayMs: 100,
    handlers: {
      async *produce(n: number) {
        try {
          for (let i = 0; i < n; i++) {
            if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs)); // a producer that takes its time
            record.produced++;
            yield chunk(i);
          }
        } finally {
          record.finalized = true;
        }
      },
    },
  });
  clients.push(client);
  await waitFor(() => client.state === 'connected', `${sub} to connect`);
  return { client, record, network, node: client.node<StreamDO>('STREAMS', `from-${sub}`) };
}

describe('a client handler that returns a stream', () => {
  it('the calling node reads every chunk, with its types', async () => {
    const { client, node, record } = await producerClient('pia');
    const { values, error } = await node.readClient(client.instanceName!, 100);
    expect(error).toBeUndefined();
    expect(values).toHaveLength(100);
    expect(values[61]).toEqual({ i: 61, at: new Date(Date.UTC(2026, 0, 1, 0, 0, 1)) });
    expect(record).toMatchObject({ produced: 100, finalized: true });
  });

  it('the node\'s reading paces the producer, and leaving the loop stops it: its finally runs', async () => {
    const { client, node, record } = await producerClient('quin');
    const { values } = await node.readClient(client.instanceName!, 1e9, 5, 500);
    expect(values).toHaveLength(5);
    // While the node held the stream without reading, the producer ran at most a window ahead.
    expect(record.produced).toBeLessThanOrEqual(5 + DEFAULTS.streamWindow + 1);
    await waitFor(() => record.finalized, 'the producer\'s finally to run');
  });

  it('a chunk past maxStreamChunkBytes fails the node\'s loop with LimitExceededError and stops the producer', async () => {
    const { client, node, record } = await producerClient('ros', (i) => (i === 2 ? 'x'.repeat(DEFAULTS.maxStreamChunkBytes + 10) : i));
    const { values, error } = await node.readClient(client.instanceName!, 1e9);
    expect(values).toEqual([0, 1]);
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error).toMatchObject({ limit: 'maxStreamChunkBytes' });
    await waitFor(() => record.finalized, 'the producer to be stopped');
    expect(record.produced).toBeLessThanOrEqual(2 + DEFAULTS.streamWindow + 1); // within its credit, then stopped
  });
});

describe('a client handler\'s stream and a dropped socket', () => {
  it('does not resume: the node\'s loop ends with StreamInterruptedError after the chunks it had, and the producer is stopped', async () => {
    const { client, record, network } = await producerClient('sal', (i) => i, 20);
    const observer = await producerClient('sal-observer');
    const reading = observer.client.node<StreamDO>('STREAMS', 'from-sal').readClient(client.instanceName!, 1e9);
    await waitFor(() => record.produced >= 5, 'the producer to start');
    network.drop();
    const { values, error } = await reading;
    expect(error).toBeInstanceOf(StreamInterruptedError);
    expect(values).toEqual(Array.from({ length: values.length }, (_, i) => i));
    await waitFor(() => record.finalized, 'the producer to be stopped');
  });
});

describe('a hostile client\'s stream', () => {
  /** A raw client that answers `produce` with a stream and sends `first` with the answer, then what `onCredit` sends. */
  async function hostile(sub: string, first: (id: string) => unknown[], onCredit: (sock: RawSocket, id: string, limit: number) => void = () => {}, waitBeforeMs = 0) {
    const sock = new RawSocket(mesh.wsUrl(`${sub}.t`), await mesh.token(sub));
    sockets.push(sock);
    await sock.ofType('connection_status');
    sock.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; id: string; limit: number };
      if (frame.type === 'incoming_call') sock.sendTogether([{ type: 'incoming_call_response', id: frame.id, ok: true, stream: true }, ...first(frame.id)]);
      if (frame.type === 'stream_credit') onCredit(sock, frame.id, frame.limit);
    });
    const observer = await producerClient(`${sub}-observer`);
    const result = await observer.client.node<StreamDO>('STREAMS', `hostile-${sub}`).readClient(`${sub}.t`, 1e9, Infinity, 0, waitBeforeMs);
    return { ...result, sock };
  }

  it('a chunk before any credit fails the node\'s loop with ProtocolError, and the client is told to stop', async () => {
    // The node reads only after 300 ms, so the chunk surely arrives before any credit.
    const { values, error, sock } = await hostile('tom', (id) => [{ type: 'stream_chunk', id, seq: 0, value: encodeValue('early') }], undefined, 300);
    expect(values).toEqual([]);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/past its credit \(0\)/);
    await sock.next((f) => f.type === 'cancel');
  });

  it('a gap in the numbers fails the node\'s loop with ProtocolError', async () => {
    let sent = false;
    const { error } = await hostile('uli', () => [], (sock, id) => {
      if (sent) return;
      sent = true;
      sock.send({ type: 'stream_chunk', id, seq: 0, value: encodeValue('a') });
      sock.send({ type: 'stream_chunk', id, seq: 5, value: encodeValue('b') });
    });
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/skipped from chunk 1 to 5/);
  });
});
