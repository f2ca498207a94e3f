/**
 * meshgate/react in Chromium under StrictMode, against the test fixture
 * Worker on workerd (meshgate/testing): one client and one socket per tab
 * through double mounting and remounts, call state, handlers that are not
 * registered again on every render, and the connection state a user sees.
 */
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startTestMesh, waitFor, type TestMesh } from '../../src/testing/index.js';
import type { MeshClient } from '../../src/client/index.js';
import { launchChromium } from './support.js';
import { bundlePage, openReactPage, servePage, type PageServer, type ReactPage } from './react-page.js';

type Counter = { callClient(instance: string, method: string, args: unknown[], options?: { ownChain?: boolean }): { ok: boolean; value?: unknown } };
interface Seen { sockets: number; registrations: number; clients: number; renders: number; subscribes: number; streamStarts: number; handlers: string[]; openStreams: number }
type TopicRoom = { publish(set: 'kept', topic: string, data: unknown): unknown; enter(topic: string, since: unknown, meta: unknown): unknown };
type Runs = { starts: number; running: number; finals: number; aborted: number };
type Ticker = { runs(key: string): Runs | undefined };

let mesh: TestMesh;
let browser: Browser;
let pageServer: PageServer;
const contexts: BrowserContext[] = [];
const pages: ReactPage[] = [];

