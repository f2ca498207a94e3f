/** Pages on other origins may use the edge's HTTP routes when their origin is listed; WebSocket upgrades are not affected. */
import { describe, expect, it } from 'vitest';
import { CorsPolicy } from '../src/edge/cors.js';
import { RawSocket, useTestMesh } from './support/mesh.js';

const PAGE = 'http://localhost:5173';
const suite = useTestMesh({ env: { CORS_ORIGINS: PAGE } });

const devToken = (origin: string, init: RequestInit = {}) =>
  fetch(new URL('/auth/dev-token', suite.mesh.url), { ...init, headers: { origin, ...(init.headers as Record<string, string>) } });

describe('CORS at the edge', () => {
  it('a listed origin gets a preflight answer and the development login with its origin echoed and credentials allowed', async () => {
    const preflight = await devToken(PAGE, { method: 'OPTIONS', headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('content-type');

    const login = await devToken(PAGE, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sub: 'cora' }) });
    expect(login.status).toBe(200);
    expect(login.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(login.headers.get('vary')).toMatch(/Origin/);
    expect(typeof ((await login.json()) as { access_token: string }).access_token).toBe('string');
  });

  it('an origin not listed gets no CORS headers (the browser refuses the response), and neither does a request without Origin', async () => {
    const preflight = await devToken('http://evil.example', { method: 'OPTIONS', headers: { 'access-control-request-method': 'POST' } });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const login = await devToken('http://evil.example', { method: 'POST', body: JSON.stringify({ sub: 'cora' }) });
    expect(login.headers.get('access-control-allow-origin')).toBeNull();
    const plain = await fetch(new URL('/auth/dev-token', suite.mesh.url), { method: 'POST', body: JSON.stringify({ sub: 'cora' }) });
    expect(plain.status).toBe(200);
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('WebSocket upgrades from any origin are untouched: the token decides', async () => {
    const token = await suite.mesh.token('cora');
    const socket = new RawSocket(suite.mesh.wsUrl('cora.t1'), token, undefined, { origin: 'http://evil.example' });
    suite.sockets.push(socket);
    expect(await socket.ofType('connection_status')).toMatchObject({ sub: 'cora' });
  });

  it('a wildcard or a URL with a path is refused at construction with what to write instead', () => {
    expect(() => new CorsPolicy({ origins: ['*'] })).toThrow(/not an origin.*scheme:\/\/host\[:port\].*wildcard is not allowed/);
    expect(() => new CorsPolicy({ origins: ['http://localhost:5173/app'] })).toThrow(/not an origin/);
  });
});
