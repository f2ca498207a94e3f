/**
 * A page served from one origin and a mesh on another, in Chromium: with the
 * page's origin in the edge's `cors.origins` it logs in, connects and calls;
 * without, the client reports the CORS refusal instead of looping silently.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMesh, type TestMesh } from '../support/mesh.js';
import { launchChromium, screenshot } from './support.js';

let script: string;
const servers: Server[] = [];
let browser: Browser;
let mesh: TestMesh;
let allowed: string;
let other: string;

/** Serves the page and its bundled script on 127.0.0.1 (its own port: its own origin). */
async function servePage(): Promise<string> {
  const server = createServer((request, response) => {
    if (request.url?.startsWith('/page.js')) return void response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><p id="out">starting</p><script type="module" src="/page.js"></script>');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  const bundle = await build({ entryPoints: [new URL('./cross-origin-page.ts', import.meta.url).pathname], bundle: true, format: 'esm', platform: 'browser', write: false, logLevel: 'silent' });
  script = bundle.outputFiles[0]!.text;
  [allowed, other] = await Promise.all([servePage(), servePage()]);
  mesh = await startTestMesh({ env: { CORS_ORIGINS: allowed } });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await mesh?.dispose();
  for (const server of servers) server.close();
});

describe('a page on another origin', () => {
  it('whose origin is listed logs in through the development login, connects and calls', async () => {
    const page = await browser.newPage();
    await page.goto(`${allowed}/?mesh=${encodeURIComponent(mesh.url.origin)}`);
    await page.waitForSelector('#out:text("count 1")', { timeout: 15_000 });
    expect(await page.getAttribute('#out', 'data-state')).toBe('connected');
    await screenshot(page, 'cross-origin-allowed');
    await page.close();
  });

  it('whose origin is not listed gets a report that names CORS and the option to set, not a silent reconnect loop', async () => {
    const page = await browser.newPage();
    await page.goto(`${other}/?refresh=url&mesh=${encodeURIComponent(mesh.url.origin)}`);
    await page.waitForSelector('#out[data-error]', { timeout: 15_000 });
    const error = (await page.getAttribute('#out', 'data-error')) ?? '';
    expect(error).toMatch(/3 token refreshes in a row failed/);
    expect(error).toMatch(/usually CORS.*createMeshWorker\(\{ cors: \{ origins/);
    expect(['connecting', 'reconnecting']).toContain(await page.getAttribute('#out', 'data-state')); // still trying, never connected
    await screenshot(page, 'cross-origin-refused');
    await page.close();
  });

  it('the same with a refresh function that fetches the login: the report names CORS too', async () => {
    const page = await browser.newPage();
    await page.goto(`${other}/?mesh=${encodeURIComponent(mesh.url.origin)}`);
    await page.waitForSelector('#out[data-error]', { timeout: 15_000 });
    const error = (await page.getAttribute('#out', 'data-error')) ?? '';
    expect(error).toMatch(/the refresh function threw: Failed to fetch \(from a page on another origin this is usually CORS.*cors: \{ origins/);
    await page.close();
  });
});