beforeAll(async () => {
  let script: string;
  [mesh, browser, script] = await Promise.all([
    startTestMesh({
      worker: new URL('../fixtures/react-worker.ts', import.meta.url),
      durableObjects: { GATEWAY: 'TestGateway', COUNTER: 'CounterDO', TOPIC: { className: 'TopicDO', useSQLite: true }, TICKER: 'TickerDO' },
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

async function open(sub: string, disposeDelayMs = 1000, extra: Record<string, string> = {}): Promise<ReactPage & { instance: string; context: BrowserContext; seen(): Promise<Seen> }> {
  const context = await browser.newContext();
  contexts.push(context);
  const hash = new URLSearchParams({ url: mesh.url.origin, token: await mesh.token(sub), disposeDelayMs: String(disposeDelayMs), ...extra });
  const opened = await openReactPage(context, `${pageServer.origin}/#${hash}`);
  pages.push(opened);
  await opened.page.waitForSelector('#status[data-state="connected"]');
  const instance = (await opened.page.textContent('#status'))!;
  return { ...opened, instance, context, seen: () => opened.page.evaluate(() => (window as unknown as { hooks: { seen(): Seen } }).hooks.seen()) };
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

it('useTopic under StrictMode: one subscribe, the latest `keep` publications, the members; recovery after the grace period; unmount unregisters', async () => {
  const tab = await open('topic', 1000, { room: 'react-topic' });
  await tab.page.waitForSelector('#members li[data-sub="topic"]');
  await tab.page.waitForSelector('#recovery[data-subscribing="false"][data-recovered="false"]', { state: 'attached' }); // new here: nothing to recover
  for (let n = 1; n <= 3; n++) {
    await tab.page.click('#topic-rerender');
    await tab.page.waitForSelector(`#topic-renders:text("${n}")`);
  }
  expect((await tab.seen()).subscribes).toBe(1);
  expect((await tab.seen()).handlers).toEqual(['applyChange', 'meshgatePresence', 'meshgatePublication']);

  const other = await mesh.client({ sub: 'publisher' });
  const room = other.node<TopicRoom>('TOPIC', 'react-topic');
  await room.enter('t', undefined, null);
  await tab.page.waitForSelector('#members li[data-sub="publisher"]');
  for (const text of ['p1', 'p2', 'p3', 'p4']) await room.publish('kept', 't', text);
  await tab.page.waitForSelector('#publications li:text("p4")');
  expect(await tab.page.locator('#publications li').allTextContents()).toEqual(['p2', 'p3', 'p4']); // keep: 3

  // Away past the grace period: the gateway forgets the tab, and the next connection subscribes from p4.
  await tab.context.setOffline(true);
  await tab.page.evaluate(() => (window as unknown as { hooks: { drop(): void } }).hooks.drop());
  await mesh.waitForGatewayState(tab.instance, 'gracePeriod');
  await mesh.endGracePeriod(tab.instance);
  await room.publish('kept', 't', 'p5');
  await tab.context.setOffline(false);
  await tab.page.waitForSelector('#publications li[data-recovered="true"]:text("p5")');
  await tab.page.waitForSelector('#recovery[data-recovered="true"][data-missed="1"]', { state: 'attached' });
  expect(await tab.page.getAttribute('#status', 'data-subscription-required')).toBe('true');
  expect((await tab.seen()).subscribes).toBe(2);
  expect(await tab.page.locator('#publications li').allTextContents()).toEqual(['p3', 'p4', 'p5']);

  // Another room for the same topic name, keyed: the new panel subscribes there, in the same commit that unmounted the old one.
  await tab.page.click('#topic-switch');
  await tab.page.waitForSelector('#recovery[data-subscribing="false"][data-recovered="false"]', { state: 'attached' });
  expect((await tab.seen()).subscribes).toBe(3);
  await other.node<TopicRoom>('TOPIC', 'react-topic-b').publish('kept', 't', 'q1');
  await tab.page.waitForSelector('#publications li:text("q1")');
  expect(await tab.page.locator('#publications li').allTextContents()).toEqual(['q1']);

  await tab.page.click('#topic-toggle');
  await waitFor(async () => (await tab.seen()).handlers.join() === 'applyChange', 'the topic handlers to be unregistered');
  expect((await tab.seen()).subscribes).toBe(3);
});

it('useTopic: a subscribe that failed shows its error and is tried again at the next connection, even one inside the grace period', async () => {
  const tab = await open('topic-retry', 1000, { room: 'react-topic-retry', failFirst: '1' });
  await tab.page.waitForSelector('#recovery[data-error="the first join is refused"][data-subscribing="false"]', { state: 'attached' });
  expect(await tab.page.locator('#members li').count()).toBe(0);
  await tab.page.evaluate(() => (window as unknown as { hooks: { drop(): void } }).hooks.drop());
  await tab.page.waitForSelector('#members li[data-sub="topic-retry"]');
  await tab.page.waitForSelector('#recovery[data-error=""][data-recovered="false"]', { state: 'attached' });
  expect(await tab.page.getAttribute('#status', 'data-subscription-required')).toBe('false'); // back inside the grace period
  expect((await tab.seen()).subscribes).toBe(2);
});

let reader: Promise<MeshClient> | undefined;
async function runs(key: string): Promise<Runs | undefined> {
  reader ??= mesh.client({ sub: 'runs-reader' });
  return (await reader).node<Ticker>('TICKER', 'react').runs(key);
}

async function waitRuns(key: string, what: string, ok: (r: Runs) => boolean): Promise<Runs> {
  return waitFor(async () => {
    const r = await runs(key);
    return r !== undefined && ok(r) && r;
  }, what);
}

it('useStream under StrictMode starts one stream; new deps, stop() and unmount each abort it at the node', async () => {
  const tab = await open('streamer', 1000, { stream: 's1' });
  await tab.page.waitForFunction(() => Number(document.querySelector('#stream')?.getAttribute('data-count')) >= 3);
  expect(await runs('s1')).toEqual({ starts: 1, running: 1, finals: 0, aborted: 0 }); // the double effect started one producer
  expect(await tab.seen()).toMatchObject({ openStreams: 1, streamStarts: 1 }); // nor made a second call that was cancelled
  expect((await tab.page.textContent('#stream-chunks'))!.split(',').length).toBeLessThanOrEqual(5); // keep: 5

  await tab.page.click('#stream-next'); // deps change
  await waitRuns('s1', 'the first stream to end', (r) => r.running === 0);
  expect(await runs('s1')).toEqual({ starts: 1, running: 0, finals: 1, aborted: 1 });
  await tab.page.waitForSelector('#stream[data-key="s1+"][data-running="true"]');
  await waitRuns('s1+', 'the second stream to start', (r) => r.starts === 1);
  expect((await tab.seen()).openStreams).toBe(1);

  await tab.page.click('#stream-stop');
  await tab.page.waitForSelector('#stream[data-stopped="true"][data-running="false"][data-error=""]');
  expect(await waitRuns('s1+', 'stop() to abort the stream', (r) => r.running === 0)).toEqual({ starts: 1, running: 0, finals: 1, aborted: 1 });

  await tab.page.click('#stream-next');
  await waitRuns('s1++', 'the third stream to start', (r) => r.starts === 1);
  await tab.page.click('#stream-toggle'); // unmount
  expect(await waitRuns('s1++', 'unmount to abort the stream', (r) => r.running === 0)).toEqual({ starts: 1, running: 0, finals: 1, aborted: 1 });
  await waitFor(async () => (await tab.seen()).openStreams === 0, 'the client to hold no stream');
});

it('useStream: a stream the producer ends is done, with its chunks, and is not started again', async () => {
  const tab = await open('finite', 1000, { stream: 'f1', n: '3' });
  await tab.page.waitForSelector('#stream[data-done="true"][data-running="false"]');
  expect(await tab.page.textContent('#stream-chunks')).toBe('0,1,2');
  expect(await tab.page.textContent('#stream-latest')).toBe('2');
  expect(await runs('f1')).toEqual({ starts: 1, running: 0, finals: 1, aborted: 0 });
});
