/**
 * Chromium (Debian's /usr/bin/chromium, driven by playwright-core) and the chat
 * example on workerd, for the browser tests.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
// @ts-expect-error plain ESM helper shared with scripts
import { startChat } from '../../scripts/example-build.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;

/**
 * The flags this machine needs: without the background-networking ones,
 * Chromium keeps trying hosts the closed network refuses. Playwright gives
 * every launch a fresh temporary --user-data-dir itself (it refuses one in args).
 */
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`No Chromium at ${CHROMIUM}: install Debian's package (apt-get install -y chromium) or set CHROMIUM_PATH.`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 30_000 });
}

export interface ChatServer {
  url: string;
  dispose(): Promise<void>;
}

/** `dataDir` keeps the Durable Objects' storage and the signing secret there (as `npm start` does); `port` 0 picks a free one. */
export async function startChatServer(options: { graceMs?: number; dataDir?: string; port?: number } = {}): Promise<ChatServer> {
  const server = await startChat({ port: 0, host: '127.0.0.1', ...options });
  return { url: server.url.origin, dispose: () => server.dispose() };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = `${ARTIFACTS}${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** A chat page with the errors it threw collected (a test asserts there were none). */
export interface ChatPage {
  page: Page;
  errors: string[];
}

const WAIT = { timeout: 10_000 };

/** Opens the page in `context` (which may carry a copied sessionStorage) and waits for the app to show. */
export async function openPage(context: BrowserContext, url: string, sessionStorageCopy?: Record<string, string>): Promise<ChatPage> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  if (sessionStorageCopy) {
    // Runs before the app's script: what a duplicated tab (or a restored session) starts with.
    await page.addInitScript((entries) => {
      for (const [key, value] of Object.entries(entries)) sessionStorage.setItem(key, value);
    }, sessionStorageCopy);
  }
  await page.goto(url);
  return { page, errors };
}

/** Logs in through the form and waits until the room is joined. */
export async function login(chat: ChatPage, name: string, room: string): Promise<void> {
  const { page } = chat;
  await page.fill('#name-input', name);
  await page.fill('#room-input', room);
  await page.click('#login-form button[type=submit]');
  await waitJoined(chat);
}

export async function waitState(chat: ChatPage, state: string): Promise<void> {
  await chat.page.waitForSelector(`#state[data-state="${state}"]`, WAIT);
}

export async function waitJoined(chat: ChatPage): Promise<void> {
  await waitState(chat, 'connected');
  await chat.page.waitForSelector('#events li[data-kind="joined"]', WAIT);
}

export async function instanceName(chat: ChatPage): Promise<string> {
  return (await chat.page.textContent('#instance'))?.trim() ?? '';
}

export async function send(chat: ChatPage, text: string): Promise<void> {
  await chat.page.fill('#message-input', text);
  await chat.page.click('#send');
}

/** Waits until a message with exactly this text is listed. */
export async function waitMessage(chat: ChatPage, text: string): Promise<void> {
  await chat.page.locator('#messages li .text', { hasText: text }).first().waitFor(WAIT);
}

export async function messageTexts(chat: ChatPage): Promise<string[]> {
  return chat.page.locator('#messages li .text').allTextContents();
}

/** How many connection events of this kind the page shows. */
export async function eventCount(chat: ChatPage, kind: string): Promise<number> {
  return chat.page.locator(`#events li[data-kind="${kind}"]`).count();
}

export async function waitEvent(chat: ChatPage, kind: string): Promise<void> {
  await chat.page.waitForSelector(`#events li[data-kind="${kind}"]`, WAIT);
}

/** Waits until the presence list is exactly `subs` (sorted). */
export async function waitPresence(chat: ChatPage, subs: string[]): Promise<void> {
  await chat.page.waitForFunction(
    (expected) => JSON.stringify(Array.from(document.querySelectorAll<HTMLElement>('#presence li'), (li) => li.dataset.sub)) === expected,
    JSON.stringify([...subs].sort()),
    WAIT,
  );
}

export async function copySessionStorage(chat: ChatPage): Promise<Record<string, string>> {
  return chat.page.evaluate(() => Object.fromEntries(Object.entries(sessionStorage)));
}

/**
 * One chat server and one Chromium for a test file. Contexts and pages pushed
 * onto the returned lists are closed after each test, and every page of every
 * test must have run without an uncaught error.
 */
export function useChatBrowser(options: Parameters<typeof startChatServer>[0] = {}): { readonly server: ChatServer; readonly browser: Browser; contexts: BrowserContext[]; pages: ChatPage[] } {
  let server: ChatServer | undefined;
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  const pages: ChatPage[] = [];
  beforeAll(async () => {
    server = await startChatServer(options);
    browser = await launchChromium();
  });
  afterEach(async () => {
    const errors = pages.flatMap((p) => p.errors);
    pages.length = 0;
    await Promise.all(contexts.splice(0).map((c) => c.close()));
    expect(errors).toEqual([]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.dispose();
  });
  return {
    get server() { if (!server) throw new Error('the chat server is not started yet (use it inside a test)'); return server; },
    get browser() { if (!browser) throw new Error('Chromium is not started yet (use it inside a test)'); return browser; },
    contexts, pages,
  };
}
