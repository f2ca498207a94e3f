/**
 * What the edge accepts, on real workerd: only algorithms the configured key
 * can verify (anything else is the token's fault, 4403, never a server error
 * 1011), keys from a public JWK or a JWKS endpoint (one that is down is the
 * server's fault, 1011), only tokens that expire, and only a subprotocol the
 * client offered.
 */
import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:http';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WS_CLOSE_FORBIDDEN, WS_CLOSE_UNSUPPORTED_PROTOCOL } from '../src/protocol/close-codes.js';
import { closeFrame, RawSocket, SECRET, useTestMesh, waitFor, withTestMesh, type TestMesh } from './support/mesh.js';

const sockets: RawSocket[] = [];
afterAll(() => {
  for (const socket of sockets) socket.ws.terminate();
});

function open(mesh: TestMesh, instance: string, token: string, protocols?: string[]): RawSocket {
  const socket = new RawSocket(mesh.wsUrl(instance), token, protocols);
  sockets.push(socket);
  return socket;
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Tokens an attacker can make without the RSA private key: other algorithms, unsigned or signed by their own keys. */
async function foreignTokens(sub: string): Promise<Array<[string, string]>> {
  const es = await generateKeyPair('ES256');
  const ed = await generateKeyPair('EdDSA');
  const claims = { sub, exp: inAnHour() };
  return [
    ['unsigned ES256', `${b64url({ alg: 'ES256' })}.${b64url(claims)}.${Buffer.alloc(64).toString('base64url')}`],
    ['unsigned EdDSA', `${b64url({ alg: 'EdDSA' })}.${b64url(claims)}.${Buffer.alloc(64).toString('base64url')}`],
    ['ES256 by another key', await new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).sign(es.privateKey)],
    ['EdDSA by another key', await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' }).sign(ed.privateKey)],
    ['PS256 unsigned', `${b64url({ alg: 'PS256' })}.${b64url(claims)}.${Buffer.alloc(256).toString('base64url')}`],
    ['HS256 with the test secret', await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET))],
  ];
}

/** Every foreign token is refused with 4403 (the token's fault), and a real RS256 token still connects. */
async function expectOnlyRs256(mesh: TestMesh, sub: string, sign: (sub: string) => Promise<string>) {
  for (const [name, token] of await foreignTokens(sub)) {
    const close = await closeFrame(open(mesh, `${sub}.x`, token));
    expect({ name, ...close }).toEqual({ name, code: WS_CLOSE_FORBIDDEN, reason: 'Token invalid' });
  }
  const good = open(mesh, `${sub}.t`, await sign(sub));
  expect((await good.ofType('connection_status')).sub).toBe(sub);
}

