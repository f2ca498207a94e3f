/**
 * What one socket can make the gateway send and do: a remembered answer goes
 * out at most once per socket, and frames past the client's rates (frames,
 * and characters of frames) close it — so a client that floods and never
 * reads cannot make the runtime buffer without bound, and one that sends
 * large frames fast cannot make the gateway and its nodes parse them all.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MeshClient } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import { WS_CLOSE_RATE_LIMITED } from '../src/protocol/close-codes.js';
import { DEFAULTS } from '../src/protocol/limits.js';
// @ts-expect-error plain ESM helper shared with the benchmarks
import { rssBytes, workerdPids } from '../scripts/processes.mjs';
import { RawSocket, callFrame, callOver, resultOf, useTestMesh, waitFor, withTestMesh, type TestMesh } from './support/mesh.js';

const suite = useTestMesh();
const ECHO = { binding: 'ECHO_WORKER' };

async function open(mesh: TestMesh, instance: string, sockets?: RawSocket[]): Promise<RawSocket> {
  const socket = new RawSocket(mesh.wsUrl(instance), await mesh.token(instance.split('.')[0]!));
  sockets?.push(socket);
  await socket.ofType('connection_status');
  return socket;
}

/** Stops reading the socket's TCP stream, as a client that never reads would. */
function deafen(socket: RawSocket): void {
  (socket.ws as unknown as { _socket: { pause(): void } })._socket.pause();
}

function listen(socket: RawSocket): void {
  (socket.ws as unknown as { _socket: { resume(): void } })._socket.resume();
}

const workerdRss = (): number => (workerdPids() as number[]).reduce((sum, pid) => sum + (rssBytes(pid) as number), 0);

describe('answers from memory', () => {
  it('a remembered answer is sent again on a new socket, but only once per socket: a repeat gets duplicate_call_id', async () => {
    const first = await open(suite.mesh, 'rhea.t', suite.sockets);
    const frame = JSON.stringify(callFrame('dup-1', { binding: 'COUNTER', instance: 'dup' }, 'increment', [1]));
    first.ws.send(frame);
    expect(await resultOf(first, 'dup-1')).toBe(1);
    first.ws.send(frame);
    const error = await first.next((f) => f.type === 'error' && f.id === 'dup-1');
    expect(error).toMatchObject({ code: 'duplicate_call_id' });
    expect(String(error.message)).toMatch(/new id/);

    const second = await open(suite.mesh, 'rhea.t', suite.sockets); // the reconnect resends it
    second.ws.send(frame);
    expect(await resultOf(second, 'dup-1')).toBe(1); // from memory: it did not run again
    second.ws.send(frame);
    await second.next((f) => f.type === 'error' && f.id === 'dup-1');
    expect(second.frames.filter((f) => f.type === 'call_response' && f.id === 'dup-1')).toHaveLength(1);
    expect(await callOver(second, { binding: 'COUNTER', instance: 'dup' }, 'increment', [0])).toMatchObject({ value: 1 });
  });

  it('20,000 resends of a 72 KB answer from a client that never reads: workerd memory stays bounded and the socket is closed', async () => {
    // 100 frames/s after the default burst: a flood trips it however slowly a loaded machine lets the gateway read (at 1,000/s, one read per ms never would).
    const framesPerSecond = 100;
    await withTestMesh({ env: { FRAMES_PER_SECOND: String(framesPerSecond) } }, async (mesh) => {
      const sockets: RawSocket[] = [];
      try {
        const caller = await open(mesh, 'sven.t', sockets);
        const frame = JSON.stringify(callFrame('big-1', ECHO, 'big', [72_000]));
        caller.ws.send(frame);
        expect((await resultOf(caller, 'big-1')).length).toBe(72_000);

        const hostile = await open(mesh, 'sven.t', sockets);
        deafen(hostile);
        const before = workerdRss();
        const started = Date.now();
        for (let i = 0; i < 20_000; i++) hostile.ws.send(frame);
        await waitFor(async () => (await mesh.state('sven.t')).open === 0, 'the gateway to close the flooding socket', 15_000);
        const grown = workerdRss() - before;
        // Answering every resend would buffer 20,000 × 72 KB = 1.4 GB.
        expect(grown).toBeLessThan(64 * 1024 * 1024);

        listen(hostile);
        const { code, reason } = await hostile.closed;
        expect(code).toBe(WS_CLOSE_RATE_LIMITED);
        expect(reason).toMatch(/Rate limit exceeded/);
        expect(hostile.frames.filter((f) => f.type === 'call_response')).toHaveLength(1);
        // at most one error frame per frame the bucket let through: the burst, plus what refilled meanwhile
        const refilled = ((Date.now() - started) / 1000) * framesPerSecond;
        expect(hostile.frames.length).toBeLessThanOrEqual(DEFAULTS.frameBurst + refilled + 2);
        expect(hostile.frames.length).toBeLessThan(20_000);

        const after = await open(mesh, 'sven.t', sockets);
        expect(await callOver(after, ECHO, 'shout', ['still here'])).toMatchObject({ value: 'STILL HERE!' });
      } finally {
        for (const s of sockets) s.ws.terminate();
      }
    });
  }, 60_000);
});

