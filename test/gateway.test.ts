/**
 * ClientGateway connection lifecycle on real workerd with real WebSockets:
 * supersession, the grace period, mesh → client calls following the client,
 * token expiry while connected, and the heartbeat.
 */
import { describe, expect, test } from 'vitest';
import { encodeValue, decodeValue } from '../src/protocol/codec.js';
import { ClientDisconnectedError, TokenExpiredError } from '../src/protocol/errors.js';
import { SUPERSEDED_REASON, WS_CLOSE_SUPERSEDED, WS_CLOSE_TOKEN_EXPIRED } from '../src/protocol/close-codes.js';
import { HEARTBEAT_PING, HEARTBEAT_PONG } from '../src/protocol/limits.js';
import {
  RawSocket, callOver, callResponse, closeFrame, sendCall, useTestMesh, waitFor,
} from './support/mesh.js';

const GRACE_MS = 1000;

const suite = useTestMesh({ graceMs: GRACE_MS });
const { sockets } = suite;

// ── helpers ───────────────────────────────────────────────────────────────────

type GatewayState = { sockets: number; open: number; alarm: number | null; closesHandled: number[]; clientCallsSeen: number };

const state = (instance: string) => suite.mesh.state(instance) as Promise<GatewayState>;
const counter = (instance: string) => ({ binding: 'COUNTER', instance });
const types = (sock: RawSocket) => sock.frames.map((f) => f.type);

/** Opens a socket for `instance` (token for its `{sub}`) and waits for its connection_status, which must be the first frame. */
async function connect(instance: string, token?: string) {
  const sock = new RawSocket(suite.mesh.wsUrl(instance), token ?? (await suite.mesh.token(instance.split('.')[0]!)));
  sockets.push(sock);
  const status = await sock.ofType('connection_status');
  expect(sock.frames[0]).toBe(status);
  return { sock, status };
}

/** Closes the client's socket and waits until the gateway has handled it and started the grace period. */
async function disconnect(sock: RawSocket, instance: string) {
  sock.close(1000);
  expect((await closeFrame(sock)).code).toBe(1000); // the gateway completes the close handshake
  return waitFor(async () => {
    const s = await state(instance);
    return s.open === 0 && s.alarm !== null && s;
  }, `the grace alarm of ${instance}`);
}

/** Waits until the grace period of `instance` has run out (its alarm fired). */
function graceOver(instance: string) {
  return waitFor(async () => (await state(instance)).alarm === null, `the grace period of ${instance} to end`, GRACE_MS + 5000);
}

/** Answers an incoming call from the raw socket. */
function answer(sock: RawSocket, incoming: Record<string, unknown>, value: unknown) {
  sock.send({ type: 'incoming_call_response', id: incoming.id, ok: true, result: encodeValue(value) });
}

// ── supersession ──────────────────────────────────────────────────────────────

