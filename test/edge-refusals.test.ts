/** Every upgrade the edge refuses is told to the logger — what, why, the sub once known — and the token never is. */
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { consoleEdgeLogger, describeRefusal, type RefusedUpgrade } from '../src/edge/refusals.js';
import { REFUSAL_LINGER_MS } from '../src/upgrade/responses.js';
import { RawSocket, SECRET, closeFrame, useTestMesh } from './support/mesh.js';

const suite = useTestMesh();

async function refusals(): Promise<RefusedUpgrade[]> {
  return (await fetch(new URL('/__refusals', suite.mesh.url))).json() as Promise<RefusedUpgrade[]>;
}

async function refusedAs(instance: string, token: string | undefined, binding?: string): Promise<RefusedUpgrade> {
  const before = (await refusals()).length;
  const socket = new RawSocket(suite.mesh.wsUrl(instance, binding), token);
  suite.sockets.push(socket);
  await closeFrame(socket).catch(() => undefined); // an HTTP refusal has no close frame
  const after = await refusals();
  expect(after.length).toBe(before + 1); // one line per refusal
  return after[after.length - 1]!;
}

describe('refused upgrades are logged', () => {
  it('each refusal says what was refused and why, with the sub where known, never the token', async () => {
    const expired = await new SignJWT({ sub: 'ada' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(new TextEncoder().encode(SECRET));
    const wrongSecret = await new SignJWT({ sub: 'ada' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode('another-secret-that-is-long-enough-too'));
    const good = await suite.mesh.token('ada');
    const cases: Array<[string, string | undefined, Partial<RefusedUpgrade>]> = [
      ['ada.r1', 'not-a-jwt', { as: 'close', code: 4403, reason: 'Token invalid' }],
      ['ada.r2', expired, { as: 'close', code: 4401, reason: 'Token expired' }],
      ['ada.r3', wrongSecret, { as: 'close', code: 4403, reason: 'Token invalid' }],
      ['ada.r4', undefined, { as: 'close', code: 4400, reason: 'No token' }],
      ['bob.r5', good, { as: 'close', code: 4403, reason: 'Instance name must be {sub}.{tabId}', sub: 'ada' }],
    ];
    for (const [instance, token, expected] of cases) {
      const refusal = await refusedAs(instance, token);
      expect(refusal, instance).toMatchObject({ ...expected, binding: 'GATEWAY', instance });
      if (token) expect(JSON.stringify(refusal)).not.toContain(token);
      if (!expected.sub) expect(refusal.sub).toBeUndefined();
    }
    expect(await refusedAs('ada.r6', good, 'NOPE')).toMatchObject({ as: 'http', code: 404, binding: 'NOPE' });
  });

  it('an accepted upgrade is not logged as refused', async () => {
    const before = (await refusals()).length;
    const socket = new RawSocket(suite.mesh.wsUrl('ada.ok'), await suite.mesh.token('ada'));
    suite.sockets.push(socket);
    await socket.ofType('connection_status');
    expect((await refusals()).length).toBe(before);
  });
});

describe('when the edge closes a refused socket', () => {
  it('at the client\'s first frame, and at the latest after REFUSAL_LINGER_MS for a client that sends nothing', async () => {
    const created = performance.now(); // before either upgrade: the edge's timer cannot start earlier
    const silent = new RawSocket(suite.mesh.wsUrl('ada.quiet'), 'not-a-jwt');
    const speaking = new RawSocket(suite.mesh.wsUrl('ada.pinging'), 'not-a-jwt');
    suite.sockets.push(silent, speaking);
    await Promise.all([silent.opened, speaking.opened]);
    const sent = performance.now();
    speaking.send('meshgate:ping');
    const pinged = await closeFrame(speaking);
    const pingedAfter = performance.now() - sent;
    const quiet = await closeFrame(silent);
    const quietAfter = performance.now() - created;
    expect(quiet).toEqual({ code: 4403, reason: 'Token invalid' });
    expect(pinged).toEqual({ code: 4403, reason: 'Token invalid' });
    expect(pingedAfter).toBeLessThan(REFUSAL_LINGER_MS); // a loopback round trip, not the timer
    expect(quietAfter).toBeGreaterThanOrEqual(REFUSAL_LINGER_MS - 5); // the silent one waited for its timer
  });
});

describe('the default logger', () => {
  afterEach(() => vi.restoreAllMocks());

  it('writes one line per refusal with control characters escaped, at most 60 a minute, then says how many it left out', () => {
    const lines: string[] = [];
    vi.spyOn(console, 'warn').mockImplementation((line: string) => void lines.push(line));
    let now = 0;
    const logger = consoleEdgeLogger(() => now);
    const refusal: RefusedUpgrade = { as: 'close', code: 4403, reason: 'Token invalid', binding: 'GATEWAY', instance: 'eve.t1\nmeshgate: forged line', sub: 'eve' };
    logger.refused(refusal, {});
    expect(lines).toEqual(['meshgate: refused upgrade to GATEWAY/eve.t1\\u000ameshgate: forged line (sub eve): closed with 4403 Token invalid']);
    logger.refused({ ...refusal, instance: 'eve.t2\u202ereversed\u2028next' }, {});
    expect(lines[1]).toContain('eve.t2\\u202ereversed\\u2028next');
    for (let i = 0; i < 98; i++) logger.refused(refusal, {});
    expect(lines).toHaveLength(60);
    now = 60_000;
    logger.refused({ ...refusal, as: 'http', code: 404, sub: undefined }, {});
    expect(lines.slice(60)).toEqual(['meshgate: 40 more refused upgrades in the last minute were not logged', describeRefusal({ ...refusal, as: 'http', code: 404, sub: undefined })]);
    expect(lines[61]).toMatch(/: HTTP 404 Token invalid$/);
  });
});
