/**
 * The chat example as a person sees it, in real Chromium against real
 * workerd: what the page says during an outage, a takeover done by hand
 * through the same-identity link, the buttons of a stopped tab, long words,
 * and the counter after a resubscribe. Each test saves a screenshot.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import {
  eventCount, instanceName, login, messageTexts, openPage, screenshot, send, startChatServer, waitEvent, waitMessage, waitPresence, waitState, type ChatPage, useChatBrowser,
} from './support.js';

const GRACE_MS = 3_000;
const WAIT = { timeout: 10_000 };

const suite = useChatBrowser({ graceMs: GRACE_MS });
const { contexts, pages } = suite;

async function user(name: string, room: string, url = suite.server.url): Promise<{ context: BrowserContext; chat: ChatPage }> {
  const context = await suite.browser.newContext({ viewport: { width: 1280, height: 760 } });
  contexts.push(context);
  const chat = await openPage(context, url);
  pages.push(chat);
  await login(chat, name, room);
  return { context, chat };
}

/** A page the app opened itself (the same-identity link), with its errors collected like openPage's. */
function adopt(page: Page): ChatPage {
  const chat: ChatPage = { page, errors: [] };
  page.on('pageerror', (error) => chat.errors.push(error.message));
  pages.push(chat);
  return chat;
}

/** Elements (by selector) whose content is wider than their box, and whether the page itself scrolls sideways. */
async function overflowing(page: Page, selectors: string[]): Promise<string[]> {
  return page.evaluate((list) => {
    const wide = list.filter((s) => Array.from(document.querySelectorAll<HTMLElement>(s)).some((e) => e.scrollWidth > e.clientWidth + 1));
    if (document.documentElement.scrollWidth > window.innerWidth + 1) wide.push('the page');
    return wide;
  }, selectors);
}

async function eventTexts(chat: ChatPage): Promise<string[]> {
  return chat.page.locator('#events li').allTextContents();
}

async function disabled(chat: ChatPage, id: string): Promise<boolean> {
  return chat.page.locator(`#${id}`).isDisabled();
}