describe('supersession', () => {
  test('a second connection supersedes the first: in-band superseded frame, then close 4409 with the reason', async () => {
    const first = await connect('alice.sup1');
    await connect('alice.sup1');

    const superseded = await first.sock.ofType('superseded');
    expect(superseded.reason).toBe(SUPERSEDED_REASON);
    const close = await closeFrame(first.sock);
    expect(WS_CLOSE_SUPERSEDED).toBe(4409);
    expect(close).toEqual({ code: 4409, reason: 'Superseded by new connection' });
    // the superseded frame came before the close frame, and nothing else did
    expect(types(first.sock)).toEqual(['connection_status', 'superseded']);

    expect(await state('alice.sup1')).toMatchObject({ sockets: 1, open: 1, alarm: null });
  });

  test('connection_status is the first frame on every socket; subscriptionRequired is false on supersession', async () => {
    const first = await connect('alice.sup2');
    const second = await connect('alice.sup2');
    const third = await connect('alice.sup2');

    expect(first.status).toMatchObject({ subscriptionRequired: true, instanceName: 'alice.sup2', sub: 'alice' });
    expect(second.status).toMatchObject({ subscriptionRequired: false, instanceName: 'alice.sup2', sub: 'alice' });
    expect(third.status).toMatchObject({ subscriptionRequired: false, instanceName: 'alice.sup2', sub: 'alice' });
    for (const { sock } of [first, second, third]) expect(sock.frames[0]!.type).toBe('connection_status');
    expect((await closeFrame(second.sock)).code).toBe(4409);
  });

  test('a call from the new socket reaches a DO and the answer comes back on the new socket, not the old', async () => {
    const first = await connect('alice.sup3');
    const second = await connect('alice.sup3');
    await closeFrame(first.sock);

    expect(await callOver(second.sock, counter('sup3'), 'increment', [5])).toMatchObject({ ok: true, value: 5 });
    expect(await callOver(second.sock, counter('sup3'), 'increment', [2])).toMatchObject({ ok: true, value: 7 });
    expect(types(first.sock)).not.toContain('call_response');
  });

  test('a mesh → client call after supersession is delivered on the new socket', async () => {
    const first = await connect('erin.sup4');
    const second = await connect('erin.sup4');
    await closeFrame(first.sock);
    const caller = await connect('frank.sup4');

    const id = sendCall(caller.sock, counter('sup4'), 'callClient', ['erin.sup4', 'applyChange', [{ op: 'insert', at: 3 }]]);
    const incoming = await second.sock.ofType('incoming_call');
    expect(incoming.method).toBe('applyChange');
    expect(decodeValue(incoming.args as string)).toEqual([{ op: 'insert', at: 3 }]);
    expect(incoming.origin).toMatchObject({ kind: 'client', sub: 'frank', instance: 'frank.sup4' });
    answer(second.sock, incoming, 'applied on second');

    expect(await callResponse(caller.sock, id)).toMatchObject({ ok: true, value: { ok: true, value: 'applied on second' } });
    expect(types(first.sock)).not.toContain('incoming_call');
  });

  test('a mesh → client call sent to a socket that is then superseded is delivered again on the new socket', async () => {
    const first = await connect('erin.sup5');
    const caller = await connect('frank.sup5');
    const id = sendCall(caller.sock, counter('sup5'), 'callClient', ['erin.sup5', 'applyChange', ['late']]);
    const onFirst = await first.sock.ofType('incoming_call'); // never answered by the displaced socket

    const second = await connect('erin.sup5');
    const onSecond = await second.sock.ofType('incoming_call');
    expect(onSecond.id).toBe(onFirst.id);
    answer(second.sock, onSecond, 'applied after takeover');

    expect(await callResponse(caller.sock, id)).toMatchObject({ ok: true, value: { ok: true, value: 'applied after takeover' } });
  });

  test('a client that answers the 4409 close with a different code leaves no grace alarm while the new socket is open', async () => {
    const first = await connect('alice.sup6');
    // On the in-band notice, close with 1000 first, so the gateway sees 1000, not an echo of 4409.
    first.sock.ws.on('message', (data) => {
      if (String(data).includes('"superseded"')) first.sock.ws.close(1000, 'client closing on its own');
    });
    await connect('alice.sup6');

    const handled = await waitFor(async () => {
      const s = await state('alice.sup6');
      return s.closesHandled.includes(1000) && s;
    }, 'the gateway to handle the client\'s 1000 close');
    expect(handled.closesHandled).not.toContain(4409);
    expect(handled).toMatchObject({ open: 1, alarm: null });
  });

  test('after the new socket closes, the grace alarm is set (the check above can fail)', async () => {
    await connect('alice.sup7');
    const second = await connect('alice.sup7');
    expect(await state('alice.sup7')).toMatchObject({ open: 1, alarm: null });
    const afterClose = await disconnect(second.sock, 'alice.sup7');
    expect(afterClose.alarm).toBeGreaterThan(Date.now() - 1000);
  });
});

// ── grace period ──────────────────────────────────────────────────────────────

