/**
 * The chat example in real Chromium against real workerd: what a person sees
 * when two users talk, a tab is duplicated, an identity is opened twice, and
 * the network drops briefly or for longer than the grace period.
 */
import type { BrowserContext } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  copySessionStorage, eventCount, instanceName, login, messageTexts, openPage, screenshot, send, waitEvent, waitJoined, waitMessage, waitPresence, waitState, type ChatPage, useChatBrowser,
} from './support.js';
import { startTerminal, type Terminal } from '../support/terminal.js';

/** Short, so "past the grace period" takes seconds; "brief" outages below last well under it. */
const GRACE_MS = 3_000;

const suite = useChatBrowser({ graceMs: GRACE_MS });
const { contexts, pages } = suite;
const terminals: Terminal[] = [];
afterAll(() => {
  for (const t of terminals) t.kill();
});

async function newContext(): Promise<BrowserContext> {
  const context = await suite.browser.newContext({ viewport: { width: 1280, height: 760 } });
  contexts.push(context);
  return context;
}

async function open(context: BrowserContext, storage?: Record<string, string>): Promise<ChatPage> {
  const chat = await openPage(context, suite.server.url, storage);
  pages.push(chat);
  return chat;
}

/** A user in their own browser context (own sessionStorage, own BroadcastChannel scope), logged in to `room`. */
async function user(name: string, room: string): Promise<{ context: BrowserContext; chat: ChatPage }> {
  const context = await newContext();
  const chat = await open(context);
  await login(chat, name, room);
  return { context, chat };
}

