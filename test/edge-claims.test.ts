/**
 * Which token claims the edge accepts, on real workerd: nbf with a little
 * clock slack and exp without, and issuer and audience once configured.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawSocket, SECRET, callOver, closeFrame, startTestMesh, useTestMesh, type TestMesh } from './support/mesh.js';

const suite = useTestMesh();
const { sockets } = suite;

const counter = (instance: string) => ({ binding: 'COUNTER', instance });
let socketSeq = 0;

const signed = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
const now = () => Math.floor(Date.now() / 1000);

async function expectRefused(target: TestMesh, instance: string, token: string) {
  const sock = new RawSocket(target.wsUrl(instance), token);
  sockets.push(sock);
  const close = await closeFrame(sock);
  expect(sock.frames).toEqual([]);
  expect(await target.state(instance)).toMatchObject({ sockets: 0 });
  return close;
}

describe('token time checks', () => {
  it('a token that is not valid yet (nbf in the future) → 4403', async () => {
    const close = await expectRefused(suite.mesh, 'alice.nbf1', await signed({ sub: 'alice', nbf: now() + 600, exp: now() + 3600 }));
    expect(close).toEqual({ code: 4403, reason: 'Token claim "nbf" invalid' });
  });

  it('the same token with nbf in the past connects (the check above can fail)', async () => {
    const sock = new RawSocket(suite.mesh.wsUrl('alice.nbf2'), await signed({ sub: 'alice', nbf: now() - 5, exp: now() + 3600 }));
    sockets.push(sock);
    expect(await sock.ofType('connection_status')).toMatchObject({ sub: 'alice' });
  });

  it('nbf up to 60 s ahead connects: a client whose clock runs a little ahead is not sent to log in', async () => {
    const sock = new RawSocket(suite.mesh.wsUrl('alice.nbf3'), await signed({ sub: 'alice', nbf: now() + 30, exp: now() + 3600 }));
    sockets.push(sock);
    expect(await sock.ofType('connection_status')).toMatchObject({ sub: 'alice' });
  });

  it('exp gets no such slack: a token expired 10 s ago → 4401', async () => {
    const close = await expectRefused(suite.mesh, 'alice.exp1', await signed({ sub: 'alice', exp: now() - 10 }));
    expect(close).toEqual({ code: 4401, reason: 'Token expired' });
  });
});

describe('issuer and audience, when configured', () => {
  let strict: TestMesh;
  const ISSUER = 'https://login.example.test';
  const AUDIENCE = 'meshgate-tests';
  beforeAll(async () => {
    strict = await startTestMesh({ env: { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE } });
  });
  afterAll(async () => {
    await strict?.dispose();
  });

  it('the right issuer and audience connect (also an audience list that includes ours)', async () => {
    for (const [instance, aud] of [['alice.iss1', AUDIENCE], ['alice.iss2', ['other', AUDIENCE]]] as const) {
      const sock = new RawSocket(strict.wsUrl(instance), await signed({ sub: 'alice', iss: ISSUER, aud, exp: now() + 3600 }));
      sockets.push(sock);
      expect(await sock.ofType('connection_status')).toMatchObject({ sub: 'alice', instanceName: instance });
      expect(await callOver(sock, counter('iss'), 'increment', [1])).toMatchObject({ ok: true });
    }
  });

  it.each([
    ['a wrong issuer', { iss: 'https://evil.example.test', aud: AUDIENCE }, 'iss'],
    ['no issuer', { aud: AUDIENCE }, 'iss'],
    ['a wrong audience', { iss: ISSUER, aud: 'another-app' }, 'aud'],
    ['no audience', { iss: ISSUER }, 'aud'],
  ])('%s → 4403 naming the claim', async (_name, claims, claim) => {
    const instance = `alice.iss-${claim}-${++socketSeq}`;
    const close = await expectRefused(strict, instance, await signed({ sub: 'alice', exp: now() + 3600, ...claims }));
    expect(close).toEqual({ code: 4403, reason: `Token claim "${claim}" invalid` });
  });

  it('the default mesh (no issuer configured) accepts a token with any issuer', async () => {
    const sock = new RawSocket(suite.mesh.wsUrl('alice.iss9'), await signed({ sub: 'alice', iss: 'https://anyone.test', exp: now() + 3600 }));
    sockets.push(sock);
    expect(await sock.ofType('connection_status')).toMatchObject({ sub: 'alice' });
  });
});


