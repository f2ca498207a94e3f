/**
 * The edge Worker on real workerd: every auth rejection with its close code,
 * routing to gateway bindings only, the subprotocol handshake, and the
 * development login.
 */
import type { IncomingMessage } from 'node:http';
import { SignJWT, generateKeyPair } from 'jose';
import { request } from 'node:http';
import { describe, expect, test } from 'vitest';
import { WS_CLOSE_FORBIDDEN, WS_CLOSE_NO_TOKEN, WS_CLOSE_TOKEN_EXPIRED } from '../src/protocol/close-codes.js';
import { RawSocket, SECRET, callOver, closeFrame, useTestMesh } from './support/mesh.js';

const suite = useTestMesh();
const { sockets } = suite;

// ── helpers ───────────────────────────────────────────────────────────────────

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Opens a raw socket and records the 101 response's headers, if there is one. */
function open(instance: string, token?: string, options: { binding?: string; protocols?: string[] } = {}) {
  const sock = new RawSocket(suite.mesh.wsUrl(instance, options.binding), token, options.protocols);
  sockets.push(sock);
  const upgrade = new Promise<IncomingMessage>((resolve) => sock.ws.once('upgrade', resolve));
  return { sock, upgrade };
}

/** Expects the upgrade to be accepted and then closed at once with `code`, before any frame. */
async function expectRefused(instance: string, token: string | undefined, code: number) {
  const { sock, upgrade } = open(instance, token);
  await sock.opened;
  const close = await closeFrame(sock);
  expect(close.code).toBe(code);
  expect(close.reason.length).toBeGreaterThan(0);
  expect(sock.frames).toEqual([]); // no connection_status: the gateway was never reached
  if (token) expectNoToken(await upgrade, token);
  expect(await suite.mesh.state(instance)).toMatchObject({ sockets: 0 });
  return close;
}

function expectNoToken(response: IncomingMessage, token: string) {
  const all = response.rawHeaders.join('\n');
  expect(all).not.toContain(token);
  expect(all).not.toContain('meshgate.token.');
}

const signHS256 = (payload: Record<string, unknown>, secret = SECRET) =>
  new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));

// ── token rejections ─────────────────────────────────────────────────────────

