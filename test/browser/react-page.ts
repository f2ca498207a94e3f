/** Bundles a React page with esbuild and serves it from 127.0.0.1 (Chromium lets a loopback page open sockets to the loopback mesh). */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';
import type { BrowserContext, Page } from 'playwright-core';

/** Bundles `entry` (TSX) for the browser, React in development mode so StrictMode double-mounts. */
export async function bundlePage(entry: string, production = false): Promise<string> {
  const result = await build({
    entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, jsx: 'automatic',
    minify: production, define: { 'process.env.NODE_ENV': JSON.stringify(production ? 'production' : 'development') }, logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

export interface PageServer {
  origin: string;
  close(): Promise<void>;
}

/** Serves `script` as /page.js and an empty document that loads it everywhere else. */
export async function servePage(script: string): Promise<PageServer> {
  const server = createServer((request, response) => {
    if (request.url === '/page.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module" src="/page.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export interface ReactPage {
  page: Page;
  errors: string[];
}

export async function openReactPage(context: BrowserContext, url: string): Promise<ReactPage> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(url);
  return { page, errors };
}
