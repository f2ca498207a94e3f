/**
 * Batches on real workerd (docs/protocol.md §2): a message that is a JSON
 * array of frames is read as those frames in order, each checked and rate
 * counted on its own; the gateway sends a burst's answers together only to a
 * client that batches; and meshgate's client batches what it sends in one
 * turn, so 64 calls in flight take far fewer socket messages than frames.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MeshClient } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import { WS_CLOSE_RATE_LIMITED } from '../src/protocol/close-codes.js';
import { RawSocket, callFrame, closeFrame, useTestMesh, waitFor, withTestMesh, type TestMesh } from './support/mesh.js';

const suite = useTestMesh();
const ECHO = { binding: 'ECHO_WORKER' };

async function open(mesh: TestMesh, instance: string): Promise<RawSocket> {
  const socket = new RawSocket(mesh.wsUrl(instance), await mesh.token(instance.split('.')[0]!));
  await socket.ofType('connection_status');
  return socket;
}

/** Every frame the socket was sent, batches taken apart, and how many messages carried them. */
function received(socket: RawSocket): { frames: Array<Record<string, unknown>>; messages: number; batches: number } {
  const frames: Array<Record<string, unknown>> = [];
  let batches = 0;
  for (const text of socket.raw) {
    const value = JSON.parse(text) as Record<string, unknown> | Array<Record<string, unknown>>;
    if (Array.isArray(value)) {
      batches++;
      frames.push(...value);
    } else frames.push(value);
  }
  return { frames, messages: socket.raw.length, batches };
}

const answersTo = (socket: RawSocket) => received(socket).frames.filter((f) => f.type === 'call_response');
const shouts = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => callFrame(`${prefix}${i}`, ECHO, 'shout', [`${prefix}${i}`]));

