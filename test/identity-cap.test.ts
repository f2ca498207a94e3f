/**
 * The cap on live identities per user, on real workerd: the edge asks the
 * user's IdentityLimiter before routing an upgrade; gateways release their
 * identity when the grace period ends; dead gateways are found at the cap.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MeshClient } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import { WS_CLOSE_TOO_MANY_CONNECTIONS } from '../src/protocol/close-codes.js';
import { TooManyConnectionsError } from '../src/protocol/errors.js';
import { closeFrame, RawSocket, useTestMesh, waitFor, withTestMesh } from './support/mesh.js';

const CAP = 3;
const GRACE_MS = 300;
const PENDING_MS = 200;
const suite = useTestMesh({
  graceMs: GRACE_MS,
  env: { MAX_IDENTITIES_PER_SUB: String(CAP), IDENTITY_PENDING_MS: String(PENDING_MS), IDENTITY_RECHECK_MS: String(PENDING_MS) },
});
const { sockets } = suite;

function open(instance: string, token: string): RawSocket {
  const socket = new RawSocket(suite.mesh.wsUrl(instance), token);
  sockets.push(socket);
  return socket;
}

/** 'connected' once the gateway sent its status, else the close code the upgrade was refused with. */
async function outcome(socket: RawSocket): Promise<'connected' | number> {
  return Promise.race([
    socket.ofType('connection_status', 10_000).then(() => 'connected' as const),
    closeFrame(socket, 10_000).then(({ code }) => code),
  ]);
}

async function openTabs(sub: string, tabs: string[]): Promise<RawSocket[]> {
  const token = await suite.mesh.token(sub);
  const opened: RawSocket[] = [];
  for (const tab of tabs) {
    const socket = open(`${sub}.${tab}`, token);
    expect(await outcome(socket)).toBe('connected');
    opened.push(socket);
  }
  return opened;
}

/** Waits until the user's limiter has forgotten `instance` (its gateway released it after the grace period). */
async function released(sub: string, instance: string): Promise<void> {
  await waitFor(async () => !(await suite.mesh.liveIdentities(sub)).includes(instance), `${instance} to be released`, 10_000);
}

