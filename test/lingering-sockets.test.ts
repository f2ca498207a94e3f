/**
 * Sockets the gateway closed (superseded) whose client never reads stay in
 * workerd until their TCP connection ends: workerd has no close timeout and
 * no way to drop the connection. The gateway bounds how many one identity
 * may hold (config.maxClosingSockets); past it, upgrades are refused with 4429.
 */
import { describe, expect, it } from 'vitest';
import { WS_CLOSE_TOO_MANY_CONNECTIONS } from '../src/protocol/close-codes.js';
import { deafen } from './support/deaf-socket.js';
import { closeFrame, RawSocket, useTestMesh, waitFor } from './support/mesh.js';

const MAX_CLOSING = 3;
const suite = useTestMesh({ env: { MAX_CLOSING_SOCKETS: String(MAX_CLOSING) } });
const { sockets } = suite;

function open(instance: string, token: string): RawSocket {
  const socket = new RawSocket(suite.mesh.wsUrl(instance), token);
  sockets.push(socket);
  return socket;
}

describe('superseded sockets that never answer', () => {
  it(`at ${MAX_CLOSING} unanswered closes the next upgrade is refused with 4429; once their TCP connections end, upgrades are served again`, async () => {
    const token = await suite.mesh.token('linger');
    const deaf: RawSocket[] = [];
    for (let n = 0; n <= MAX_CLOSING; n++) {
      const socket = open('linger.t', token);
      await socket.ofType('connection_status');
      deafen(socket); // each is superseded by the next and never answers its 4409
      deaf.push(socket);
    }
    expect(await suite.mesh.state('linger.t')).toMatchObject({ sockets: MAX_CLOSING + 1, open: 1 });

    for (let attempt = 0; attempt < 3; attempt++) {
      const refused = open('linger.t', token);
      expect(await closeFrame(refused)).toEqual({ code: WS_CLOSE_TOO_MANY_CONNECTIONS, reason: `Too many connections of this tab still closing (limit ${MAX_CLOSING}); retry later` });
      expect(refused.frames).toEqual([]);
    }
    // Refused before anything changed: the socket that was open still is, and the count did not grow.
    expect(await suite.mesh.state('linger.t')).toMatchObject({ sockets: MAX_CLOSING + 1, open: 1 });

    for (const socket of deaf.slice(0, -1)) socket.ws.terminate();
    await waitFor(async () => (await suite.mesh.state('linger.t')).sockets === 1, 'the unanswered sockets to go');
    const next = open('linger.t', token);
    expect((await next.ofType('connection_status')).subscriptionRequired).toBe(false);
  });
});