describe('batches', () => {
  it('connection_status says the gateway takes batches of up to 256 frames', async () => {
    const socket = await open(suite.mesh, 'bea.t');
    expect(socket.frames[0]).toMatchObject({ type: 'connection_status', maxBatchFrames: 256 });
    socket.ws.terminate();
  });

  it('a batch of 50 calls runs all of them; their answers come back in batches, each call answered once', async () => {
    const socket = await open(suite.mesh, 'bob.t');
    socket.send(shouts('b', 50));
    await waitFor(() => answersTo(socket).length === 50, 'all 50 answers');
    const answers = answersTo(socket);
    expect(new Set(answers.map((a) => a.id)).size).toBe(50);
    expect(answers.every((a) => a.ok === true)).toBe(true);
    expect(received(socket).batches).toBeGreaterThan(0);
    expect(received(socket).messages).toBeLessThan(50);
    socket.ws.terminate();
  });

  it('to a Durable Object without bursts (one RPC per call), answers that come while other calls run go back together too', async () => {
    const socket = await open(suite.mesh, 'bob.t');
    const counter = { binding: 'COUNTER', instance: 'bob-count' };
    socket.send(Array.from({ length: 50 }, (_, i) => callFrame(`c${i}`, counter, 'increment', [1])));
    await waitFor(() => answersTo(socket).length === 50, 'all 50 answers');
    const answers = answersTo(socket);
    expect(new Set(answers.map((a) => a.id)).size).toBe(50);
    // one call at a time ran in the node (its input gate): the counts are 1 to 50, each once
    expect(answers.map((a) => JSON.parse(a.result as string)[0]).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(received(socket).batches).toBeGreaterThan(0);
    expect(received(socket).messages).toBeLessThan(50);
    socket.ws.terminate();
  });

  it('a client that sends one frame per message is sent one frame per message, even for a burst', async () => {
    const socket = await open(suite.mesh, 'cid.t');
    socket.sendTogether(shouts('c', 50)); // one TCP write: the gateway reads them as one burst
    await waitFor(() => answersTo(socket).length === 50, 'all 50 answers');
    expect(received(socket).batches).toBe(0);
    socket.ws.terminate();
  });

  it('each frame of a batch is checked on its own: a bad one is answered alone, the others run', async () => {
    const socket = await open(suite.mesh, 'dee.t');
    socket.send([callFrame('d1', ECHO, 'shout', ['one']), { type: 'nope' }, 7, callFrame('d2', ECHO, 'shout', ['two'])]);
    await waitFor(() => answersTo(socket).length === 2, 'both calls answered');
    const errors = received(socket).frames.filter((f) => f.type === 'error');
    expect(errors.map((e) => e.code).sort()).toEqual(['bad_frame', 'unknown_type']);
    socket.ws.terminate();
  });

  it('an empty batch or one of 257 frames is refused with bad_frame and runs nothing', async () => {
    const socket = await open(suite.mesh, 'eve.t');
    socket.send([]);
    socket.send(shouts('e', 257));
    await waitFor(() => received(socket).frames.filter((f) => f.type === 'error').length === 2, 'two refusals');
    expect(received(socket).frames.filter((f) => f.type === 'error').every((f) => f.code === 'bad_frame')).toBe(true);
    socket.send(callFrame('after', ECHO, 'shout', ['x'])); // the socket is fine, and nothing of the 257 ran before this
    await waitFor(() => answersTo(socket).length === 1, 'the call after');
    expect(answersTo(socket)[0]).toMatchObject({ id: 'after', ok: true });
    socket.ws.terminate();
  });

  it('each frame of a batch counts against the rate: 40 frames against a burst of 10 close the socket (1008), and only the 10 ran', async () => {
    await withTestMesh({ env: { FRAMES_PER_SECOND: '20', FRAME_BURST: '10' } }, async (mesh) => {
      const counter = { binding: 'COUNTER', instance: 'fay-count' };
      const socket = await open(mesh, 'fay.t');
      socket.send(Array.from({ length: 40 }, (_, i) => callFrame(`f${i}`, counter, 'increment', [1])));
      expect((await closeFrame(socket)).code).toBe(WS_CLOSE_RATE_LIMITED);
      socket.ws.terminate();
      await new Promise((r) => setTimeout(r, 300)); // a few tokens back, at 20/s
      const again = await open(mesh, 'fay.t');
      again.send(callFrame('read', counter, 'increment', [0]));
      await waitFor(() => answersTo(again).length === 1, 'the count');
      expect(answersTo(again)[0]).toMatchObject({ id: 'read', ok: true, result: '[10]' });
      again.ws.terminate();
    });
  });
});

describe("meshgate's client", () => {
  /** A MeshClient whose socket counts the messages it sends and receives. */
  async function countingClient(user: string) {
    const counts = { sent: 0, messages: 0 };
    class Counting extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        this.on('message', () => void counts.messages++);
      }

      override send(data: unknown, ...rest: unknown[]): void {
        counts.sent++;
        (super.send as (...a: unknown[]) => void)(data, ...rest);
      }
    }
    const client = new MeshClient({ url: suite.mesh.url.origin, accessToken: await suite.mesh.token(user), WebSocket: Counting as unknown as SocketClass });
    return { client, counts };
  }

  it('sends 64 calls made in one turn, and their follow-ups, in far fewer messages than frames, each answered right', async () => {
    const { client, counts } = await countingClient('gil');
    try {
      const echo = client.node<{ shout(text: string): string }>('ECHO_WORKER');
      await echo.shout('warm');
      counts.sent = 0;
      counts.messages = 0;
      const results = await Promise.all(Array.from({ length: 64 }, async (_, i) => [await echo.shout(`a${i}`), await echo.shout(`b${i}`)]));
      expect(results).toEqual(Array.from({ length: 64 }, (_, i) => [`A${i}!`, `B${i}!`]));
      // 128 calls and 128 answers; one message each way per turn that had any
      expect(counts.sent).toBeLessThan(32);
      expect(counts.messages).toBeLessThan(64);
    } finally {
      client.disconnect();
    }
  });

  it('keeps 64 calls in flight to a Durable Object without bursts in far fewer messages each way than calls', async () => {
    const { client, counts } = await countingClient('gus');
    try {
      const counter = client.node<{ increment(by: number): number }>('COUNTER', 'gus-count');
      await counter.increment(0);
      counts.sent = 0;
      counts.messages = 0;
      const results = await Promise.all(Array.from({ length: 64 }, async () => [await counter.increment(1), await counter.increment(1)]));
      expect(results.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 128 }, (_, i) => i + 1));
      expect(counts.sent).toBeLessThan(96);
      expect(counts.messages).toBeLessThan(96);
    } finally {
      client.disconnect();
    }
  });
});
