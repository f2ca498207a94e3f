/**
 * The chat example's presence metadata and recovery in real Chromium: who is
 * typing shows in the other tab, and a tab back after its grace period gets
 * the messages it missed, marked as such.
 */
import type { BrowserContext } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { login, messageTexts, openPage, screenshot, send, waitEvent, waitMessage, waitPresence, waitState, type ChatPage, useChatBrowser } from './support.js';

const GRACE_MS = 2_000;
const WAIT = { timeout: 10_000 };

const suite = useChatBrowser({ graceMs: GRACE_MS });
const { contexts, pages } = suite;

async function user(name: string, room: string): Promise<{ context: BrowserContext; chat: ChatPage }> {
  const context = await suite.browser.newContext({ viewport: { width: 1280, height: 760 } });
  contexts.push(context);
  const chat = await openPage(context, suite.server.url);
  pages.push(chat);
  await login(chat, name, room);
  return { context, chat };
}

describe('chat example: presence metadata and recovery', () => {
  it('the other tab sees who is typing, and stops seeing it once the message is sent', async () => {
    const ann = await user('ann', 'typing');
    const bob = await user('bob', 'typing');
    await waitPresence(bob.chat, ['ann', 'bob']);

    await ann.chat.page.type('#message-input', 'hel');
    await bob.chat.page.waitForSelector('#presence li[data-sub="ann"] .typing', WAIT);
    expect(await bob.chat.page.textContent('#presence li[data-sub="ann"] .typing')).toBe('typing…');
    expect(await ann.chat.page.locator('#presence li[data-sub="bob"] .typing').count()).toBe(0);
    await screenshot(bob.chat.page, 'chat-typing');

    await ann.chat.page.type('#message-input', 'lo');
    await ann.chat.page.click('#send');
    await waitMessage(bob.chat, 'hello');
    await bob.chat.page.waitForSelector('#presence li[data-sub="ann"] .typing', { ...WAIT, state: 'detached' });
  });

  it('a tab back after its grace period sees the messages it missed, marked as missed, and the others not', async () => {
    const gina = await user('gina', 'recovery');
    const hank = await user('hank', 'recovery');
    await waitPresence(hank.chat, ['gina', 'hank']);
    await send(hank.chat, 'before gina left');
    await waitMessage(gina.chat, 'before gina left');

    await gina.context.setOffline(true);
    await gina.chat.page.click('#drop');
    await waitState(gina.chat, 'reconnecting');
    await send(hank.chat, 'missed one');
    await send(hank.chat, 'missed two');
    // Her grace period ends: her gateway tells the room, and hank sees her leave without any fan-out.
    await waitPresence(hank.chat, ['hank']);

    await gina.context.setOffline(false);
    await waitEvent(gina.chat, 'resubscribed');
    await waitMessage(gina.chat, 'missed two');
    const marked = await gina.chat.page.locator('#messages li.missed .text').allTextContents();
    expect(marked).toEqual(['missed one', 'missed two']);
    expect(await gina.chat.page.locator('#messages li.missed .missed-tag').first().textContent()).toBe('missed while away');
    expect(await messageTexts(gina.chat)).toEqual(['before gina left', 'missed one', 'missed two']); // each once, in order
    expect(await gina.chat.page.textContent('#events li[data-kind="resubscribed"]')).toMatch(/2 missed message\(s\) recovered/);

    await send(hank.chat, 'welcome back');
    await waitMessage(gina.chat, 'welcome back');
    expect(await gina.chat.page.locator('#messages li.missed').count()).toBe(2);
    await waitPresence(hank.chat, ['gina', 'hank']);
    await screenshot(gina.chat.page, 'chat-recovered');
  });
});