describe('auth rejections close the accepted upgrade with a code the client can act on', () => {
  let badTokens = 0;

  test('no token → 4400', async () => {
    expect(WS_CLOSE_NO_TOKEN).toBe(4400);
    expect((await expectRefused('alice.no1', undefined, 4400)).reason).toBe('No token');
  });

  test('an empty token subprotocol → 4400', async () => {
    const { sock } = open('alice.no2', undefined, { protocols: ['meshgate', 'meshgate.token.'] });
    expect((await closeFrame(sock)).code).toBe(WS_CLOSE_NO_TOKEN);
  });

  test('expired token → 4401', async () => {
    expect(WS_CLOSE_TOKEN_EXPIRED).toBe(4401);
    const token = await suite.mesh.token('alice', {}, -60);
    expect((await expectRefused('alice.exp1', token, 4401)).reason).toBe('Token expired');
  });

  test.each([
    ['a bad signature', async () => {
      const [header, , signature] = (await suite.mesh.token('mallory')).split('.');
      return `${header}.${b64url({ sub: 'alice', exp: inAnHour() })}.${signature}`;
    }],
    ['alg: none', async () => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'alice', exp: inAnHour() })}.`],
    ['a different HS256 secret', () => signHS256({ sub: 'alice', exp: inAnHour() }, 'some-other-secret-that-is-also-long-enough')],
    ['an RS256 key', async () => {
      const { privateKey } = await generateKeyPair('RS256');
      return new SignJWT({ sub: 'alice', exp: inAnHour() }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    }],
    ['not a JWT at all', async () => 'not-a-jwt'],
    ['a missing sub', () => signHS256({ exp: inAnHour() })],
    ['a non-string sub', () => signHS256({ sub: 42, exp: inAnHour() })],
  ])('%s → 4403', async (_name, makeToken) => {
    const token = await makeToken();
    const instance = `alice.bad${++badTokens}`;
    expect((await expectRefused(instance, token, WS_CLOSE_FORBIDDEN)).code).toBe(4403);
  });

  test.each(['bob.t1', 'alice', 'alice.', 'aliceX.t1', 'xalice.t1', 'alice.t1.t2', 'ALICE.t1'])(
    'instance name %s for sub "alice" → 4403',
    async (instance) => {
      const close = await expectRefused(instance, await suite.mesh.token('alice'), WS_CLOSE_FORBIDDEN);
      expect(close.reason).toBe('Instance name must be {sub}.{tabId}');
    },
  );
});

// ── routing ───────────────────────────────────────────────────────────────────

describe('routing', () => {
  test('a non-upgrade GET to the gateway route → 426', async () => {
    const res = await fetch(new URL('/gateway/GATEWAY/alice.t1', suite.mesh.url), {
      headers: { 'Sec-WebSocket-Protocol': `meshgate, meshgate.token.${await suite.mesh.token('alice')}` },
    });
    expect(res.status).toBe(426);
    await res.body?.cancel();
  });

  test.each([
    ['COUNTER', 'alice.t1'], // a DO binding that is not a gateway
    ['PLAIN', 'alice.t1'],
    ['NOPE', 'alice.t1'],
    ['JWT_SECRET', 'alice.t1'],
  ])('an upgrade to /gateway/%s/%s → 404', async (binding, instance) => {
    const { sock } = open(instance, await suite.mesh.token('alice'), { binding });
    await expect(sock.opened).rejects.toThrow('Unexpected server response: 404');
    const res = await fetch(new URL(`/gateway/${binding}/${instance}`, suite.mesh.url));
    expect(res.status).toBe(404);
    await res.body?.cancel();
  });
});

// ── handshake ─────────────────────────────────────────────────────────────────

describe('handshake', () => {
  test('the 101 selects subprotocol "meshgate" only and never echoes the token', async () => {
    const token = await suite.mesh.token('alice');
    const { sock, upgrade } = open('alice.hs1', token);
    await sock.opened;
    expect(sock.ws.protocol).toBe('meshgate');
    const response = await upgrade;
    expect(response.statusCode).toBe(101);
    expect(response.headers['sec-websocket-protocol']).toBe('meshgate');
    expectNoToken(response, token);
    expect(await sock.ofType('connection_status')).toMatchObject({ sub: 'alice', instanceName: 'alice.hs1' });
  });

  test('a refused upgrade does not echo the token either', async () => {
    const token = await suite.mesh.token('alice');
    const { sock, upgrade } = open('bob.hs2', token);
    await sock.opened;
    expect(sock.ws.protocol).toBe('meshgate');
    expectNoToken(await upgrade, token);
    expect((await closeFrame(sock)).code).toBe(WS_CLOSE_FORBIDDEN);
  });
});

// ── development login ─────────────────────────────────────────────────────────

describe('development login', () => {
  test('POST /auth/dev-token {"sub":"alice"} returns a token that connects', async () => {
    const res = await fetch(new URL('/auth/dev-token', suite.mesh.url), {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sub: 'alice' }),
    });
    expect(res.status).toBe(200);
    const { access_token: token } = (await res.json()) as { access_token: string };
    expect(token.split('.')).toHaveLength(3);

    const { sock } = open('alice.dev1', token);
    expect(await sock.ofType('connection_status')).toMatchObject({ sub: 'alice', instanceName: 'alice.dev1', subscriptionRequired: true });
    expect(await callOver(sock, { binding: 'COUNTER', instance: 'dev1' }, 'increment', [1])).toMatchObject({ ok: true, value: 1 });
  });

  test('it answers only for loopback hosts, even when enabled: a request for another host is refused with 403 and says why', async () => {
    const post = (host: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const body = JSON.stringify({ sub: 'alice' });
      const req = request({ host: suite.mesh.url.hostname, port: suite.mesh.url.port, path: '/auth/dev-token', method: 'POST', agent: false, headers: { host, 'content-length': String(body.length) } }, (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
    const deployed = await post('my-mesh.example.com');
    expect(deployed.status).toBe(403);
    expect(JSON.parse(deployed.body).error).toMatch(/only on localhost .*"my-mesh\.example\.com".*Turn devLogin off/);
    for (const host of ['localhost:8787', 'app.localhost', '127.0.0.2:8787']) expect((await post(host)).status).toBe(200);
  });

  test('the dev token is bound to its sub', async () => {
    const res = await fetch(new URL('/auth/dev-token', suite.mesh.url), { method: 'POST', body: JSON.stringify({ sub: 'alice' }) });
    const { access_token: token } = (await res.json()) as { access_token: string };
    await expectRefused('bob.dev2', token, WS_CLOSE_FORBIDDEN);
  });
});