describe('live identities per sub', () => {
  it('the tab past the cap is refused with 4429 and a reason that says what to do; another sub is unaffected', async () => {
    await openTabs('capa', ['t1', 't2', 't3']);
    const extra = open('capa.t4', await suite.mesh.token('capa'));
    const close = await closeFrame(extra);
    expect(close.code).toBe(WS_CLOSE_TOO_MANY_CONNECTIONS);
    expect(close.reason).toBe(`Too many open tabs or devices for this user (limit ${CAP}): close some, then retry`);
    expect(extra.frames).toEqual([]); // the gateway was never reached
    expect(await suite.mesh.state('capa.t4')).toMatchObject({ sockets: 0 });
    expect(await suite.mesh.liveIdentities('capa')).toEqual(['capa.t1', 'capa.t2', 'capa.t3']);

    await openTabs('capb', ['t1', 't2', 't3']);
    expect(await suite.mesh.liveIdentities('capb')).toHaveLength(CAP);
  });

  it('at the cap, superseding an open identity and reconnecting inside the grace period are admitted (they count once)', async () => {
    const [first] = await openTabs('capc', ['t1', 't2', 't3']);
    const token = await suite.mesh.token('capc');
    const again = open('capc.t1', token);
    expect((await again.ofType('connection_status')).subscriptionRequired).toBe(false);
    expect((await closeFrame(first!)).code).toBe(4409);

    again.ws.terminate();
    await waitFor(async () => (await suite.mesh.state('capc.t1')).alarm !== null, 'the grace period to start');
    const back = open('capc.t1', token);
    expect((await back.ofType('connection_status')).subscriptionRequired).toBe(false);
    expect(await suite.mesh.liveIdentities('capc')).toEqual(['capc.t1', 'capc.t2', 'capc.t3']);
  });

  it('once an identity\'s grace period ends, its gateway releases it and a new tab is admitted', async () => {
    const [, second] = await openTabs('capd', ['t1', 't2', 't3']);
    second!.ws.terminate();
    await released('capd', 'capd.t2');
    const token = await suite.mesh.token('capd');
    expect(await outcome(open('capd.t4', token))).toBe('connected');
    expect(await outcome(open('capd.t5', token))).toBe(WS_CLOSE_TOO_MANY_CONNECTIONS);
  });

  it('at the cap, gateways asked whether they are live stay counted while connected or in their grace period', async () => {
    // A grace period far longer than the pending window, so the limiter asks while it runs.
    const env = { MAX_IDENTITIES_PER_SUB: String(CAP), IDENTITY_PENDING_MS: String(PENDING_MS), IDENTITY_RECHECK_MS: String(PENDING_MS) };
    await withTestMesh({ graceMs: 10_000, env }, async (mesh) => {
      const token = await mesh.token('caph');
      const tabs = ['t1', 't2', 't3'].map((tab) => new RawSocket(mesh.wsUrl(`caph.${tab}`), token));
      sockets.push(...tabs);
      for (const tab of tabs) expect(await outcome(tab)).toBe('connected');
      tabs[0]!.ws.terminate();
      await waitFor(async () => (await mesh.state('caph.t1')).alarm !== null, 'the grace period to start');
      await new Promise((resolve) => setTimeout(resolve, PENDING_MS + 50)); // past the pending window (wall-clock), so the limiter asks
      const extra = new RawSocket(mesh.wsUrl('caph.t4'), token);
      sockets.push(extra);
      expect(await outcome(extra)).toBe(WS_CLOSE_TOO_MANY_CONNECTIONS);
      expect(await mesh.liveIdentities('caph')).toEqual(['caph.t1', 'caph.t2', 'caph.t3']);
    });
  });

  it('a slot whose release never came is not lost: at the cap, the limiter asks the gateways and drops the dead ones', async () => {
    // A banned user's upgrades pass the edge (counted) and are refused by the gateway's onBeforeAccept: never live, never released.
    const banned = await suite.mesh.token('cape', { banned: true });
    for (const tab of ['b1', 'b2', 'b3']) expect(await outcome(open(`cape.${tab}`, banned))).toBe(4403);
    expect(await suite.mesh.liveIdentities('cape')).toEqual(['cape.b1', 'cape.b2', 'cape.b3']);
    // Counted while an upgrade may still be on its way (the pending window), then asked and dropped.
    await new Promise((resolve) => setTimeout(resolve, PENDING_MS + 50)); // the window is wall-clock time; nothing to await
    const token = await suite.mesh.token('cape');
    expect(await outcome(open('cape.t1', token))).toBe('connected');
    expect(await suite.mesh.liveIdentities('cape')).toEqual(['cape.t1']);
  });

  it('a storm of concurrent upgrades with distinct tab ids admits exactly the cap', async () => {
    const token = await suite.mesh.token('capf');
    const storm = Array.from({ length: 24 }, (_, n) => open(`capf.s${n}`, token));
    const outcomes = await Promise.all(storm.map(outcome));
    expect(outcomes.filter((o) => o === 'connected')).toHaveLength(CAP);
    expect(outcomes.filter((o) => o === WS_CLOSE_TOO_MANY_CONNECTIONS)).toHaveLength(storm.length - CAP);
    const states = await Promise.all(storm.map((_, n) => suite.mesh.state(`capf.s${n}`)));
    expect(states.reduce((open, state) => open + state.open, 0)).toBe(CAP);
    expect(await suite.mesh.liveIdentities('capf')).toHaveLength(CAP);
  });

  it('without the IdentityLimiter binding, upgrades are not capped (a deployment made before it existed keeps working)', async () => {
    await withTestMesh({ identityLimiter: false, env: { MAX_IDENTITIES_PER_SUB: '1' } }, async (mesh) => {
      const token = await mesh.token('capi');
      const tabs = ['t1', 't2', 't3'].map((tab) => new RawSocket(mesh.wsUrl(`capi.${tab}`), token));
      sockets.push(...tabs);
      expect(await Promise.all(tabs.map(outcome))).toEqual(['connected', 'connected', 'connected']);
    });
  });

  it('MeshClient refused with 4429 reports TooManyConnectionsError once, keeps retrying, and connects when a slot frees', async () => {
    const [, , third] = await openTabs('capg', ['t1', 't2', 't3']);
    const errors: unknown[] = [];
    const client = new MeshClient({
      url: suite.mesh.url.origin, accessToken: await suite.mesh.token('capg'), instanceName: 'capg.client',
      WebSocket: WebSocket as unknown as SocketClass, reconnectMinDelayMs: 50, reconnectMaxDelayMs: 100,
      onError: (error) => void errors.push(error),
    });
    try {
      await waitFor(() => errors.length > 0, 'the refusal to be reported');
      expect(errors[0]).toBeInstanceOf(TooManyConnectionsError);
      expect((errors[0] as Error).message).toContain('close some, then retry');
      expect(client.state).toBe('reconnecting');
      third!.ws.terminate();
      await waitFor(() => client.state === 'connected', 'the client to connect once capg.t3 is gone', 10_000);
      expect(errors).toHaveLength(1); // one report for the whole run of refusals
    } finally {
      client.disconnect();
    }
  });
});