describe('chat example in Chromium', () => {
  it('two users exchange messages and see each other, the counter and their connection', async () => {
    const alice = await user('alice', 'two-users');
    const bob = await user('bob', 'two-users');
    await waitPresence(alice.chat, ['alice', 'bob']);
    await waitPresence(bob.chat, ['alice', 'bob']);

    await send(alice.chat, 'Hi Bob, can you read me?');
    await waitMessage(bob.chat, 'Hi Bob, can you read me?');
    await send(bob.chat, 'Loud and clear, Alice.');
    await waitMessage(alice.chat, 'Loud and clear, Alice.');
    expect(await messageTexts(alice.chat)).toEqual(['Hi Bob, can you read me?', 'Loud and clear, Alice.']);
    expect(await messageTexts(bob.chat)).toEqual(['Hi Bob, can you read me?', 'Loud and clear, Alice.']);

    await alice.chat.page.click('#increment');
    await bob.chat.page.waitForFunction(() => document.querySelector('#counter-value')?.textContent === '1', undefined, { timeout: 10_000 });
    await alice.chat.page.waitForSelector('#delivery:has-text("delivered to 2 of 2")', { timeout: 10_000 });

    expect(await alice.chat.page.textContent('#state')).toBe('connected');
    expect(await instanceName(alice.chat)).toMatch(/^alice\.[A-Za-z0-9_-]+$/);
    expect(await instanceName(bob.chat)).toMatch(/^bob\./);
    expect(await eventCount(alice.chat, 'connected')).toBe(1);
    expect(await eventCount(alice.chat, 'joined')).toBe(1);
    await screenshot(alice.chat.page, 'chat-two-users');
  });

  it('a browser and the Node client (npm run example:node) talk in one room', async () => {
    const { chat } = await user('lena', 'mixed');
    const max = startTerminal(suite.server.url, 'max', 'mixed');
    terminals.push(max);
    await max.wait(/Joined room "mixed"/);
    await waitPresence(chat, ['lena', 'max']);
    max.type('typed in a terminal');
    await waitMessage(chat, 'typed in a terminal');
    await send(chat, 'clicked in a browser');
    await max.wait(/lena: clicked in a browser/);
    max.type('/quit');
    expect(await max.exited()).toBe(0);
    await waitPresence(chat, ['lena']);
  });

  it('a duplicated tab (same sessionStorage) gets its own instance name and supersedes nobody', async () => {
    const { context, chat: first } = await user('carol', 'dup-tab');
    const firstName = await instanceName(first);
    // Same context: the copy asks over BroadcastChannel, learns the id is taken, and picks a new one.
    const dup = await open(context, await copySessionStorage(first));
    await waitJoined(dup);
    const dupName = await instanceName(dup);
    expect(dupName).toMatch(/^carol\./);
    expect(dupName).not.toBe(firstName);

    await waitPresence(first, ['carol']);
    await first.page.waitForSelector('#presence li:has-text("carol (2 connections)")', { timeout: 10_000 });
    await send(dup, 'sent from the duplicate');
    await waitMessage(first, 'sent from the duplicate');
    await waitMessage(dup, 'sent from the duplicate');
    for (const chat of [first, dup]) {
      expect(await chat.page.textContent('#state')).toBe('connected');
      expect(await eventCount(chat, 'superseded')).toBe(0);
    }
  });

  it('the same instance name opened in a second page: the first shows "superseded" and stays stopped, the second works', async () => {
    const { chat: first } = await user('dave', 'takeover');
    const name = await instanceName(first);
    // Another context shares no BroadcastChannel: the copied tab id is used as is — the same identity.
    const second = await open(await newContext(), await copySessionStorage(first));
    await waitState(second, 'connected');
    expect(await instanceName(second)).toBe(name);

    await waitState(first, 'superseded');
    await waitEvent(first, 'superseded');
    expect(await first.page.isVisible('#superseded-banner')).toBe(true);
    await screenshot(first.page, 'chat-superseded');

    // No reconnect war: watch both pages for a while (nothing to await: this is about what does not happen).
    const seen = new Set<string>();
    const until = Date.now() + 4_000;
    while (Date.now() < until) {
      seen.add(`${await first.page.getAttribute('#state', 'data-state')}/${await second.page.getAttribute('#state', 'data-state')}`);
      await first.page.waitForTimeout(100);
    }
    expect([...seen]).toEqual(['superseded/connected']);
    expect(await eventCount(second, 'superseded')).toBe(0);
    expect(await eventCount(first, 'superseded')).toBe(1);

    await send(second, 'the second page still works');
    await waitMessage(second, 'the second page still works');
    expect(await messageTexts(first)).not.toContain('the second page still works');
  });

  it('a reload inside the grace period keeps the tab id and the subscription: the room reloads without a rejoin', async () => {
    const { chat } = await user('ivan', 'reload');
    const kim = await user('kim', 'reload');
    const name = await instanceName(chat);
    await send(chat, 'before the reload');
    await waitMessage(chat, 'before the reload');

    await chat.page.reload();
    await waitJoined(chat);
    expect(await instanceName(chat)).toBe(name);
    expect(await chat.page.textContent('#events li[data-kind="joined"]')).toContain('still subscribed');
    expect(await messageTexts(chat)).toEqual(['before the reload']); // the history, from snapshot()
    await send(kim.chat, 'after the reload');
    await waitMessage(chat, 'after the reload'); // pushed: the subscription survived
    await waitPresence(kim.chat, ['ivan', 'kim']);
  });

  it('Leave then Join another room at once: the reused tab id is remembered by its gateway, yet the new room is joined', async () => {
    const { chat } = await user('nina', 'first-room');
    const oscar = await user('oscar', 'second-room');
    const name = await instanceName(chat);
    await chat.page.click('#leave');
    await chat.page.waitForSelector('#login-form', { state: 'visible', timeout: 10_000 });
    await login(chat, 'nina', 'second-room'); // well inside the grace period of the socket just closed
    expect(await instanceName(chat)).toBe(name);
    await waitPresence(oscar.chat, ['nina', 'oscar']);
    await send(oscar.chat, 'welcome to the second room');
    await waitMessage(chat, 'welcome to the second room');
  });

  it('offline briefly, back inside the grace period: no resubscribe, and messages sent meanwhile arrive', async () => {
    const erin = await user('erin', 'brief');
    const frank = await user('frank', 'brief');
    await waitPresence(erin.chat, ['erin', 'frank']);

    await erin.context.setOffline(true);
    await erin.chat.page.click('#drop'); // an open WebSocket survives emulated offline; drop it as the network would
    await waitState(erin.chat, 'reconnecting');
    await send(frank.chat, 'sent while erin was offline'); // the gateway holds it for the grace period
    await erin.context.setOffline(false); // fires `online`: the client reconnects at once

    await waitEvent(erin.chat, 'reconnected-in-grace');
    await waitState(erin.chat, 'connected');
    await waitMessage(erin.chat, 'sent while erin was offline');
    await send(frank.chat, 'and one after');
    await waitMessage(erin.chat, 'and one after');
    expect(await eventCount(erin.chat, 'resubscribed')).toBe(0);
    expect(await eventCount(erin.chat, 'joined')).toBe(1);
    await frank.chat.page.waitForSelector('#delivery:has-text("delivered to 2 of 2")', { timeout: 10_000 });
  });

  it('offline past the grace period: the room drops the page, which resubscribes when back and gets messages again', async () => {
    const gina = await user('gina', 'long');
    const hank = await user('hank', 'long');
    await waitPresence(hank.chat, ['gina', 'hank']);
    const ginaName = await instanceName(gina.chat);

    await gina.context.setOffline(true);
    await gina.chat.page.click('#drop');
    await waitState(gina.chat, 'reconnecting');
    // The room does not wait for gina: her gateway holds the message for her grace period.
    await send(hank.chat, 'sent while gina was gone');
    await hank.chat.page.waitForSelector('#delivery:has-text("delivered to 2 of 2")', { timeout: 10_000 });
    // Once it is over, her gateway tells the room, which drops her from presence at once.
    await waitPresence(hank.chat, ['hank']);

    await gina.context.setOffline(false);
    await waitEvent(gina.chat, 'resubscribed');
    await waitState(gina.chat, 'connected');
    expect(await instanceName(gina.chat)).toBe(ginaName);
    await waitPresence(hank.chat, ['gina', 'hank']);
    await waitMessage(gina.chat, 'sent while gina was gone'); // from the room's history, on rejoin
    await send(hank.chat, 'welcome back');
    await waitMessage(gina.chat, 'welcome back');
    expect(await eventCount(gina.chat, 'reconnected-in-grace')).toBe(0);
    expect(await eventCount(gina.chat, 'resubscribed')).toBe(1);
    await screenshot(gina.chat.page, 'chat-resubscribed');
  });
});
