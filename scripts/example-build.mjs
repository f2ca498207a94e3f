/**
 * Builds and runs the chat example (examples/chat): the browser bundle, the
 * Worker with the page embedded, and the Node client. Shared by `npm start`,
 * `npm run example:node` and the browser tests, so all three run the same code.
 *
 * The example imports 'meshgate' and 'meshgate/client' like a user's app
 * would; here those names resolve to this repository's sources, so no
 * `npm run build` is needed first.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { bundleWorker, startWorkerd } from './workerd.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const chat = `${root}examples/chat/`;

const ENTRY_POINTS = {
  meshgate: `${root}src/index.ts`,
  'meshgate/client': `${root}src/client/index.ts`,
  'meshgate/protocol': `${root}src/protocol/index.ts`,
};

/** esbuild plugin: the package's public entry points → its sources. */
export const meshgateSources = {
  name: 'meshgate-sources',
  setup(b) {
    b.onResolve({ filter: /^meshgate(\/client|\/protocol)?$/ }, (args) => ({ path: ENTRY_POINTS[args.path] }));
  },
};

/** The page's script, one ES module for browsers. */
export async function buildBrowserApp() {
  const result = await build({
    entryPoints: [`${chat}browser/app.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    plugins: [meshgateSources],
  });
  return result.outputFiles[0].text;
}

/** The Worker script, with the page and its script embedded as strings. */
export async function buildChatWorker() {
  const [html, js] = await Promise.all([readFile(`${chat}browser/index.html`, 'utf8'), buildBrowserApp()]);
  return bundleWorker(`${chat}worker.ts`, {
    define: { __CHAT_HTML__: JSON.stringify(html), __CHAT_JS__: JSON.stringify(js) },
    plugins: [meshgateSources],
  });
}

/** The Node client as one ES module at `outfile` (`ws` stays an import: it is resolved from node_modules). */
export async function buildNodeClient(outfile) {
  await build({
    entryPoints: [`${chat}node-client.ts`],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outfile,
    external: ['ws'],
    logLevel: 'silent',
    plugins: [meshgateSources],
  });
  return outfile;
}

/**
 * Builds and starts the example on embedded workerd.
 * `graceMs` and `presenceCheckMs` shorten the timings (tests); `secret` defaults to a random one per run.
 */
export async function startChat({ port = 8787, host = '127.0.0.1', graceMs, presenceCheckMs, secret, log = false } = {}) {
  const script = await buildChatWorker();
  return startWorkerd({
    script,
    port,
    host,
    log,
    durableObjects: {
      GATEWAY: 'ChatGateway',
      // The room keeps messages and subscriptions in SQLite (in wrangler: a `new_sqlite_classes` migration).
      ROOM: { className: 'ChatRoom', useSQLite: true },
    },
    bindings: {
      JWT_SECRET: secret ?? randomBytes(32).toString('base64url'),
      ...(graceMs === undefined ? {} : { GRACE_MS: String(graceMs) }),
      ...(presenceCheckMs === undefined ? {} : { PRESENCE_CHECK_MS: String(presenceCheckMs) }),
    },
  });
}
