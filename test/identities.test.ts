/**
 * Any `sub` a real identity provider issues is a client identity, and no user
 * can reach another user's gateway, however their subs look — on real
 * workerd, with raw sockets and with MeshClient.
 */
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MeshClient } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import { WS_CLOSE_FORBIDDEN } from '../src/protocol/close-codes.js';
import { RawSocket, SECRET, callOver, closeFrame, useTestMesh, withTestMesh, type TestMesh } from './support/mesh.js';

const suite = useTestMesh();

const sign = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));

function open(mesh: TestMesh, instance: string, token: string, sockets: RawSocket[]): RawSocket {
  const socket = new RawSocket(mesh.wsUrl(instance), token);
  sockets.push(socket);
  return socket;
}

const PROVIDER_SUBS = [
  'auth0|5f7c8ec7c33c6c004bbafe82',
  'google-oauth2|108789012345678901234',
  'alice@example.com',
  'github:12345',
  'a/b%2Fc?d#e',
  'ünïcødé 名前 🙂',
  'first.last.name',
  '..',
  'x'.repeat(512),
];

describe('subs as providers issue them', () => {
  it.each(PROVIDER_SUBS)('%s connects as {sub}.{tabId}, percent-encoded in the URL, and calls', async (sub) => {
    const socket = open(suite.mesh, `${sub}.t1`, await sign({ sub }), suite.sockets);
    expect(await socket.ofType('connection_status')).toMatchObject({ sub, instanceName: `${sub}.t1` });
    expect(await callOver(socket, { binding: 'COUNTER', instance: 'subs' }, 'whoAmI')).toMatchObject({ ok: true, value: sub });
  });

  it('MeshClient derives the instance name from such a sub and connects', async () => {
    for (const sub of ['auth0|abc123', 'alice@example.com']) {
      const client = new MeshClient({ url: suite.mesh.url.origin, accessToken: await sign({ sub }), WebSocket: WebSocket as unknown as SocketClass });
      try {
        expect(await client.node<{ whoAmI(): string }>('COUNTER', 'subs').whoAmI()).toBe(sub);
        expect(client.instanceName).toMatch(new RegExp(`^${sub.replace(/[|.]/g, '\\$&')}\\.[A-Za-z0-9_-]+$`));
      } finally {
        client.disconnect();
      }
    }
  });

  it.each([
    ['an empty sub', '', /has no "sub" claim/],
    ['a sub of 513 characters', 'x'.repeat(513), /513 characters; at most 512/],
    ['a control character', 'alice\u0000', /control character/],
    ['a lone surrogate', 'alice\ud800', /broken surrogate/],
  ])('%s is refused with 4403 and a reason that says what is wrong', async (_name, sub, reason) => {
    const socket = open(suite.mesh, 'refused.t1', await sign({ sub }), suite.sockets);
    const close = await closeFrame(socket);
    expect(close.code).toBe(WS_CLOSE_FORBIDDEN);
    expect(close.reason).toMatch(reason);
  });
});

describe('no user reaches another user\'s gateway', () => {
  it('subs that are prefixes of each other each open only their own instances', async () => {
    const alice = await sign({ sub: 'alice' });
    const aliceBob = await sign({ sub: 'alice.bob' });
    // alice.bob.t1 belongs to "alice.bob"; alice.t1 to "alice"
    for (const [instance, token] of [['alice.bob.t1', alice], ['alice.t1', aliceBob], ['alice.bob', aliceBob], ['alice.bob.t1.t2', aliceBob]] as const) {
      const close = await closeFrame(open(suite.mesh, instance, token, suite.sockets));
      expect(close, instance).toMatchObject({ code: WS_CLOSE_FORBIDDEN, reason: 'Instance name must be {sub}.{tabId}' });
    }
    const mine = open(suite.mesh, 'alice.t9', alice, suite.sockets);
    const theirs = open(suite.mesh, 'alice.bob.t9', aliceBob, suite.sockets);
    expect(await mine.ofType('connection_status')).toMatchObject({ sub: 'alice', instanceName: 'alice.t9' });
    expect(await theirs.ofType('connection_status')).toMatchObject({ sub: 'alice.bob', instanceName: 'alice.bob.t9' });
    expect((await suite.mesh.state('alice.t9')).open).toBe(1);
    expect((await suite.mesh.state('alice.bob.t9')).open).toBe(1); // two gateways: neither superseded the other
    // "alice.bob" is alice's tab "bob": a name user alice.bob can never have (theirs all end in ".{tabId}" after "alice.bob")
    const tab = open(suite.mesh, 'alice.bob', alice, suite.sockets);
    expect(await tab.ofType('connection_status')).toMatchObject({ sub: 'alice', instanceName: 'alice.bob' });
    expect((await suite.mesh.state('alice.bob.t9')).open).toBe(1);
  });
});

describe('auth.identity: the identity from another claim', () => {
  const CLAIM = 'https://app.example/user_id';

  it('connects as the claim, not as sub; the client derives the same with its identity option; a token without the claim is refused', async () => {
    await withTestMesh({ entry: new URL('./fixtures/identity-worker.ts', import.meta.url) }, async (mesh) => {
      const sockets: RawSocket[] = [];
      try {
        const token = await sign({ sub: 'provider-7f3a', [CLAIM]: 'user-42' });
        const refused = await closeFrame(open(mesh, 'provider-7f3a.t1', token, sockets));
        expect(refused.code).toBe(WS_CLOSE_FORBIDDEN);
        const socket = open(mesh, 'user-42.t1', token, sockets);
        expect(await socket.ofType('connection_status')).toMatchObject({ sub: 'user-42' });

        const client = new MeshClient({ url: mesh.url.origin, accessToken: token, WebSocket: WebSocket as unknown as SocketClass, identity: (claims) => claims[CLAIM] });
        try {
          expect(await client.node<{ whoAmI(): string }>('COUNTER', 'claims').whoAmI()).toBe('user-42');
          expect(client.instanceName).toMatch(/^user-42\./);
        } finally {
          client.disconnect();
        }

        const without = await closeFrame(open(mesh, 'provider-7f3a.t2', await sign({ sub: 'provider-7f3a' }), sockets));
        expect(without).toMatchObject({ code: WS_CLOSE_FORBIDDEN, reason: expect.stringMatching(/auth\.identity derived has no value/) });
      } finally {
        for (const s of sockets) s.ws.terminate();
      }
    });
  });
});