describe('algorithms come from the configured key', () => {
  it('an RSA public JWK without alg: ES256, EdDSA, PS256 and HS256 tokens get 4403, RS256 connects', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = await exportJWK(publicKey); // no "alg": its type decides
    await withTestMesh({ env: { JWT_PUBLIC_JWK: JSON.stringify(jwk) } }, (mesh) =>
      expectOnlyRs256(mesh, 'rsa', (sub) => new SignJWT({ sub, exp: inAnHour() }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey)));
  });

  it('an RSA key as an SPKI PEM: the same', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    await withTestMesh({ env: { JWT_PUBLIC_PEM: await exportSPKI(publicKey) } }, (mesh) =>
      expectOnlyRs256(mesh, 'pem', (sub) => new SignJWT({ sub, exp: inAnHour() }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey)));
  });

  describe('a JWKS of RSA keys', () => {
    let server: Server;
    let jwksUrl: string;
    let keys: JWK[] = [];
    beforeAll(async () => {
      server = createServer((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      jwksUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('tokens claiming other algorithms get 4403; RS256 by a listed key connects', async () => {
      const { publicKey, privateKey } = await generateKeyPair('RS256');
      keys = [{ ...(await exportJWK(publicKey)), kid: 'k1', use: 'sig' }]; // no alg: kty RSA
      await withTestMesh({ env: { JWKS_URL: jwksUrl } }, (mesh) =>
        expectOnlyRs256(mesh, 'jwks', (sub) => new SignJWT({ sub, exp: inAnHour() }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey)));
    });
  });
});

describe('production keys', () => {
  it('a public JWK: an ES256 token signed with its private key connects; an HS256 token does not', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), alg: 'ES256' };
    await withTestMesh({ env: { JWT_PUBLIC_JWK: JSON.stringify(jwk) } }, async (mesh) => {
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('lena').setExpirationTime('1h').sign(privateKey);
      const good = open(mesh, 'lena.t', token);
      expect((await good.ofType('connection_status')).sub).toBe('lena');
      const hs = open(mesh, 'lena.u', await mesh.token('lena'));
      expect((await closeFrame(hs)).code).toBe(4403);
    });
  });

  describe('a JWKS endpoint', () => {
    let server: Server;
    let jwksUrl: string;
    let keys: JWK[] = [];
    let requests = 0;
    beforeAll(async () => {
      server = createServer((_req, res) => {
        requests++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address() as { port: number };
      jwksUrl = `http://127.0.0.1:${address.port}/.well-known/jwks.json`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('an RS256 token whose kid is in the set connects; one signed by another key is refused with 4403', async () => {
      const signing = await generateKeyPair('RS256');
      const stranger = await generateKeyPair('RS256');
      keys = [{ ...(await exportJWK(signing.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }];
      await withTestMesh({ env: { JWKS_URL: jwksUrl } }, async (mesh) => {
        const sign = (key: CryptoKey, sub: string) => new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject(sub).setExpirationTime('1h').sign(key);
        const good = open(mesh, 'mia.t', await sign(signing.privateKey, 'mia'));
        expect((await good.ofType('connection_status')).sub).toBe('mia');
        expect(requests).toBeGreaterThan(0); // the keys really came from the endpoint
        const forged = open(mesh, 'mia.u', await sign(stranger.privateKey, 'mia'));
        expect((await closeFrame(forged)).code).toBe(4403);
      });
    });
  });

  describe('a key server that is down', () => {
    it('closes with 1011 (retry later), not 4403 (log in again)', async () => {
      await withTestMesh({ env: { JWKS_URL: 'http://127.0.0.1:9/.well-known/jwks.json' } }, async (down) => {
        const { privateKey } = await generateKeyPair('RS256');
        const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('tara').setExpirationTime('1h').sign(privateKey);
        const socket = new RawSocket(down.wsUrl('tara.t'), token);
        sockets.push(socket);
        expect(await closeFrame(socket, 10_000)).toEqual({ code: 1011, reason: 'Cannot verify tokens now' });
      });
    });
  });
});

describe('tokens must expire', () => {
  const suite = useTestMesh();
  const noExp = (sub: string) => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));

  it('a token without exp is refused with 4403 and a reason', async () => {
    const socket = open(suite.mesh, 'noexp.t', await noExp('noexp'));
    expect(await closeFrame(socket)).toEqual({ code: WS_CLOSE_FORBIDDEN, reason: 'Token has no exp claim; tokens must expire' });
    expect(socket.frames).toEqual([]);
  });

  it('with auth.noExpMaxAgeSeconds such a token connects, and its socket is closed with 4401 once that age has passed', async () => {
    await withTestMesh({ env: { NO_EXP_MAX_AGE_S: '2' } }, async (mesh) => {
      const endsAt = (Math.floor(Date.now() / 1000) + 3) * 1000; // whole seconds, like exp
      const socket = open(mesh, 'noexp.u', await noExp('noexp'));
      await socket.ofType('connection_status');
      await waitFor(() => Date.now() >= endsAt, 'the connection\'s age to pass', 6000, 50);
      socket.send({ type: 'call', id: 'late', to: { binding: 'ECHO_WORKER' }, method: 'shout', args: '[["x"],"x"]' });
      expect((await closeFrame(socket)).code).toBe(4401);
    });
  });
});

describe('subprotocol', () => {
  const suite = useTestMesh();

  /** The 101's selected subprotocol (undefined: none) and the close the socket gets. */
  async function handshake(instance: string, protocols: string[]) {
    const socket = open(suite.mesh, instance, '', protocols);
    const upgrade = new Promise<IncomingMessage>((resolve) => socket.ws.once('upgrade', resolve));
    await socket.opened;
    return { selected: (await upgrade).headers['sec-websocket-protocol'], socket };
  }

  it('offering another version and the token: that version is selected (clients fail a 101 that selects none) and the socket closed with 4426 and what to do', async () => {
    const token = await suite.mesh.token('proto');
    const { selected, socket } = await handshake('proto.t', ['meshgate.v9', `meshgate.token.${token}`]);
    expect(selected).toBe('meshgate.v9');
    expect(await closeFrame(socket)).toEqual({ code: WS_CLOSE_UNSUPPORTED_PROTOCOL, reason: 'Unsupported protocol (offered meshgate.v9; server speaks v1): reload the page to update' });
    expect(socket.frames).toEqual([]);
    expect(await suite.mesh.state('proto.t')).toMatchObject({ sockets: 0 });
  });

  it('offering only the token: HTTP 400 before any upgrade (the token is never echoed, so nothing can be selected)', async () => {
    const token = await suite.mesh.token('proto');
    const socket = open(suite.mesh, 'proto.t', '', [`meshgate.token.${token}`]);
    socket.opened.catch(() => undefined); // it never opens
    const response = await new Promise<IncomingMessage>((resolve) => socket.ws.once('unexpected-response', (_req, res) => resolve(res)));
    expect(response.statusCode).toBe(400);
    let body = '';
    for await (const chunk of response) body += String(chunk);
    expect(body).toContain('Sec-WebSocket-Protocol: meshgate, meshgate.token.<jwt>');
    expect(body).not.toContain(token);
    expect(await suite.mesh.state('proto.t')).toMatchObject({ sockets: 0 });
  });

  it('offering meshgate and the token: meshgate is selected', async () => {
    const token = await suite.mesh.token('proto');
    const { selected, socket } = await handshake('proto.u', ['meshgate', `meshgate.token.${token}`]);
    expect(selected).toBe('meshgate');
    expect((await socket.ofType('connection_status')).sub).toBe('proto');
  });
});
