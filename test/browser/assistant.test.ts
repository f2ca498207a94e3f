/**
 * The chat example's assistant in real Chromium against real workerd: a
 * reply streams word by word, Stop cancels it, and a dropped connection in
 * the middle of a reply resumes without losing or repeating a word.
 */
import { describe, expect, it } from 'vitest';
import { replyWords } from '../../examples/chat/assistant-shared.js';
import { login, openPage, screenshot, waitEvent, type ChatPage, useChatBrowser } from './support.js';

const suite = useChatBrowser({ graceMs: 3_000 });
const { contexts, pages } = suite;

async function user(name: string, room: string): Promise<ChatPage> {
  const context = await suite.browser.newContext({ viewport: { width: 1280, height: 760 } });
  contexts.push(context);
  const chat = await openPage(context, suite.server.url);
  pages.push(chat);
  await login(chat, name, room);
  return chat;
}

const WAIT = { timeout: 15_000 };

async function ask(chat: ChatPage, prompt: string): Promise<void> {
  await chat.page.fill('#assistant-input', prompt);
  await chat.page.click('#assistant-ask');
  await chat.page.waitForSelector('#assistant-status[data-status="streaming"]', WAIT);
}

/** Waits until the reply shows at least `n` words. */
async function waitWords(chat: ChatPage, n: number): Promise<void> {
  await chat.page.waitForFunction((count) => Number(document.querySelector<HTMLElement>('#assistant-reply')?.dataset.words ?? 0) >= count, n, WAIT);
}

const replyText = (chat: ChatPage): Promise<string> => chat.page.textContent('#assistant-reply').then((t) => t ?? '');

describe('the assistant', () => {
  it('streams its reply word by word: the page shows it growing, then the whole reply', async () => {
    const chat = await user('ana', 'assistant-stream');
    await ask(chat, 'what is streaming?');
    await waitWords(chat, 3);
    const partial = await replyText(chat);
    const words = replyWords('what is streaming?');
    expect(partial.split(' ').length).toBeLessThan(words.length); // it arrived in pieces
    expect(words.join(' ').startsWith(partial)).toBe(true);
    await chat.page.waitForSelector('#assistant-status[data-status="done"]', WAIT);
    expect(await replyText(chat)).toBe(words.join(' '));
    expect(await chat.page.isDisabled('#assistant-stop')).toBe(true);
    await screenshot(chat.page, 'assistant-streamed');
  });

  it('Stop cancels the reply at once: no word arrives after it, and a new question works', async () => {
    const chat = await user('ben', 'assistant-stop');
    await ask(chat, 'tell me everything');
    await waitWords(chat, 4);
    await chat.page.click('#assistant-stop');
    await chat.page.waitForSelector('#assistant-status[data-status="stopped"]', WAIT);
    const stopped = await replyText(chat);
    const total = replyWords('tell me everything').length;
    expect(stopped.split(' ').length).toBeLessThan(total);
    // Words come every 120 ms; after a second with none, the stream is over on the server too (nothing to await).
    await chat.page.waitForTimeout(1_000);
    expect(await replyText(chat)).toBe(stopped);
    await ask(chat, 'again');
    await chat.page.waitForSelector('#assistant-status[data-status="done"]', WAIT);
    expect(await replyText(chat)).toBe(replyWords('again').join(' '));
  });

  it('a dropped connection in the middle of a reply resumes it: every word once, in order', async () => {
    const chat = await user('cy', 'assistant-drop');
    await ask(chat, 'survive a drop');
    await waitWords(chat, 5);
    await chat.page.click('#drop');
    await waitEvent(chat, 'reconnected-in-grace');
    await chat.page.waitForSelector('#assistant-status[data-status="done"]', WAIT);
    expect(await replyText(chat)).toBe(replyWords('survive a drop').join(' '));
    await screenshot(chat.page, 'assistant-after-drop');
  });
});