describe('frames per socket (token bucket)', () => {
  const env = { FRAMES_PER_SECOND: '20', FRAME_BURST: '10' };

  it('frames within the burst are all served; the first past it closes the socket with 1008 and a reason saying what to do', async () => {
    await withTestMesh({ env }, async (mesh) => {
      const sockets: RawSocket[] = [];
      try {
        const socket = await open(mesh, 'tess.t', sockets);
        const ids = Array.from({ length: 10 }, (_, i) => `ok-${i}`);
        for (const id of ids) socket.ws.send(JSON.stringify(callFrame(id, ECHO, 'shout', [id])));
        for (const id of ids) expect(await resultOf(socket, id)).toBe(`${id.toUpperCase()}!`);
        for (let i = 0; i < 30; i++) socket.ws.send(JSON.stringify(callFrame(`over-${i}`, ECHO, 'shout', ['x'])));
        const { code, reason } = await socket.closed;
        expect(code).toBe(WS_CLOSE_RATE_LIMITED);
        expect(reason).toMatch(/20 frames\/s, bursts of 10.*send fewer frames/);
        // The close started a grace period: the client is still remembered on its reconnect,
        // once its bucket (the identity's, not the socket's) has refilled at 20 frames/s.
        await new Promise((r) => setTimeout(r, 600));
        const again = await open(mesh, 'tess.t', sockets);
        expect(again.frames[0]).toMatchObject({ type: 'connection_status', subscriptionRequired: false });
        expect(await callOver(again, ECHO, 'shout', ['x'])).toMatchObject({ value: 'X!' });
      } finally {
        for (const s of sockets) s.ws.terminate();
      }
    });
  });

  it('the bucket belongs to the identity, not the socket: reconnecting does not bring a fresh burst', async () => {
    await withTestMesh({ env: { FRAMES_PER_SECOND: '1', FRAME_BURST: '10' } }, async (mesh) => {
      const sockets: RawSocket[] = [];
      try {
        const first = await open(mesh, 'vic.t', sockets);
        for (let i = 0; i < 8; i++) first.ws.send(JSON.stringify(callFrame(`a-${i}`, ECHO, 'shout', ['x'])));
        await resultOf(first, 'a-7');
        const second = await open(mesh, 'vic.t', sockets); // supersedes the first
        for (let i = 0; i < 8; i++) second.ws.send(JSON.stringify(callFrame(`b-${i}`, ECHO, 'shout', ['x'])));
        expect((await second.closed).code).toBe(WS_CLOSE_RATE_LIMITED); // 16 frames against one burst of 10
      } finally {
        for (const s of sockets) s.ws.terminate();
      }
    });
  });

  it('the bucket refills: a client sending at its sustained rate is never closed', async () => {
    await withTestMesh({ env }, async (mesh) => {
      const sockets: RawSocket[] = [];
      try {
        const socket = await open(mesh, 'uma.t', sockets);
        // 30 calls one after another, each awaited, at no more than 20 a second: three times the burst
        for (let i = 0; i < 30; i++) {
          const started = Date.now();
          expect(await callOver(socket, ECHO, 'lengthOf', ['x'.repeat(i)])).toMatchObject({ value: i });
          const spare = 60 - (Date.now() - started);
          if (spare > 0) await new Promise((r) => setTimeout(r, spare)); // pacing the sender is the point here
        }
        expect((await mesh.state('uma.t')).open).toBe(1);
      } finally {
        for (const s of sockets) s.ws.terminate();
      }
    });
  });
});

describe('characters per client identity (token bucket)', () => {
  // 20,000-character frames at most; a burst of 10,000 asked for, 40,000 (two largest frames) applied; 10,000 a second
  const env = { MAX_FRAME_BYTES: '20000', BYTE_BURST: '10000', BYTES_PER_SECOND: '10000' };

  it('large frames past the character burst close the socket with 1008 before they are read, within the frame rate', async () => {
    await withTestMesh({ env }, async (mesh) => {
      const sockets: RawSocket[] = [];
      try {
        const socket = await open(mesh, 'cora.t', sockets);
        expect(socket.frames.find((f) => f.type === 'connection_status')).toMatchObject({ bytesPerSecond: 10_000, byteBurst: 40_000, maxFrameBytes: 20_000 });
        const started = Date.now();
        for (let i = 0; i < 10; i++) socket.ws.send(JSON.stringify(callFrame(`big-${i}`, ECHO, 'lengthOf', ['x'.repeat(15_000)])));
        const { code, reason } = await socket.closed;
        expect(code).toBe(WS_CLOSE_RATE_LIMITED);
        expect(reason).toMatch(/^Byte rate exceeded \(10000 chars\/s, bursts of 40000\)/);
        // 10 frames are far within the frame burst; the character burst lets two through, plus what refilled meanwhile
        const answered = socket.frames.filter((f) => f.type === 'call_response').length;
        const refilled = ((Date.now() - started) / 1000) * 10_000;
        expect(answered).toBeGreaterThanOrEqual(1);
        expect(answered).toBeLessThanOrEqual(Math.floor((40_000 + refilled) / 15_000));
      } finally {
        for (const s of sockets) s.ws.terminate();
      }
    });
  });

  it('a MeshClient learns the rate from connection_status and paces its large calls: all answered on its first socket', async () => {
    await withTestMesh({ env: { ...env, BYTES_PER_SECOND: '100000' } }, async (mesh) => {
      const states: string[] = [];
      const client = new MeshClient({
        url: mesh.url.origin, accessToken: await mesh.token('dora'), WebSocket: WebSocket as unknown as SocketClass, onStateChange: (state) => void states.push(state),
      });
      try {
        await client.connect();
        const echo = client.node<{ lengthOf(text: string): number }>('ECHO_WORKER');
        const started = Date.now();
        // 100,000 characters against a client share of 20,000 at once and 80,000 a second
        const lengths = await Promise.all(Array.from({ length: 10 }, () => echo.lengthOf('x'.repeat(10_000))));
        expect(lengths).toEqual(Array.from({ length: 10 }, () => 10_000));
        expect(states).toEqual(['connecting', 'connected']); // never closed for its rate
        expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      } finally {
        client.disconnect();
      }
    });
  }, 20_000);
});
