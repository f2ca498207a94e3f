/**
 * meshgate/testing on the test fixture Worker: clients over a controlled
 * network, and each control checked against what the gateway and the client
 * then see.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ClientDisconnectedError } from '../src/client/index.js';
import { startTestMesh, TEST_SECRET, waitFor, type TestMesh } from '../src/testing/index.js';
import { entrySource } from '../src/testing/worker-bundle.js';

type Counter = {
  increment(by?: number): number;
  whoAmI(): string | undefined;
  callClient(instance: string, method: string, args: unknown[], options?: { ownChain?: boolean }): { ok: boolean; value?: unknown; isDisconnected?: boolean };
};

let mesh: TestMesh;

beforeAll(async () => {
  mesh = await startTestMesh({
    worker: new URL('./fixtures/worker.ts', import.meta.url),
    durableObjects: { GATEWAY: 'TestGateway', COUNTER: 'CounterDO' },
    services: { ECHO_WORKER: 'EchoWorker' },
    gracePeriodMs: 60_000, // long: only endGracePeriod() ends one here
  });
});
afterAll(() => mesh?.dispose());

it('mints tokens for any sub and connects clients that call nodes as that sub', async () => {
  const alice = await mesh.client({ sub: 'alice' });
  const bob = await mesh.client({ sub: 'bob@example.com' });
  expect(await alice.node<Counter>('COUNTER', 'who').whoAmI()).toBe('alice');
  expect(await bob.node<Counter>('COUNTER', 'who').whoAmI()).toBe('bob@example.com');
  expect(alice.instanceName).not.toBe(bob.instanceName);
  expect((await mesh.gatewayState(alice)).state).toBe('connected');
  expect(TEST_SECRET.length).toBeGreaterThanOrEqual(32);
  const expired = await mesh.token('alice', { expiresInSeconds: -60 });
  expect(JSON.parse(Buffer.from(expired.split('.')[1]!, 'base64url').toString()).exp).toBeLessThan(Date.now() / 1000);
});

it('drop: the socket dies without a close, the client reconnects inside the grace period', async () => {
  const subscribed: boolean[] = [];
  const client = await mesh.client({ sub: 'dropper', onConnected: (info) => subscribed.push(info.subscriptionRequired) });
  mesh.drop(client);
  await mesh.clientState(client, 'reconnecting');
  await mesh.clientState(client, 'connected');
  expect(subscribed).toEqual([true, false]);
  expect(mesh.socketsOpened(client)).toBe(2);
  expect(await client.node<Counter>('COUNTER', 'drop').increment()).toBe(1);
});

it('cutNetwork: the gateway holds a call to the client in its grace period and delivers it after restore', async () => {
  const client = await mesh.client<{ applyChange(change: unknown): unknown }>({ sub: 'cut', handlers: { applyChange: (change) => `got ${String(change)}` } });
  const cut = mesh.cutNetwork(client);
  const grace = await mesh.waitForGatewayState(client, 'gracePeriod');
  expect(grace).toMatchObject({ open: 0, waitingCalls: 0 });
  expect(grace.graceEndsAt).toBeGreaterThan(Date.now());
  const node = (await mesh.client({ sub: 'caller' })).node<Counter>('COUNTER', 'cut');
  const answer = node.callClient(client.instanceName!, 'applyChange', ['x'], { ownChain: true });
  await waitFor(async () => (await mesh.gatewayState(client)).waitingCalls === 1, 'the call to wait at the gateway');
  expect(client.state).toBe('reconnecting');
  cut.restore();
  expect(await answer).toMatchObject({ ok: true, value: 'got x' });
  expect(client.state).toBe('connected');
});

it('endGracePeriod: waiting calls fail with ClientDisconnectedError and the client must re-subscribe', async () => {
  const subscribed: boolean[] = [];
  const client = await mesh.client({ sub: 'ender', handlers: { applyChange: () => 'never' }, onConnected: (info) => subscribed.push(info.subscriptionRequired) });
  await expect(mesh.endGracePeriod(client)).rejects.toThrow(/connected/);
  const cut = mesh.cutNetwork(client);
  await mesh.waitForGatewayState(client, 'gracePeriod');
  const node = (await mesh.client({ sub: 'caller' })).node<Counter>('COUNTER', 'end');
  const answer = node.callClient(client.instanceName!, 'applyChange', ['x'], { ownChain: true });
  await waitFor(async () => (await mesh.gatewayState(client)).waitingCalls === 1, 'the call to wait at the gateway');
  expect(await mesh.endGracePeriod(client)).toMatchObject({ state: 'disconnected', waitingCalls: 0 });
  expect(await answer).toMatchObject({ ok: false, isDisconnected: true });
  cut.restore();
  await waitFor(() => subscribed.length === 2, 'the reconnect');
  expect(subscribed).toEqual([true, true]);
  expect(new ClientDisconnectedError('x').name).toBe('ClientDisconnectedError');
});

it('supersede: a second client with the same identity takes over, the first stops', async () => {
  const first = await mesh.client({ sub: 'twin' });
  const second = await mesh.supersede(first);
  expect(first.state).toBe('superseded');
  expect(second.state).toBe('connected');
  expect(second.instanceName).toBe(first.instanceName);
  expect(await mesh.gatewayState(first)).toMatchObject({ state: 'connected', open: 1 });
  expect(await second.node<Counter>('COUNTER', 'twin').increment()).toBe(1);
});

it('expireToken: the gateway closes with 4401, the client refreshes its token and reconnects', async () => {
  const states: string[] = [];
  const client = await mesh.client({ sub: 'expiring', onStateChange: (state) => states.push(state) });
  await mesh.expireToken(client);
  await waitFor(() => states.length === 4, 'the reconnect after 4401');
  expect(states).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
  expect(mesh.socketsOpened(client)).toBe(2);
});

it('the controls exist only in the generated test entry, and answer only with the run key', async () => {
  const source = entrySource('/app/worker.ts', ['Gateway'], { gracePeriodMs: 1 });
  expect(source).toMatch(/export const Gateway = testable\(app\.Gateway/);
  expect(() => entrySource('/app/worker.ts', ['Bad-Name'], {})).toThrow(/class name/);
  const ns = await mesh.mf.getDurableObjectNamespace('GATEWAY');
  const response = await ns.get(ns.idFromName('nobody.tab')).fetch('http://meshgate-testing.invalid/state');
  expect(response.status).toBe(426); // no key: the gateway's own answer to a non-upgrade
});

it('dispose ends every client', async () => {
  const other = await startTestMesh({
    worker: new URL('./fixtures/worker.ts', import.meta.url).pathname, durableObjects: { GATEWAY: 'TestGateway', COUNTER: 'CounterDO' },
    services: { ECHO_WORKER: 'EchoWorker' },
  });
  const client = await other.client();
  await other.dispose();
  expect(client.state).toBe('disconnected');
});
