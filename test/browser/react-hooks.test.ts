/**
 * meshgate/react in Chromium under StrictMode, against the test fixture
 * Worker on workerd (meshgate/testing): one client and one socket per tab
 * through double mounting and remounts, call state, handlers that are not
 * registered again on every render, and the connection state a user sees.
 */
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startTestMesh, waitFor, type TestMesh } from '../../src/testing/index.js';
import { launchChromium } from './support.js';
import { bundlePage, openReactPage, servePage, type PageServer, type ReactPage } from './react-page.js';

type Counter = { callClient(instance: string, method: string, args: unknown[], options?: { ownChain?: boolean }): { ok: boolean; value?: unknown } };
interface Seen { sockets: number; registrations: number; clients: number; renders: number }

let mesh: TestMesh;
let browser: Browser;
let pageServer: PageServer;
const contexts: BrowserContext[] = [];
const pages: ReactPage[] = [];

beforeAll(async () => {
  let script: string;
  [mesh, browser, script] = await Promise.all([
    startTestMesh({
      worker: new URL('../fixtures/worker.ts', import.meta.url), durableObjects: { GATEWAY: 'TestGateway', COUNTER: 'CounterDO' },
      services: { ECHO_WORKER: 'EchoWorker' },
    }),
    launchChromium(),
    bundlePage(new URL('./react-hooks-page.tsx', import.meta.url).pathname),
  ]);
  pageServer = await servePage(script);
});
afterEach(async () => {
  const errors = pages.splice(0).flatMap((p) => p.errors);
  await Promise.all(contexts.splice(0).map((c) => c.close()));
  expect(errors).toEqual([]);
});
afterAll(async () => {
  await browser?.close();
  await mesh?.dispose();
  await pageServer?.close();
});

async function open(sub: string, disposeDelayMs = 1000): Promise<ReactPage & { instance: string; seen(): Promise<Seen> }> {
  const context = await browser.newContext();
  contexts.push(context);
  const hash = new URLSearchParams({ url: mesh.url.origin, token: await mesh.token(sub), disposeDelayMs: String(disposeDelayMs) });
  const opened = await openReactPage(context, `${pageServer.origin}/#${hash}`);
  pages.push(opened);
  await opened.page.waitForSelector('#status[data-state="connected"]');
  const instance = (await opened.page.textContent('#status'))!;
  return { ...opened, instance, seen: () => opened.page.evaluate(() => (window as unknown as { hooks: { seen(): Seen } }).hooks.seen()) };
}

it('StrictMode mounts the provider twice: one client, one socket, counted in the page and at the gateway', async () => {
  const tab = await open('strict');
  expect(tab.instance).toMatch(/^strict\./);
  const seen = await tab.seen();
  expect(seen.sockets).toBe(1);
  expect(seen.clients).toBe(1);
  expect(seen.renders).toBeGreaterThanOrEqual(2); // StrictMode rendered twice
  expect(await mesh.gatewayState(tab.instance)).toMatchObject({ state: 'connected', sockets: 1, open: 1 });
  expect(await tab.page.getAttribute('#status', 'data-subscription-required')).toBe('true');
});

it('useCall shows the result and the typed error of the latest call', async () => {
  const { page } = await open('calls');
  await page.click('#add');
  await page.waitForSelector('#add-state[data-loading="false"]:text("2")');
  await page.click('#fail');
  await page.waitForSelector('#fail-state:text("RangeError")');
  expect(await page.getAttribute('#fail-state', 'data-loading')).toBe('false');
});

it('useIncoming: the mesh reaches the latest render\'s handler, and rendering registers nothing again', async () => {
  const tab = await open('incoming');
  const before = (await tab.seen()).registrations;
  for (let n = 1; n <= 5; n++) {
    await tab.page.click('#rerender');
    await tab.page.waitForSelector(`#renders:text("${n}")`);
  }
  expect((await tab.seen()).registrations).toBe(before);
  const caller = await mesh.client({ sub: 'caller' });
  const answer = await caller.node<Counter>('COUNTER', 'react-hooks').callClient(tab.instance, 'applyChange', ['x'], { ownChain: true });
  expect(answer).toEqual({ ok: true, value: 'render 5: x' });
});

it('a remount inside disposeDelayMs keeps the client and its socket; unmounting for good closes it', async () => {
  const tab = await open('remount', 300);
  await tab.page.click('#toggle');
  await tab.page.click('#toggle');
  await tab.page.waitForSelector('#status[data-state="connected"]');
  expect(await tab.seen()).toMatchObject({ sockets: 1, clients: 1 });
  expect(await mesh.gatewayState(tab.instance)).toMatchObject({ sockets: 1, open: 1 });
  await tab.page.click('#toggle');
  const after = await waitFor(async () => {
    const state = await mesh.gatewayState(tab.instance);
    return state.open === 0 && state;
  }, 'the socket to close after the dispose delay');
  expect(after.state).not.toBe('connected');
  expect((await tab.seen()).sockets).toBe(1);
});

it('connection state: superseded by another process, then login required when the token expires with no refresh', async () => {
  const tab = await open('states');
  await mesh.client({ sub: 'states', instanceName: tab.instance });
  await tab.page.waitForSelector('#status[data-superseded="true"][data-state="superseded"]');
  // A remount does not take the identity back (no reconnect war).
  await tab.page.click('#toggle');
  await tab.page.click('#toggle');
  expect(await tab.page.getAttribute('#status', 'data-state')).toBe('superseded');

  const other = await open('expiry');
  await mesh.expireToken(other.instance);
  await other.page.waitForSelector('#status[data-state="disconnected"]');
  expect(await other.page.getAttribute('#status', 'data-login-required')).toMatch(/token expired/);
});
