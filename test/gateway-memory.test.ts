/**
 * What the gateway remembers, and when it must say it forgot: sockets still
 * closing, close events that arrive late, tokens that expire while the client
 * is silent, identities too large to keep, and resends from another epoch.
 */
import { describe, expect, it } from 'vitest';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import { deafen } from './support/deaf-socket.js';
import { closeFrame, RawSocket, useTestMesh, waitFor } from './support/mesh.js';

const GRACE_MS = 400;
const suite = useTestMesh({ graceMs: GRACE_MS });
const { sockets } = suite;

function open(instance: string, token: string): RawSocket {
  const socket = new RawSocket(suite.mesh.wsUrl(instance), token);
  sockets.push(socket);
  return socket;
}

describe('subscriptionRequired and the epoch', () => {
  it('a superseded socket that never answers its close does not spare the client subscriptionRequired: true after the grace period', async () => {
    const token = await suite.mesh.token('nina');
    const a = open('nina.t', token);
    await a.ofType('connection_status');
    deafen(a); // its network path died: it will never answer the 4409
    const b = open('nina.t', token);
    expect((await b.ofType('connection_status')).subscriptionRequired).toBe(false);
    expect((await suite.mesh.state('nina.t')).sockets).toBe(2); // a lingers, closing
    b.ws.terminate();
    await waitFor(async () => (await suite.mesh.state('nina.t')).alarm !== null, 'the grace period to start');
    await waitFor(async () => (await suite.mesh.state('nina.t')).alarm === null, 'the grace period to end');
    const c = open('nina.t', token);
    expect((await c.ofType('connection_status')).subscriptionRequired).toBe(true);
  });

  it("a late close from a socket the gateway closed itself does not start a new grace period", async () => {
    const token = await suite.mesh.token('omar');
    const a = open('omar.t', token);
    await a.ofType('connection_status');
    deafen(a);
    const b = open('omar.t', token);
    await b.ofType('connection_status');
    b.ws.terminate();
    await waitFor(async () => (await suite.mesh.state('omar.t')).alarm !== null, 'the grace period to start');
    await waitFor(async () => (await suite.mesh.state('omar.t')).alarm === null, 'the grace period to end');
    a.ws.terminate(); // the old socket's TCP finally goes away
    await waitFor(async () => (await suite.mesh.state('omar.t')).sockets === 0, 'the old socket to be gone');
    expect((await suite.mesh.state('omar.t')).alarm).toBeNull();
    const c = open('omar.t', token);
    expect((await c.ofType('connection_status')).subscriptionRequired).toBe(true);
  });

  it('every connection_status names the gateway incarnation (epoch), the same while it lives', async () => {
    const token = await suite.mesh.token('pia');
    const a = open('pia.t', token);
    const first = await a.ofType('connection_status');
    const b = open('pia.t', token);
    const second = await b.ofType('connection_status');
    expect(typeof first.epoch).toBe('string');
    expect(second.epoch).toBe(first.epoch);
  });
});

describe('tokens and identities', () => {
  it('a silent client whose token expired gets no mesh calls: the gateway closes it with 4401 and the call waits for the reconnect', async () => {
    const expiresAt = (Math.floor(Date.now() / 1000) + 3) * 1000; // suite.mesh.token sets exp = now + 2 s, in whole seconds
    const shortLived = await suite.mesh.token('quinn', {}, 2);
    const callee = open('quinn.t', shortLived);
    await callee.ofType('connection_status');
    const caller = open('rosa.t', await suite.mesh.token('rosa'));
    await caller.ofType('connection_status');
    await waitFor(() => Date.now() >= expiresAt, 'the token to expire', 5000, 50);
    caller.send({ type: 'call', id: 'cb', to: { binding: 'COUNTER', instance: 'memory' }, method: 'callClient', args: encodeValue(['quinn.t', 'hello', [], { ownChain: true }]) });
    expect((await closeFrame(callee)).code).toBe(4401);
    expect(callee.frames.some((f) => f.type === 'incoming_call')).toBe(false);
    const renewed = open('quinn.t', await suite.mesh.token('quinn'));
    const incoming = await renewed.ofType('incoming_call');
    renewed.send({ type: 'incoming_call_response', id: incoming.id, ok: true, result: encodeValue('hi') });
    const answer = await caller.next((f) => f.id === 'cb');
    expect(decodeValue(answer.result as string)).toEqual({ ok: true, value: 'hi' });
  });

  it('an identity too large to keep is refused with 4403 before the live socket is touched, whatever its characters', async () => {
    for (const [instance, blob] of [['sam.w', 'ж'.repeat(8_600)], ['sam.x', 'x'.repeat(20_000)]] as const) {
      const token = await suite.mesh.token('sam');
      const live = open(instance, token);
      await live.ofType('connection_status');
      const huge = open(instance, await suite.mesh.token('sam', { blob }));
      expect(await closeFrame(huge)).toEqual({ code: 4403, reason: 'Token claims too large' });
      expect((await suite.mesh.state(instance)).open).toBe(1);
      expect(live.frames.some((f) => f.type === 'superseded')).toBe(false);
    }
  });

  it('an identity that fits is kept whole, non-Latin-1 characters included', async () => {
    const name = 'Жанна ✓ '.repeat(400);
    const socket = open('sam.y', await suite.mesh.token('sam', { name }));
    await socket.ofType('connection_status');
    socket.send({ type: 'call', id: 'w', to: { binding: 'COUNTER', instance: 'memory' }, method: 'whoCalled', args: encodeValue([]) });
    const context = decodeValue((await socket.next((f) => f.id === 'w')).result as string) as { originAuth: { claims: { name: string } } };
    expect(context.originAuth.claims.name).toBe(name);
  });

  it('a resend marked with another epoch is answered outcome-unknown; one marked with this epoch runs', async () => {
    const socket = open('vera.t', await suite.mesh.token('vera'));
    const { epoch } = await socket.ofType('connection_status');
    const call = (id: string, resentFrom: string) =>
      socket.send({ type: 'call', id, to: { binding: 'COUNTER', instance: 'epochs' }, method: 'increment', args: encodeValue([1]), resentFrom });
    call('old', 'an-earlier-incarnation');
    const old = await socket.next((f) => f.id === 'old');
    expect((decodeValue(old.error as string) as Error).name).toBe('OutcomeUnknownError');
    call('lost', epoch as string); // sent under this epoch but never received: safe to run
    expect(decodeValue((await socket.next((f) => f.id === 'lost')).result as string)).toBe(1);
  });
});
