/**
 * Sessions with Durable Object nodes (src/gateway/node-sessions.ts): a
 * gateway sends its calls to one object through one session, which closes
 * soon after the last call and is replaced after a bounded number of calls;
 * every call still runs once, behind the object's input gate, and a node of
 * the version before sessions gets direct calls.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SESSION_CALLS, SESSION_IDLE_MS } from '../src/gateway/node-sessions.js';
import { encodeValue } from '../src/protocol/codec.js';
import { callOver, callResponse, RawSocket, sendCall, useTestMesh, waitFor } from './support/mesh.js';

const suite = useTestMesh({
  entry: new URL('./fixtures/session-worker.ts', import.meta.url),
  durableObjects: { PROBE: 'SessionProbeDO', TEXT_ONLY: 'TextOnlyDO' },
});
const probe = (instance: string) => ({ binding: 'PROBE', instance });
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

async function connect(instance: string): Promise<RawSocket> {
  const sock = new RawSocket(suite.mesh.wsUrl(instance), await suite.mesh.token(instance.split('.')[0]!));
  suite.sockets.push(sock);
  await sock.ofType('connection_status');
  return sock;
}

const sessionsOpen = async (instance: string) =>
  ((await suite.mesh.state(instance)) as unknown as { memory: { sessions: number } }).memory.sessions;

describe('sessions with a Durable Object node', () => {
  it('calls one after another reach the object through a session, opened in the second call\'s RPC, each session carrying many', async () => {
    const sock = await connect('seq.t1');
    for (let n = 1; n <= 50; n++) expect(await callOver(sock, probe('seq'), 'increment')).toMatchObject({ ok: true, value: n });
    const { value } = await callOver(sock, probe('seq'), 'sessionCounts');
    // The first went on the stub; every later one came through a session (a gap past the idle window on a
    // loaded machine goes on the stub again, and the call after it opens another).
    expect(sum(value.calls)).toBeGreaterThanOrEqual(45);
    expect(sum(value.calls)).toBeLessThanOrEqual(50);
    expect(value.opened).toBeLessThanOrEqual(5);
  });

  it(`a session carries at most ${MAX_SESSION_CALLS} calls, then a new one replaces it; no call is lost or run twice`, async () => {
    const sock = await connect('rotate.t1');
    const calls = 2 * MAX_SESSION_CALLS + 100;
    for (let n = 1; n <= calls; n++) {
      const { ok, value } = await callOver(sock, probe('rotate'), 'increment');
      if (!ok || value !== n) expect({ ok, value }).toEqual({ ok: true, value: n });
    }
    const { value } = await callOver(sock, probe('rotate'), 'sessionCounts');
    expect(sum(value.calls)).toBeGreaterThan(calls - 50);
    expect(value.opened).toBeGreaterThanOrEqual(3);
    expect(Math.max(...value.calls)).toBeLessThanOrEqual(MAX_SESSION_CALLS);
  });

  it('a session closes soon after its last call, so nothing keeps the gateway or the object in memory; the next call opens a new one', async () => {
    const sock = await connect('idle.t1');
    expect(await callOver(sock, probe('idle'), 'increment')).toMatchObject({ ok: true, value: 1 });
    // the call after it opens the session
    expect(await callOver(sock, probe('idle'), 'increment')).toMatchObject({ ok: true, value: 2 });
    const answered = Date.now();
    await waitFor(async () => (await sessionsOpen('idle.t1')) === 0, 'the idle session to close', 5_000);
    // the idle deadline, up to its slack late, and the state request's own time
    expect(Date.now() - answered).toBeLessThan(2 * SESSION_IDLE_MS + 1_500);
    // The object was told: the runtime disposed its end of every session but the one this call comes through.
    const counts = await waitFor(async () => {
      const { value } = await callOver(sock, probe('idle'), 'sessionCounts');
      return value.opened >= 2 && value.closed === value.opened - 1 && value;
    }, 'the object to see its sessions closed', 5_000);
    expect(counts.closed).toBeGreaterThanOrEqual(1);
  });

  it('a plain call and a cancellable one sent together run in the order sent: both go through the session the first opens', async () => {
    const sock = await connect('order.t1');
    for (let round = 0; round < 5; round++) {
      await waitFor(async () => (await sessionsOpen('order.t1')) === 0, 'no session open', 5_000);
      // on the stub: the next call to the object opens a session
      expect((await callOver(sock, probe('order'), 'arrive', [`warm${round}`])).ok).toBe(true);
      // One message, read in one turn. The first call runs a while, so the two after it are held and sent together
      // on the next timer turn: the plain one opens the session, the one with a cancel watch follows it.
      sock.send([
        { type: 'call', id: `w${round}`, to: probe('order-other'), method: 'pause', args: encodeValue([20]) },
        { type: 'call', id: `p${round}`, to: probe('order'), method: 'arrive', args: encodeValue([`plain${round}`]) },
        { type: 'call', id: `c${round}`, to: probe('order'), method: 'arrive', args: encodeValue([`cancellable${round}`]), cancellable: true },
      ]);
      for (const id of [`w${round}`, `p${round}`, `c${round}`]) expect((await callResponse(sock, id)).ok).toBe(true);
    }
    const { value } = await callOver(sock, probe('order'), 'arrivals');
    expect(value).toEqual([0, 1, 2, 3, 4].flatMap((round) => [`warm${round}`, `plain${round}`, `cancellable${round}`]));
    // each round's pair went through the session its first opened, unless a loaded machine missed the window
    expect((await callOver(sock, probe('order'), 'sessionCounts')).value.opened).toBeGreaterThanOrEqual(1);
  });

  it('calls from several clients at once, each through its gateway\'s session, stay apart behind the input gate: 40 read-modify-writes lose no update', async () => {
    const socks = await Promise.all(['a', 'b', 'c', 'd'].map((sub) => connect(`${sub}.gate`)));
    // a call on each gateway's stub just before, so the first of the ten opens a session and the rest follow it
    await Promise.all(socks.map((sock) => callOver(sock, probe('gate'), 'increment')));
    const ids = socks.map((sock) => Array.from({ length: 10 }, () => sendCall(sock, probe('gate'), 'bumpStored')));
    const values = await Promise.all(socks.flatMap((sock, i) => ids[i]!.map(async (id) => (await callResponse(sock, id)).value as number)));
    expect(values.sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, n) => n + 1));
    // they came through sessions (each gateway's, unless a loaded machine sent its ten past the window)
    const { value } = await callOver(socks[0]!, probe('gate'), 'sessionCounts');
    expect(value.opened).toBeGreaterThanOrEqual(1);
    expect(sum(value.calls)).toBeGreaterThanOrEqual(10);
  });

  it('a session broken by a reset of the object ends its call with an error; the next call opens a new session to the new object', async () => {
    const sock = await connect('reset.t1');
    expect(await callOver(sock, probe('reset'), 'increment')).toMatchObject({ ok: true, value: 1 });
    const reset = await callOver(sock, probe('reset'), 'reset');
    expect(reset.ok).toBe(false);
    // the new object, reached through a new session
    expect(await callOver(sock, probe('reset'), 'increment')).toMatchObject({ ok: true, value: 1 });
    expect((await callOver(sock, probe('reset'), 'sessionCounts')).value.opened).toBeGreaterThanOrEqual(1);
  });

  it('a node of the version before sessions gets each call as a direct call text, and each runs once', async () => {
    const sock = await connect('old.t1');
    for (let n = 1; n <= 3; n++) expect(await callOver(sock, { binding: 'TEXT_ONLY', instance: 'old' }, 'bump')).toMatchObject({ ok: true, value: n });
    expect(await callOver(sock, { binding: 'TEXT_ONLY', instance: 'old' }, 'runs')).toMatchObject({ ok: true, value: 3 });
    expect(await sessionsOpen('old.t1')).toBe(0);
  });
});
