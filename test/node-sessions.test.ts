/**
 * Sessions with Durable Object nodes (src/gateway/node-sessions.ts): a
 * gateway sends its calls to one object through one session, which closes
 * soon after the last call and is replaced after a bounded number of calls;
 * every call still runs once, behind the object's input gate, and a node of
 * the version before sessions gets direct calls.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SESSION_CALLS, SESSION_IDLE_MS } from '../src/gateway/node-sessions.js';
import { callOver, callResponse, RawSocket, sendCall, useTestMesh, waitFor } from './support/mesh.js';

const suite = useTestMesh({
  entry: new URL('./fixtures/session-worker.ts', import.meta.url),
  durableObjects: { PROBE: 'SessionProbeDO', TEXT_ONLY: 'TextOnlyDO' },
});
const probe = (instance: string) => ({ binding: 'PROBE', instance });

async function connect(instance: string): Promise<RawSocket> {
  const sock = new RawSocket(suite.mesh.wsUrl(instance), await suite.mesh.token(instance.split('.')[0]!));
  suite.sockets.push(sock);
  await sock.ofType('connection_status');
  return sock;
}

const sessionsOpen = async (instance: string) =>
  ((await suite.mesh.state(instance)) as unknown as { memory: { sessions: number } }).memory.sessions;

describe('sessions with a Durable Object node', () => {
  it('calls one after another reach the object through one session, opened in the first call\'s RPC', async () => {
    const sock = await connect('seq.t1');
    for (let n = 1; n <= 50; n++) expect(await callOver(sock, probe('seq'), 'increment')).toMatchObject({ ok: true, value: n });
    expect(await callOver(sock, probe('seq'), 'sessionsOpened')).toMatchObject({ ok: true, value: 1 });
  });

  it(`a session carries at most ${MAX_SESSION_CALLS} calls, then a new one replaces it; no call is lost or run twice`, async () => {
    const sock = await connect('rotate.t1');
    const calls = 2 * MAX_SESSION_CALLS + 100;
    for (let n = 1; n <= calls; n++) {
      const { ok, value } = await callOver(sock, probe('rotate'), 'increment');
      if (!ok || value !== n) expect({ ok, value }).toEqual({ ok: true, value: n });
    }
    expect(await callOver(sock, probe('rotate'), 'sessionsOpened')).toMatchObject({ ok: true, value: 3 });
  });

  it('a session closes soon after its last call, so nothing keeps the gateway or the object in memory; the next call opens a new one', async () => {
    const sock = await connect('idle.t1');
    expect(await callOver(sock, probe('idle'), 'increment')).toMatchObject({ ok: true, value: 1 });
    const answered = Date.now();
    await waitFor(async () => (await sessionsOpen('idle.t1')) === 0, 'the idle session to close', 5_000);
    // the idle deadline, up to its slack late, and the state request's own time
    expect(Date.now() - answered).toBeLessThan(2 * SESSION_IDLE_MS + 1_500);
    expect(await callOver(sock, probe('idle'), 'increment')).toMatchObject({ ok: true, value: 2 });
    expect(await callOver(sock, probe('idle'), 'sessionsOpened')).toMatchObject({ ok: true, value: 2 });
  });

  it('calls from several clients at once, each through its gateway\'s session, stay apart behind the input gate: 40 read-modify-writes lose no update', async () => {
    const socks = await Promise.all(['a', 'b', 'c', 'd'].map((sub) => connect(`${sub}.gate`)));
    const ids = socks.map((sock) => Array.from({ length: 10 }, () => sendCall(sock, probe('gate'), 'bumpStored')));
    const values = await Promise.all(socks.flatMap((sock, i) => ids[i]!.map(async (id) => (await callResponse(sock, id)).value as number)));
    expect(values.sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, n) => n + 1));
    expect(await callOver(socks[0]!, probe('gate'), 'sessionsOpened')).toMatchObject({ ok: true, value: 4 });
  });

  it('a session broken by a reset of the object ends its call with an error; the next call opens a new session to the new object', async () => {
    const sock = await connect('reset.t1');
    expect(await callOver(sock, probe('reset'), 'increment')).toMatchObject({ ok: true, value: 1 });
    const reset = await callOver(sock, probe('reset'), 'reset');
    expect(reset.ok).toBe(false);
    expect(await callOver(sock, probe('reset'), 'increment')).toMatchObject({ ok: true, value: 1 });
    expect(await callOver(sock, probe('reset'), 'sessionsOpened')).toMatchObject({ ok: true, value: 1 });
  });

  it('a node of the version before sessions gets each call as a direct call text, and each runs once', async () => {
    const sock = await connect('old.t1');
    for (let n = 1; n <= 3; n++) expect(await callOver(sock, { binding: 'TEXT_ONLY', instance: 'old' }, 'bump')).toMatchObject({ ok: true, value: n });
    expect(await callOver(sock, { binding: 'TEXT_ONLY', instance: 'old' }, 'runs')).toMatchObject({ ok: true, value: 3 });
    expect(await sessionsOpen('old.t1')).toBe(0);
  });
});
