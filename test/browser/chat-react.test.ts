/**
 * The React chat page (examples/chat-react) in Chromium, React in
 * development mode with StrictMode on, against the chat Worker on workerd
 * through meshgate/testing: one socket per tab (counted in the page and at
 * the gateway), and the state it shows through a drop, a takeover by
 * another process, and a session that ended.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startTestMesh, type TestMesh } from '../../src/testing/index.js';
import { launchChromium, screenshot } from './support.js';
// @ts-expect-error plain ESM helper shared with scripts
import { buildPage } from '../../scripts/example-build.mjs';

const WAIT = { timeout: 10_000 };
let mesh: TestMesh;
let browser: Browser;
const contexts: BrowserContext[] = [];
const errors: string[] = [];

beforeAll(async () => {
  const define = (await buildPage({ react: true, development: true })) as Record<string, string>;
  [mesh, browser] = await Promise.all([
    startTestMesh({
      worker: new URL('../../examples/chat/worker.ts', import.meta.url),
      durableObjects: {
        GATEWAY: 'ChatGateway', ROOM: { className: 'ChatRoom', useSQLite: true }, IDENTITY_LIMITER: { className: 'IdentityLimiter', useSQLite: true },
      },
      define,
      gracePeriodMs: 10_000, // a drop reconnects after the client's own 0.5–1 s backoff: well inside
    }),
    launchChromium(),
  ]);
});
afterEach(async () => {
  await Promise.all(contexts.splice(0).map((c) => c.close()));
  expect(errors.splice(0)).toEqual([]);
});
afterAll(async () => {
  await browser?.close();
  await mesh?.dispose();
});

/** A page logged in as `name` in `room`, counting the sockets it opens. */
async function user(name: string, room: string): Promise<{ page: Page; instance: string; sockets(): Promise<number> }> {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (error) => errors.push(error.message));
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    (window as unknown as { socketsOpened: number }).socketsOpened = 0;
    window.WebSocket = class extends Native {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        (window as unknown as { socketsOpened: number }).socketsOpened++;
      }
    } as typeof WebSocket;
  });
  await page.goto(mesh.url.origin);
  await page.fill('#name-input', name);
  await page.fill('#room-input', room);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#state[data-state="connected"]', WAIT);
  await page.waitForSelector('#events li[data-kind="joined"]', WAIT);
  const instance = (await page.textContent('#instance'))!.trim();
  return { page, instance, sockets: () => page.evaluate(() => (window as unknown as { socketsOpened: number }).socketsOpened) };
}

it('StrictMode on: one socket per tab, counted in the page and at the gateway; messages flow', async () => {
  const ann = await user('ann', 'one');
  const ben = await user('ben', 'one');
  expect(await ann.sockets()).toBe(1);
  expect(await mesh.gatewayState(ann.instance)).toMatchObject({ state: 'connected', sockets: 1, open: 1 });
  expect(await mesh.gatewayState(ben.instance)).toMatchObject({ sockets: 1, open: 1 });
  await ann.page.fill('#message-input', 'hello ben');
  await ann.page.click('#send');
  await ben.page.locator('#messages li .text', { hasText: 'hello ben' }).waitFor(WAIT);
  await ann.page.waitForSelector('#send:not([disabled])', WAIT); // useCall's loading ended with the answer
  await ann.page.waitForFunction(() => document.querySelectorAll('#presence li').length === 2, undefined, WAIT);
  expect(await ann.page.locator('#events li[data-kind="joined"]').count()).toBe(1); // joined once, not once per mount
  await screenshot(ann.page, 'chat-react');
});

it('a drop shows "reconnecting", then the page is back inside the grace period on one new socket', async () => {
  const cy = await user('cy', 'two');
  await cy.page.click('#drop');
  await cy.page.waitForSelector('#events li[data-kind="connection-lost"]', WAIT);
  await cy.page.waitForSelector('#events li[data-kind="reconnected-in-grace"]', WAIT);
  await cy.page.waitForSelector('#state[data-state="connected"]', WAIT);
  expect(await cy.sockets()).toBe(2);
  expect(await mesh.gatewayState(cy.instance)).toMatchObject({ state: 'connected', open: 1 });
  expect(await cy.page.locator('#events li[data-kind="resubscribed"]').count()).toBe(0);
});

it('a takeover by another process shows "opened elsewhere"; "Use it here" takes the identity back', async () => {
  const di = await user('di', 'three');
  const usurper = await mesh.client({ sub: 'di', instanceName: di.instance });
  await di.page.waitForSelector('#state[data-state="superseded"]', WAIT);
  await di.page.waitForSelector('#superseded', WAIT);
  expect(await mesh.gatewayState(di.instance)).toMatchObject({ state: 'connected', open: 1 });
  await di.page.click('#take-over');
  await di.page.waitForSelector('#state[data-state="connected"]', WAIT);
  await mesh.clientState(usurper, 'superseded');
  expect(await di.page.locator('#superseded').count()).toBe(0);
  expect(await mesh.gatewayState(di.instance)).toMatchObject({ state: 'connected', open: 1 });
});

it('a session that ended shows "log in again"; once the login works again the page reconnects', async () => {
  const ed = await user('ed', 'four');
  await ed.page.route('**/auth/dev-token', (route) => route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ error: 'Session ended' }) }));
  await mesh.expireToken(ed.instance);
  await ed.page.waitForSelector('#login-required', WAIT);
  expect(await ed.page.getAttribute('#state', 'data-state')).toBe('disconnected');
  expect(await ed.page.textContent('#login-required')).toContain('Session ended');
  await ed.page.unroute('**/auth/dev-token');
  await ed.page.click('#log-in-again');
  await ed.page.waitForSelector('#state[data-state="connected"]', WAIT);
  expect(await ed.page.locator('#login-required').count()).toBe(0);
});