describe('chat example as a person sees it', () => {
  it('Go offline: the page says it is still trying, in words; the library\'s message goes to the console; nothing overflows', async () => {
    const { chat } = await user('olga', 'outage');
    const warnings: string[] = [];
    chat.page.on('console', (message) => {
      if (message.type() === 'warning') warnings.push(message.text());
    });
    await chat.page.click('#offline');
    expect(await disabled(chat, 'offline')).toBe(true);
    // The third failed attempt is reported: the backoff waits at most 1 + 2 + 4 s, inside the button's 8 s.
    await chat.page.waitForSelector('#events li[data-kind="still-retrying"]', { timeout: 20_000 });
    await expect.poll(() => warnings.join('\n'), WAIT).toMatch(/connection attempts to ws:\/\/.* failed/);
    const texts = (await eventTexts(chat)).join('\n');
    expect(texts).toMatch(/Cannot reach the server yet — still trying/);
    expect(texts).not.toMatch(/gateway binding|4403|ws:\/\/|meshgate:/);
    expect(await overflowing(chat.page, ['#events', '#events li', 'header', 'main > *'])).toEqual([]);
    await screenshot(chat.page, 'chat-ux-offline-still-trying');

    await chat.page.waitForSelector('#events li[data-kind="online"]', { timeout: 20_000 });
    await waitState(chat, 'connected');
    expect(await disabled(chat, 'offline')).toBe(false);
  });

  it('the same-identity link opens this tab\'s identity in a new tab, which takes over; "Take over here" takes it back, reported as a takeover', async () => {
    const { context, chat: first } = await user('paul', 'by-hand');
    const name = await instanceName(first);
    const link = first.page.locator('#same-identity');
    expect(await link.isVisible()).toBe(true);

    const [popup] = await Promise.all([context.waitForEvent('page'), link.click()]);
    const second = adopt(popup);
    await waitState(second, 'connected');
    expect(await instanceName(second)).toBe(name);
    expect(second.page.url()).not.toContain('#'); // a reload of that tab opens its own identity, not this one again
    await waitState(first, 'superseded');
    await waitEvent(first, 'superseded');

    // A stopped tab has no connection to drop or take offline, and cannot send.
    for (const id of ['drop', 'offline', 'send', 'increment', 'message-input']) expect(await disabled(first, id), id).toBe(true);
    expect(await link.isVisible()).toBe(false);
    await screenshot(first.page, 'chat-ux-superseded-by-link');

    await send(second, 'sent while the first tab was superseded');
    await waitMessage(second, 'sent while the first tab was superseded');

    await first.page.click('#takeover');
    await waitEvent(first, 'took-over');
    await waitState(first, 'connected');
    await waitState(second, 'superseded');
    expect(await eventCount(first, 'connection-lost')).toBe(0);
    expect(await eventCount(first, 'reconnected-in-grace')).toBe(0);
    expect(await eventCount(first, 'took-over')).toBe(1);
    for (const id of ['drop', 'offline', 'send']) expect(await disabled(first, id), id).toBe(false);
    // What the room pushed while this tab was stopped is loaded again.
    await waitMessage(first, 'sent while the first tab was superseded');
    await send(first, 'back in the first tab');
    await waitMessage(first, 'back in the first tab');
    await screenshot(first.page, 'chat-ux-took-over');
  });

  it('long unbroken text wraps inside the message list and the presence list', async () => {
    const { chat } = await user('quentin_with_a_long_name_012345', 'long-words');
    const word = 'x'.repeat(480);
    const url = `https://example.com/${'a1b2c3'.repeat(70)}`;
    await send(chat, word);
    await waitMessage(chat, word);
    await send(chat, url);
    await waitMessage(chat, url);
    expect(await messageTexts(chat)).toEqual([word, url]);
    expect(await overflowing(chat.page, ['#messages', '#messages li', '#presence', 'header', 'main > *'])).toEqual([]);
    await screenshot(chat.page, 'chat-ux-long-words');
    await chat.page.setViewportSize({ width: 390, height: 844 }); // a phone
    expect(await overflowing(chat.page, ['#messages', '#messages li', '#presence', '#events', 'header', 'main > *'])).toEqual([]);
    await screenshot(chat.page, 'chat-ux-long-words-phone');
  });

  it('"last +1 by" stays after a resubscribe past the grace period', async () => {
    const { chat } = await user('rita', 'counter-by');
    const sam = await user('sam', 'counter-by');
    await waitPresence(sam.chat, ['rita', 'sam']);
    await chat.page.click('#increment');
    await chat.page.waitForSelector('#counter-by:has-text("last +1 by rita")', WAIT);

    await chat.page.click('#offline'); // 8 s, past the grace period: her gateway forgets her, she resubscribes
    await waitState(chat, 'reconnecting');
    await chat.page.waitForSelector('#events li[data-kind="resubscribed"]', { timeout: 20_000 });
    await waitPresence(chat, ['rita', 'sam']);
    expect(await chat.page.textContent('#counter-value')).toBe('1');
    expect(await chat.page.textContent('#counter-by')).toBe('last +1 by rita');
    await screenshot(chat.page, 'chat-ux-counter-after-resubscribe');
  });

  it('a server restart keeps the room: open pages reconnect with their tokens, resubscribe and still show messages and counter', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'meshgate-restart-'));
    let kept = await startChatServer({ graceMs: GRACE_MS, dataDir });
    try {
      const port = Number(new URL(kept.url).port);
      const { chat } = await user('tom', 'restart', kept.url);
      const uma = await user('uma', 'restart', kept.url);
      await waitPresence(chat, ['tom', 'uma']);
      await send(chat, 'written before the restart');
      await chat.page.waitForSelector('#delivery:has-text("delivered to 2 of 2")', WAIT);

      await chat.page.click('#increment');
      await chat.page.waitForSelector('#counter-by:has-text("last +1 by tom")', WAIT);
      await uma.chat.page.click('#offline'); // uma is away for 8 s across the restart

      await kept.dispose();
      await waitState(chat, 'reconnecting');
      kept = await startChatServer({ graceMs: GRACE_MS, dataDir, port });
      await chat.page.waitForSelector('#events li[data-kind="resubscribed"]', { timeout: 30_000 });
      await waitState(chat, 'connected');
      expect(await eventCount(chat, 'login-required')).toBe(0);
      expect(await messageTexts(chat)).toEqual(['written before the restart']);
      expect(await chat.page.textContent('#counter-value')).toBe('1');
      expect(await chat.page.textContent('#counter-by')).toBe('last +1 by tom');
      await screenshot(chat.page, 'chat-ux-after-restart');

      await uma.chat.page.waitForSelector('#events li[data-kind="resubscribed"]', { timeout: 20_000 }); // back after her 8 s
      expect(await uma.chat.page.textContent('#counter-value')).toBe('1');

      // A page opened after the restart gets the room from the server's storage.
      const vera = await user('vera', 'restart', kept.url);
      expect(await messageTexts(vera.chat)).toEqual(['written before the restart']);
      expect(await vera.chat.page.textContent('#counter-value')).toBe('1');
      await waitPresence(vera.chat, ['tom', 'uma', 'vera']);
      await send(vera.chat, 'after the restart');
      await waitMessage(chat, 'after the restart');
      await waitMessage(uma.chat, 'after the restart');
    } finally {
      await kept.dispose();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  it('a restart with a new secret (npm start -- --fresh) sends the page back to the form with a sentence, name filled in', async () => {
    const [before, after] = await Promise.all([mkdtemp(join(tmpdir(), 'meshgate-before-')), mkdtemp(join(tmpdir(), 'meshgate-after-'))]);
    let fresh = await startChatServer({ graceMs: GRACE_MS, dataDir: before });
    try {
      const port = Number(new URL(fresh.url).port);
      const { chat } = await user('wanda', 'fresh', fresh.url);
      await fresh.dispose();
      await waitState(chat, 'reconnecting');
      fresh = await startChatServer({ graceMs: GRACE_MS, dataDir: after, port }); // another folder: another secret
      await chat.page.waitForSelector('#login-form', { state: 'visible', timeout: 30_000 });
      expect(await chat.page.textContent('#login-error')).toBe('Please join again. The server no longer accepts this login (was it restarted with a new secret?)');
      expect(await chat.page.inputValue('#name-input')).toBe('wanda');
      await screenshot(chat.page, 'chat-ux-login-again');
      await login(chat, 'wanda', 'fresh');
    } finally {
      await fresh.dispose();
      await Promise.all([before, after].map((dir) => rm(dir, { recursive: true, force: true })));
    }
  }, 90_000);
});