describe('grace period', () => {
  test('a reconnect inside the grace period gets subscriptionRequired: false and cancels the alarm', async () => {
    const first = await connect('gina.gr1');
    expect(first.status.subscriptionRequired).toBe(true);
    await disconnect(first.sock, 'gina.gr1');

    const again = await connect('gina.gr1');
    expect(again.status.subscriptionRequired).toBe(false);
    expect(await state('gina.gr1')).toMatchObject({ open: 1, alarm: null });
  });

  test('a reconnect after the grace period gets subscriptionRequired: true', async () => {
    const first = await connect('gina.gr2');
    await disconnect(first.sock, 'gina.gr2');
    await graceOver('gina.gr2');

    const again = await connect('gina.gr2');
    expect(again.status.subscriptionRequired).toBe(true);
  });

  test('a mesh → client call during the grace period waits and is delivered after the reconnect', async () => {
    const first = await connect('hank.gr3');
    await disconnect(first.sock, 'hank.gr3');
    const caller = await connect('ivy.gr3');

    const id = sendCall(caller.sock, counter('gr3'), 'callClient', ['hank.gr3', 'applyChange', [{ n: 1 }]]);
    const waiting = await waitFor(async () => {
      const s = await state('hank.gr3');
      return s.clientCallsSeen === 1 && s;
    }, 'the call to reach the gateway of hank.gr3');
    expect(waiting).toMatchObject({ open: 0 });
    expect(waiting.alarm).not.toBeNull(); // still in the grace period: the call is waiting, not failed
    expect(types(caller.sock)).not.toContain('call_response');

    const again = await connect('hank.gr3');
    expect(again.status.subscriptionRequired).toBe(false);
    const incoming = await again.sock.ofType('incoming_call');
    expect(decodeValue(incoming.args as string)).toEqual([{ n: 1 }]);
    answer(again.sock, incoming, 'applied after reconnect');

    expect(await callResponse(caller.sock, id)).toMatchObject({ ok: true, value: { ok: true, value: 'applied after reconnect' } });
  });

  test('a mesh → client call waiting when the grace period runs out fails with ClientDisconnectedError', async () => {
    const first = await connect('jack.gr4');
    await disconnect(first.sock, 'jack.gr4');
    const caller = await connect('ivy.gr4');

    const id = sendCall(caller.sock, counter('gr4'), 'callClient', ['jack.gr4', 'applyChange', [{ n: 2 }]]);
    const { value } = await callResponse(caller.sock, id, GRACE_MS + 5000);
    expect(value.ok).toBe(false);
    expect(value.isDisconnected).toBe(true);
    expect(value.error).toBeInstanceOf(ClientDisconnectedError);
    expect(value.error.name).toBe('ClientDisconnectedError');
    expect(value.error.clientInstanceName).toBe('jack.gr4');
  });

  test('a mesh → client call after the grace period fails at once with ClientDisconnectedError', async () => {
    const first = await connect('kim.gr5');
    await disconnect(first.sock, 'kim.gr5');
    await graceOver('kim.gr5');
    const caller = await connect('ivy.gr5');

    const { value } = await callOver(caller.sock, counter('gr5'), 'callClient', ['kim.gr5', 'applyChange', [{ n: 3 }]]);
    expect(value).toMatchObject({ ok: false, isDisconnected: true });
    expect(value.error).toBeInstanceOf(ClientDisconnectedError);
    expect(value.error.clientInstanceName).toBe('kim.gr5');
    expect((await state('kim.gr5')).clientCallsSeen).toBe(1);
  });
});

// ── token expiry while connected ──────────────────────────────────────────────

describe('token expiry while connected', () => {
  test('the next call gets a TokenExpiredError answer and the socket closes with 4401', async () => {
    const token = await suite.mesh.token('lena', {}, 2);
    const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
    const { sock } = await connect('lena.exp1', token);
    expect(await callOver(sock, counter('exp1'), 'increment', [1])).toMatchObject({ ok: true, value: 1 });

    await waitFor(() => Date.now() >= exp * 1000 + 50, 'the token to expire', 4000, 50);
    const { ok, error } = await callOver(sock, counter('exp1'), 'increment', [1]);
    expect(ok).toBe(false);
    expect(error).toBeInstanceOf(TokenExpiredError);
    expect(error.code).toBe('token_expired');
    expect(await closeFrame(sock)).toEqual({ code: WS_CLOSE_TOKEN_EXPIRED, reason: 'Token expired' });
  });
});

// ── heartbeat ─────────────────────────────────────────────────────────────────

describe('heartbeat', () => {
  test('meshgate:ping is answered meshgate:pong, and the socket keeps working', async () => {
    const { sock } = await connect('mia.hb1');
    sock.send(HEARTBEAT_PING);
    const pong = await sock.next((f) => f.type === '__text');
    expect(pong.text).toBe(HEARTBEAT_PONG);
    expect(HEARTBEAT_PONG).toBe('meshgate:pong');

    expect(await callOver(sock, counter('hb1'), 'increment', [4])).toMatchObject({ ok: true, value: 4 });
    // the ping was not handled as a (bad) frame by the gateway
    expect(types(sock)).toEqual(['connection_status', '__text', 'call_response']);
  });
});
