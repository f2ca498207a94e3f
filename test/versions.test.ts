/**
 * Protocol versions negotiated on real workerd: a gateway released after this
 * one (it accepts the reserved v2 and v1) still serves a tab that loaded the
 * v1 client; a client offering v2 and v1 gets the newest both speak; a client
 * speaking only a version the server does not is refused with 4426 and told
 * to reload, and MeshClient stops instead of retrying.
 */
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { MeshClient, UnsupportedProtocolError, type ConnectionState } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import { WS_CLOSE_UNSUPPORTED_PROTOCOL } from '../src/protocol/close-codes.js';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '../src/protocol/wire.js';
import { closeFrame, RawSocket, useTestMesh, waitFor, type TestMesh } from './support/mesh.js';

const sockets: RawSocket[] = [];
const clients: MeshClient[] = [];
afterAll(() => {
  for (const socket of sockets) socket.ws.terminate();
  for (const client of clients) client.disconnect();
});

async function handshake(mesh: TestMesh, instance: string, protocols: (token: string) => string[]) {
  const socket = new RawSocket(mesh.wsUrl(instance), '', protocols(await mesh.token(instance.split('.')[0]!)));
  sockets.push(socket);
  const upgrade = new Promise<IncomingMessage>((resolve) => socket.ws.once('upgrade', resolve));
  await socket.opened;
  return { selected: (await upgrade).headers['sec-websocket-protocol'], socket };
}

async function shout(socket: RawSocket, id: string) {
  socket.send({ type: 'call', id, to: { binding: 'ECHO_WORKER' }, method: 'shout', args: encodeValue(['hi']) });
  const answer = await socket.ofType('call_response');
  return { ...answer, result: answer.ok === true ? decodeValue(String(answer.result)) : answer.error };
}

function client(mesh: TestMesh, token: string, protocolVersions: number[], events: string[]) {
  const c = new MeshClient({
    url: mesh.url.origin, accessToken: token, WebSocket: WebSocket as unknown as SocketClass, protocolVersions,
    reconnectMinDelayMs: 20, reconnectMaxDelayMs: 50, browserEvents: false,
    onStateChange: (s: ConnectionState) => void events.push(`state:${s}`),
    onUpdateRequired: (reason) => void events.push(`update:${reason}`),
    onError: (error) => void events.push(`error:${error instanceof UnsupportedProtocolError ? 'unsupported' : String(error)}:${(error as Error).message}`),
  });
  clients.push(c);
  return c;
}

describe('a gateway that speaks v2 and v1', () => {
  const suite = useTestMesh({ env: { PROTOCOL_VERSIONS: '2,1' } });

  it('an old client offering only `meshgate` connects on v1, and its calls work', async () => {
    const { selected, socket } = await handshake(suite.mesh, 'old.t', (token) => ['meshgate', `meshgate.token.${token}`]);
    expect(selected).toBe('meshgate');
    expect((await socket.ofType('connection_status')).protocol).toBe(1);
    expect(await shout(socket, 'c1')).toMatchObject({ id: 'c1', ok: true, result: 'HI!' });
  });

  it('a new client offering v2 and v1 gets v2 (selected and told), and its calls work', async () => {
    const { selected, socket } = await handshake(suite.mesh, 'new.t', (token) => ['meshgate.v2', 'meshgate', `meshgate.token.${token}`]);
    expect(selected).toBe('meshgate.v2');
    expect((await socket.ofType('connection_status')).protocol).toBe(2);
    expect(await shout(socket, 'c2')).toMatchObject({ id: 'c2', ok: true, result: 'HI!' });
  });

  it('the order offered does not matter: the newest version both speak wins', async () => {
    const { selected } = await handshake(suite.mesh, 'order.t', (token) => ['meshgate', 'meshgate.v2', `meshgate.token.${token}`]);
    expect(selected).toBe('meshgate.v2');
  });

  it('MeshClient offering [2, 1] connects on v2 and calls work; the default client connects on v1', async () => {
    const events: string[] = [];
    const c = client(suite.mesh, await suite.mesh.token('mc2'), [2, 1], events);
    await c.connect();
    expect(c.state).toBe('connected');
    expect(await c.node<{ shout(t: string): string }>('ECHO_WORKER').shout('hi')).toBe('HI!');
    const old = client(suite.mesh, await suite.mesh.token('mc1'), [...SUPPORTED_PROTOCOL_VERSIONS], events);
    await old.connect();
    expect(await old.node<{ shout(t: string): string }>('ECHO_WORKER').shout('yo')).toBe('YO!');
    expect(events.filter((e) => e.startsWith('error:'))).toEqual([]);
  });

  it('a client offering only v0 or an unknown version is closed with 4426 and told to reload', async () => {
    const { selected, socket } = await handshake(suite.mesh, 'v0.t', (token) => ['meshgate.v0', `meshgate.token.${token}`]);
    expect(selected).toBe('meshgate.v0');
    expect(await closeFrame(socket)).toEqual({
      code: WS_CLOSE_UNSUPPORTED_PROTOCOL, reason: 'Unsupported protocol (offered meshgate.v0; server speaks v2, v1): reload the page to update',
    });
    expect(socket.frames).toEqual([]);
  });
});

describe('a gateway that speaks v1 only (the default)', () => {
  const suite = useTestMesh();

  it('a client offering v2 and v1 gets v1', async () => {
    const { selected, socket } = await handshake(suite.mesh, 'new.u', (token) => ['meshgate.v2', 'meshgate', `meshgate.token.${token}`]);
    expect(selected).toBe('meshgate');
    expect((await socket.ofType('connection_status')).protocol).toBe(1);
    expect(await shout(socket, 'c3')).toMatchObject({ id: 'c3', ok: true, result: 'HI!' });
  });

  it('MeshClient speaking only v2 is refused with 4426: it stops (no reconnect loop), calls reject, onError and onUpdateRequired say reload', async () => {
    const events: string[] = [];
    const c = client(suite.mesh, await suite.mesh.token('only2'), [2], events);
    await c.connect();
    await waitFor(() => events.some((e) => e.startsWith('update:')), 'onUpdateRequired', 10_000, 20);
    expect(c.state).toBe('disconnected');
    const errors = events.filter((e) => e.startsWith('error:'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^error:unsupported:meshgate: the server no longer speaks .*server speaks v1.*reload the page to update the client\.$/);
    await expect(c.node<{ shout(t: string): string }>('ECHO_WORKER').shout('hi')).rejects.toBeInstanceOf(UnsupportedProtocolError);
    // Stopped for good: the refusals the edge logged stay at one over a few backoff periods (20–50 ms each).
    const refusals = async () => ((await (await fetch(new URL('/__refusals', suite.mesh.url))).json()) as Array<{ code: number; sub?: string; instance: string }>)
      .filter((r) => r.code === WS_CLOSE_UNSUPPORTED_PROTOCOL && r.instance.startsWith('only2.'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await refusals()).toHaveLength(1);
    expect(events.filter((e) => e === 'state:connecting' || e === 'state:reconnecting')).toEqual(['state:connecting']);
  });
});
